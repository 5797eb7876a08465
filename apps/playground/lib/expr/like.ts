/**
 * LIKE as DuckDB (platform_core.expr._strings.plan_like): `%` any run of code points (newlines
 * too), `_` exactly one code point, no default escape character; `ESCAPE 'c'` quotes the next
 * character, and a pattern ending in it is an error. Matched over code points without regular
 * expressions.
 */
import { fail } from "./errors";

/** "%" (a run, consecutive ones merged), "_" (one), or a literal code point. */
export type Token = { t: "%" } | { t: "_" } | { t: "="; c: string };
export interface LikePlan {
  tokens: Token[];
}

export function planLike(pattern: string, escape: string | null): LikePlan {
  const tokens: Token[] = [];
  const chars = [...pattern];
  const esc = escape || null;
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (esc !== null && ch === esc) {
      if (i + 1 >= chars.length) {
        fail(`LIKE pattern ${JSON.stringify(pattern)} must not end with the escape character ${JSON.stringify(esc)}`);
      }
      tokens.push({ t: "=", c: chars[++i] });
    } else if (ch === "%") {
      if (tokens.length === 0 || tokens[tokens.length - 1].t !== "%") tokens.push({ t: "%" });
    } else if (ch === "_") {
      tokens.push({ t: "_" });
    } else {
      tokens.push({ t: "=", c: ch });
    }
  }
  return { tokens };
}

/** Whether `text` matches the plan (iterative wildcard matching with backtracking to the
 * last `%`, linear in practice and never exponential). */
export function likeMatch(text: string, plan: LikePlan): boolean {
  const s = [...text];
  const p = plan.tokens;
  let i = 0;
  let j = 0;
  let star = -1;
  let mark = 0;
  while (i < s.length) {
    const tok = j < p.length ? p[j] : null;
    if (tok !== null && (tok.t === "_" || (tok.t === "=" && tok.c === s[i]))) {
      i++;
      j++;
    } else if (tok !== null && tok.t === "%") {
      star = j++;
      mark = i;
    } else if (star >= 0) {
      j = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (j < p.length && p[j].t === "%") j++;
  return j === p.length;
}
