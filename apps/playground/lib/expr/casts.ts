/**
 * CAST(x AS type) as platform_core.expr._casts, for the pairs the checker accepts. Where one
 * cast can fail in several ways, the checks run in the Python evaluator's order over all rows
 * (text that does not parse is a ConversionError before any value is out of range), so the
 * same data gives the same error kind.
 */
import { DAY_US, floorDiv, formatDate, formatTimestamp, parseTemporal } from "./dates";
import { conversion, outOfRange } from "./errors";
import { NEG_NAN, isNaNv, num, type F64 } from "./floats";
import { formatFloat } from "./floatfmt";
import { isFloat, isInt, isString, type Kind, type MaybeType } from "./types";
import { NULL, map1, type Cell, type Value } from "./values";

export const INT_RANGE: Record<string, [bigint, bigint]> = {
  i32: [-(2n ** 31n), 2n ** 31n - 1n],
  i64: [-(2n ** 63n), 2n ** 63n - 1n],
};

export function inRange(v: bigint, kind: Kind): boolean {
  const [lo, hi] = INT_RANGE[kind];
  return v >= lo && v <= hi;
}

const SPACE = " \t\n\r\f\v";
const DIGITS = "[0-9]+(?:_[0-9]+)*";
const NUMBER_TEXT = new RegExp(`^[+-]?(?:${DIGITS}(?:\\.(?:${DIGITS})?)?|\\.${DIGITS})(?:[eE][+-]?[0-9]+)?$`);
const FLOAT_TEXT = /^[+-]?(?:inf|infinity|nan)$/i;
const PLAIN_INT = /^[+-]?[0-9]+$/;
const TRUE_TEXT = ["true", "t", "yes", "y", "1"];
const FALSE_TEXT = ["false", "f", "no", "n", "0"];

function trimSpace(text: string): string {
  let lo = 0;
  let hi = text.length;
  while (lo < hi && SPACE.includes(text[lo])) lo++;
  while (hi > lo && SPACE.includes(text[hi - 1])) hi--;
  return text.slice(lo, hi);
}

const asciiLower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
const show = (v: Cell) => JSON.stringify(typeof v === "bigint" ? v.toString() : v);

/** Every non-NULL cell of x (in row order). */
function present(x: Value): Cell[] {
  return (x.s ? [x.v] : x.a).filter((v) => v !== null) as Cell[];
}

/** Raise ConversionError when some text fails `valid` (before anything else happens). */
function gate(x: Value, valid: (s: string) => boolean, target: Kind): void {
  for (const v of present(x)) {
    if (!valid(v as string)) conversion(`Could not convert string ${show(v)} to ${target}`);
  }
}

export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function floatToInt(v: F64, target: Kind): bigint {
  const x = num(v);
  const r = Number.isFinite(x) ? roundHalfEven(x) : x;
  const limit = target === "i32" ? 2 ** 31 : 2 ** 63;
  if (!Number.isFinite(r) || r < -limit || r >= limit) {
    return outOfRange(`Float value ${x} was truncated converting to ${target}`);
  }
  return BigInt(r);
}

export function explicitCast(x: Value, source: MaybeType, target: Kind): Value {
  if (source === null) return NULL;
  if (source === target) return x;
  if (isString(source)) return fromText(x, target);
  if (target === "utf8") return map1(x, (v) => toText(v, source));
  if (isInt(target)) {
    if (isFloat(source)) return map1(x, (v) => floatToInt(v as F64, target));
    if (source === "bool8") return map1(x, (v) => (v ? 1n : 0n));
    return map1(x, (v) => (inRange(v as bigint, target) ? v : outOfRange(`Integer value ${String(v as bigint)} not in range for ${target}`)));
  }
  if (target === "f64") {
    if (source === "bool8") return map1(x, (v) => (v ? 1 : 0));
    return map1(x, (v) => Number(v as bigint));
  }
  if (target === "bool8") {
    if (isFloat(source)) return map1(x, (v) => isNaNv(v as F64) || (v as number) !== 0);
    return map1(x, (v) => (v as bigint) !== 0n);
  }
  if (target === "timestamp") return map1(x, (v) => BigInt(v as number) * DAY_US); // from a date
  return map1(x, (v) => Number(floorDiv(v as bigint, DAY_US))); // date from a timestamp
}

