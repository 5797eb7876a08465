/**
 * f64 values with the sign of NaN kept, as the Python evaluator's text shows it (`nan` or
 * `-nan`, as DuckDB prints them). JavaScript has one NaN whose sign a program cannot read
 * reliably, so a NaN with the sign bit set is the value NEG_NAN and every float operation
 * follows x86-64's rules, which Arrow's kernels (and so the Python evaluator) obey: a NaN
 * operand passes through with its sign, an invalid operation (0/0, inf-inf, fmod(x, 0)) gives
 * the "default NaN" whose sign bit is set, negation flips the sign and abs clears it.
 */
export const NEG_NAN: unique symbol = Symbol("-nan");
export type F64 = number | typeof NEG_NAN;

export const isNaNv = (x: F64): boolean => x === NEG_NAN || Number.isNaN(x);
export const num = (x: F64): number => (x === NEG_NAN ? NaN : x);

/** The result of a binary operation `r` on `a` and `b` with x86's NaN rules. */
export function nanRule(r: number, a: F64, b: F64): F64 {
  if (!Number.isNaN(r)) return r;
  if (isNaNv(a)) return a;
  if (isNaNv(b)) return b;
  return NEG_NAN;
}

export function fneg(x: F64): F64 {
  if (x === NEG_NAN) return NaN;
  if (Number.isNaN(x)) return NEG_NAN;
  return -x;
}

export function fabs(x: F64): F64 {
  return isNaNv(x) ? NaN : Math.abs(x as number);
}

/** A unary operation that keeps a NaN operand as it is (floor, ceil, rounding). */
export function keepNaN(x: F64, f: (v: number) => number): F64 {
  return isNaNv(x) ? x : f(x as number);
}

/** DuckDB's order of floats: NaN equals NaN and is above every number; -0.0 = 0.0. */
export function fcmp(a: F64, b: F64): number {
  const an = isNaNv(a);
  const bn = isNaNv(b);
  if (an || bn) return an && bn ? 0 : an ? 1 : -1;
  const x = a as number;
  const y = b as number;
  return x < y ? -1 : x > y ? 1 : 0;
}
