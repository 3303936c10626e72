// Generates the code that tests and examples import but the repository does not keep
// (Prisma clients). Runs before the type check in `npm test`.
