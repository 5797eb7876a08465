/**
 * Arithmetic as platform_core.expr._arith: integers (BigInt, exact) keep their promoted type and
 * raise OutOfRangeError on overflow; `%` keeps the dividend's sign, integer `% 0` raises
 * DivisionByZeroError; `/` always divides as floats; floats follow IEEE with the NaN signs of
 * floats.ts; round is half away from zero (with DuckDB's handling of digits), floor and ceil
 * give f64.
 */
import { divisionByZero, outOfRange } from "./errors";
import { fabs, fneg, keepNaN, nanRule, num, type F64 } from "./floats";
import { inRange } from "./casts";
import type { Kind } from "./types";
import { map1, map2, some, type Value } from "./values";

function checked(v: bigint, kind: Kind, what: string): bigint {
  return inRange(v, kind) ? v : outOfRange(`overflow in ${what}`);
}

export function arith(op: string, a: Value, b: Value, kind: Kind, what: string): Value {
  if (kind === "f64") {
    return map2(a, b, (x, y) => {
      const p = num(x as F64);
      const q = num(y as F64);
      const r = op === "+" ? p + q : op === "-" ? p - q : op === "*" ? p * q : op === "/" ? p / q : p % q;
      return nanRule(r, x as F64, y as F64);
    });
  }
  return map2(a, b, (x, y) => {
    const p = x as bigint;
    const q = y as bigint;
    if (op === "%") {
      if (q === 0n) return divisionByZero(what);
      if (q === -1n && !inRange(-p, kind)) return outOfRange(`overflow in ${what}`);
      return p % q;
    }
    return checked(op === "+" ? p + q : op === "-" ? p - q : p * q, kind, what);
  });
}

export function negate(x: Value, kind: Kind, what: string): Value {
  if (kind === "f64") return map1(x, (v) => fneg(v as F64));
  return map1(x, (v) => checked(-(v as bigint), kind, what));
}

export function abs(x: Value, kind: Kind, what: string): Value {
  if (kind === "f64") return map1(x, (v) => fabs(v as F64));
  return map1(x, (v) => checked((v as bigint) < 0n ? -(v as bigint) : (v as bigint), kind, what));
}

/** Half away from zero to an integer, keeping the sign of zero (as std::round). */
export function roundAway(x: number): number {
  const r = Math.round(Math.abs(x));
  return x < 0 || Object.is(x, -0) ? -r : r;
}

const POW10: Record<string, number> = { i32: 9, i64: 18 };

export function round(x: Value, digits: bigint, kind: Kind, what: string): Value {
  if (kind === "f64") return roundFloat(x, digits);
  if (digits >= 0n) return x;
  const k = -digits;
  if (k <= BigInt(POW10[kind])) {
    const unit = 10n ** k;
    return map1(x, (v) => {
      const n = v as bigint;
      const q = n / unit;
      const r = n % unit;
      const twice = 2n * (r < 0n ? -r : r);
      const result = (q + (twice >= unit ? (n < 0n ? -1n : 1n) : 0n)) * unit;
      return inRange(result, kind) ? result : outOfRange(`Rounding ${n} up to multiples of ${unit} would overflow in ${what}`);
    });
  }
  if (kind === "i64" && k === 19n) {
    const half = 5n * 10n ** 18n;
    if (some(x, (v) => (v as bigint) >= half || (v as bigint) <= -half)) {
      outOfRange("Overflow in ROUND of integer");
    }
  }
  return map1(x, () => 0n);
}

function roundFloat(x: Value, digits: bigint): Value {
  if (digits === 0n) return map1(x, (v) => keepNaN(v as F64, roundAway));
  const d = Number(digits < 0n ? -digits : digits);
  const scale = d > 308 ? Infinity : Number(`1e${d}`);
  return map1(x, (v) => {
    const w = v as F64;
    if (digits > 0n) {
      return keepNaN(w, (n) => {
        const rounded = roundAway(n * scale) / scale;
        return Number.isFinite(rounded) ? rounded : n;
      });
    }
    return keepNaN(w, (n) => {
      if (!Number.isFinite(n)) return n;
      const rounded = roundAway(n / scale) * scale;
      return Number.isNaN(rounded) ? 0 : !Number.isFinite(rounded) ? n : rounded;
    });
  });
}

export const floor = (x: Value) => map1(x, (v) => keepNaN(v as F64, Math.floor));
export const ceil = (x: Value) => map1(x, (v) => keepNaN(v as F64, Math.ceil));

/**
 * C's pow (as DuckDB's pow and Arrow's power): Math.pow but for the cases where ECMAScript
 * differs from C99, pow(1, y) = 1 for every y (NaN too) and pow(-1, ±Infinity) = 1.
 */
export function cPow(x: number, y: number): number {
  if (x === 1) return 1;
  if (x === -1 && (y === Infinity || y === -Infinity)) return 1;
  return Math.pow(x, y);
}
