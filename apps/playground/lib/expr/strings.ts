/**
 * Text functions as platform_core.expr._strings: lower/upper per code point with the Python
 * evaluator's own tables (caseTables.json, generated from it by scripts/expr_case_tables.py, so
 * the browser's Unicode version does not matter), trim of the Unicode space separators only,
 * length and substr in code points with DuckDB's bounds.
 */
import tables from "./caseTables.json";

type Runs = number[][];

function build(runs: Runs): Map<number, number> {
  const map = new Map<number, number>();
  for (const [first, last, step, delta] of runs) {
    for (let c = first; c <= last; c += step) map.set(c, c + delta);
  }
  return map;
}

const LOWER = build(tables.lower as Runs);
const UPPER = build(tables.upper as Runs);

function mapCase(text: string, table: Map<number, number>): string {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0) as number;
    const m = table.get(c);
    out += m === undefined ? ch : String.fromCodePoint(m);
  }
  return out;
}

export const lowerText = (text: string) => mapCase(text, LOWER);
export const upperText = (text: string) => mapCase(text, UPPER);

/** What DuckDB's trim removes: the Unicode space separators (Zs). */
const TRIM = new Set(
  [0x20, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009,
    0x200a, 0x202f, 0x205f, 0x3000].map((c) => String.fromCodePoint(c)),
); // prettier-ignore

export function trimText(text: string): string {
  const cps = [...text];
  let lo = 0;
  let hi = cps.length;
  while (lo < hi && TRIM.has(cps[lo])) lo++;
  while (hi > lo && TRIM.has(cps[hi - 1])) hi--;
  return cps.slice(lo, hi).join("");
}

export const codePoints = (text: string) => [...text].length;

const FAR = 2n ** 62n;

/** Python-style [lo:hi] code point bounds of substr(s, start, length), or null for always
 * empty (as _strings.substr_bounds). */
export function substrBounds(start: bigint, length: bigint | null): [bigint, bigint] | null {
  const len = length ?? 2n ** 32n - 1n;
  if (start >= 0n) {
    const first = start - 1n;
    const [lo, hi] = len >= 0n ? [first, first + len] : [first + len, first];
    if (hi > lo && hi > 0n) return [lo > 0n ? lo : 0n, hi > 0n ? hi : 0n];
    return null;
  }
  const [lo, hi] = len >= 0n ? [start, start + len] : [start + len, start];
  if (hi <= lo) return null;
  return [lo, hi >= 0n ? FAR : hi];
}

/** Python's slice s[lo:hi] over code points. */
export function sliceCodePoints(text: string, bounds: [bigint, bigint] | null): string {
  if (bounds === null) return "";
  const cps = [...text];
  const n = BigInt(cps.length);
  const clip = (i: bigint) => Number(i < 0n ? (i + n < 0n ? 0n : i + n) : i > n ? n : i);
  return cps.slice(clip(bounds[0]), clip(bounds[1])).join("");
}
