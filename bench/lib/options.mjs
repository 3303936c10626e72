// Command-line options of the benches: `--name=value`, which may be repeated (`--dist=a --dist=b`).

/** Every value given for `--name`, in order; `fallback` when there is none. */
export function option(name, fallback) {
  const all = process.argv.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3));
  return all.length === 0 ? fallback : all;
}

/** The first value of `--name` as a number; `fallback` when there is none. */
export const number = (name, fallback) => Number(option(name, [String(fallback)])[0]);