export function toText(v: Cell, source: Kind): string {
  switch (source) {
    case "f64":
      return formatFloat(v as F64);
    case "date":
      return formatDate(v as number);
    case "timestamp":
      return formatTimestamp(v as bigint);
    case "bool8":
      return v ? "true" : "false";
    default:
      return String(v);
  }
}

function fromText(x: Value, target: Kind): Value {
  switch (target) {
    case "bool8":
      gate(x, (s) => TRUE_TEXT.includes(asciiLower(s)) || FALSE_TEXT.includes(asciiLower(s)), target);
      return map1(x, (v) => TRUE_TEXT.includes(asciiLower(v as string)));
    case "f64":
      gate(x, (s) => NUMBER_TEXT.test(trimSpace(s)) || FLOAT_TEXT.test(trimSpace(s)), target);
      return map1(x, (v) => textToFloat(trimSpace(v as string).replaceAll("_", "")));
    case "i32":
    case "i64":
      return intFromText(x, target);
    default: {
      const timestamp = target === "timestamp";
      gate(x, (s) => parseTemporal(s, timestamp) !== null, target);
      return map1(x, (v) => parseTemporal(v as string, timestamp));
    }
  }
}

function textToFloat(text: string): F64 {
  const lower = text.toLowerCase();
  const negative = lower.startsWith("-");
  const bare = lower.replace(/^[+-]/, "");
  if (bare === "nan") return negative ? NEG_NAN : NaN;
  if (bare === "inf" || bare === "infinity") return negative ? -Infinity : Infinity;
  return Number(text);
}

/** DuckDB's text -> integer: digits with _ separators, a fraction rounded half away from zero
 * (after truncating to one decimal, as the Python evaluator's decimal(38, 1) step), an exponent. */
function intFromText(x: Value, target: Kind): Value {
  gate(x, (s) => NUMBER_TEXT.test(trimSpace(s)), target);
  const clean = (v: Cell) => trimSpace(v as string).replaceAll("_", "");
  const values = present(x).map(clean);
  // Plain digits parse exactly; too many for the type is a ConversionError (Arrow's parse).
  for (const text of values) {
    if (PLAIN_INT.test(text) && !inRange(BigInt(text), target)) {
      conversion(`Failed to parse string: '${text}' as a scalar of type ${target}`);
    }
  }
  for (const text of values) {
    if (!PLAIN_INT.test(text) && Math.abs(Number(text)) >= 1e30) outOfRange(`'${text}' is out of range for ${target}`);
  }
  return map1(x, (v) => {
    const text = clean(v);
    if (PLAIN_INT.test(text)) return BigInt(text);
    const r = roundedText(text);
    return inRange(r, target) ? r : outOfRange("Integer value out of bounds");
  });
}

/** A decimal or scientific number below 1e30, truncated to one decimal, rounded half away. */
function roundedText(text: string): bigint {
  const m = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/.exec(text);
  if (!m) return 0n;
  const frac = m[3] ?? "";
  const digits = `${m[2]}${frac}`.replace(/^0+/, "");
  if (!digits) return 0n;
  const power = Number(m[4] ?? "0") - frac.length + 1; // value * 10 = digits * 10**power
  let tenths: bigint;
  if (power >= 0) tenths = BigInt(digits) * 10n ** BigInt(power);
  else if (-power > digits.length + 1) tenths = 0n;
  else tenths = BigInt(digits) / 10n ** BigInt(-power);
  const whole = tenths / 10n + (tenths % 10n >= 5n ? 1n : 0n);
  return m[1] === "-" ? -whole : whole;
}
