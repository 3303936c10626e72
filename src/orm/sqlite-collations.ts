/**
 * What the ORM integrations read from SQLite's catalog for `trackReads`, shared by those that
 * read it (Drizzle, Sequelize).
 */

/**
 * The columns of a SQLite `CREATE TABLE` whose definition has a `COLLATE` other than `BINARY`;
 * `'all'` when the statement cannot be read (every column inexact).
 */
export function sqliteInexact(statement: string): ReadonlySet<string> | 'all' {
  const open = statement.indexOf('(');
  const close = statement.lastIndexOf(')');
  if (open < 0 || close < open) return 'all';
  // The definitions, split at top-level commas, past quoted names, strings and comments.
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  const body = statement.slice(open + 1, close);
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === "'" || ch === '"' || ch === '`' || ch === '[') {
      const end = ch === '[' ? ']' : ch;
      let j = i + 1;
      while (j < body.length) {
        if (body[j] === end) {
          if (end !== ']' && body[j + 1] === end) j += 2;
          else break;
        } else j++;
      }
      if (j >= body.length) return 'all';
      current += body.slice(i, j + 1);
      i = j;
    } else if (ch === '-' && body[i + 1] === '-') {
      const j = body.indexOf('\n', i);
      i = j < 0 ? body.length : j;
      current += ' ';
    } else if (ch === '/' && body[i + 1] === '*') {
      const j = body.indexOf('*/', i + 2);
      if (j < 0) return 'all';
      i = j + 1;
      current += ' ';
    } else if (ch === '(') (depth++, (current += ch));
    else if (ch === ')') (depth--, (current += ch));
    else if (ch === ',' && depth === 0) (parts.push(current), (current = ''));
    else current += ch;
  }
  parts.push(current);
  const out = new Set<string>();
  for (const raw of parts) {
    const part = raw.trim();
    // A table constraint's COLLATE orders its index; comparisons of the column keep the column's own.
    if (/^(constraint|primary|unique|check|foreign)\b/i.test(part)) continue;
    const name = /^(?:"((?:[^"]|"")*)"|`((?:[^`]|``)*)`|\[([^\]]*)\]|'((?:[^']|'')*)'|([^\s(]+))/.exec(part);
    if (name === null) return 'all';
    const column = name[1] !== undefined ? name[1].replace(/""/g, '"') : name[2] !== undefined ? name[2].replace(/``/g, '`') : name[4] !== undefined ? name[4].replace(/''/g, "'") : (name[3] ?? name[5])!;
    // Strings in the rest (a DEFAULT 'x COLLATE y') are dropped first.
    const rest = part.slice(name[0].length).replace(/'(?:[^']|'')*'/g, "''");
    for (const m of rest.matchAll(/\bcollate\s+(["`]?)(\w+)\1/gi)) if (m[2]!.toUpperCase() !== 'BINARY') out.add(column);
  }
  return out;
}
