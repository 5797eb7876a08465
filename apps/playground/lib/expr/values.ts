/**
 * Values during evaluation, as the Python evaluator's Arrow values: a constant (a scalar) or
 * one cell per row (an array). Which one matters, as it does in Python: a constant NULL
 * argument ends a call before later arguments are evaluated, a CASE whose branch takes every
 * row returns that branch as it is. Cells: null, boolean (bool8), bigint (i32, i64, and a
 * timestamp's microseconds since 1970), number (a date's days since 1970), F64 (f64, see
 * floats.ts), string (utf8).
 */
import type { F64 } from "./floats";

export type Cell = null | boolean | bigint | string | F64;

export type Value = { readonly s: true; readonly v: Cell } | { readonly s: false; readonly a: Cell[] };

export const scalar = (v: Cell): Value => ({ s: true, v });
export const array = (a: Cell[]): Value => ({ s: false, a });
export const NULL: Value = scalar(null);

export const isNullScalar = (x: Value): boolean => x.s && x.v === null;

/** The cells of `x` over `rows` rows (a constant repeated). */
export function cells(x: Value, rows: number): Cell[] {
  return x.s ? new Array<Cell>(rows).fill(x.v) : x.a;
}

/** `f` over the cells of the arguments, element by element: a constant when all are
 * constants; NULL in any argument gives NULL without calling `f` (unless `nulls`). */
export function mapN(args: readonly Value[], f: (...v: Cell[]) => Cell, nulls = false): Value {
  let rows = -1;
  for (const a of args) if (!a.s) rows = a.a.length;
  if (rows < 0) {
    const vs = args.map((a) => (a as { v: Cell }).v);
    return scalar(!nulls && vs.some((v) => v === null) ? null : f(...vs));
  }
  const out = new Array<Cell>(rows);
  const cols = args.map((a) => (a.s ? null : a.a));
  const consts = args.map((a) => (a.s ? a.v : null));
  const vs = new Array<Cell>(args.length);
  for (let r = 0; r < rows; r++) {
    let hasNull = false;
    for (let i = 0; i < args.length; i++) {
      const c = cols[i];
      vs[i] = c === null ? consts[i] : c[r];
      if (vs[i] === null) hasNull = true;
    }
    out[r] = !nulls && hasNull ? null : f(...vs);
  }
  return array(out);
}

export const map1 = (x: Value, f: (v: Cell) => Cell, nulls = false) => mapN([x], f, nulls);
export const map2 = (a: Value, b: Value, f: (x: Cell, y: Cell) => Cell, nulls = false) =>
  mapN([a, b], f, nulls);

/** Whether any (non-NULL) cell satisfies `test`. */
export function some(x: Value, test: (v: Cell) => boolean): boolean {
  if (x.s) return x.v !== null && test(x.v);
  return x.a.some((v) => v !== null && test(v));
}

/** SQL AND, OR, NOT (three-valued). */
export const and = (a: Value, b: Value) =>
  map2(a, b, (x, y) => (x === false || y === false ? false : x === null || y === null ? null : true), true);
export const or = (a: Value, b: Value) =>
  map2(a, b, (x, y) => (x === true || y === true ? true : x === null || y === null ? null : false), true);
export const not = (a: Value) => map1(a, (x) => !x);
/** A boolean with NULL replaced by `d`. */
export const fill = (a: Value, d: boolean) => map1(a, (x) => (x === null ? d : x), true);
