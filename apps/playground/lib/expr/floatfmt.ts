/**
 * f64 as DuckDB writes it in CAST(x AS VARCHAR) and || (platform_core.expr._floatfmt): the
 * shortest digits that read back to the same value, laid out as Python's repr (positional when
 * the decimal exponent is in [-4, 16), always with a fraction: `100.0`; else `1e+16`, `1e-05`),
 * `nan`, `-nan` (the sign bit set), `inf`, `-inf`, `-0.0`. The digits are JavaScript's own
 * shortest round-trip digits (Number.prototype.toExponential), the same as Arrow's.
 */
import { NEG_NAN, type F64 } from "./floats";

export function formatFloat(x: F64): string {
  if (x === NEG_NAN) return "-nan";
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  if (x === 0) return `${sign}0.0`;
  const [mantissa, exp] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const e = Number(exp);
  let body: string;
  if (e >= -4 && e < 16) {
    if (e >= 0) {
      body =
        digits.length <= e + 1
          ? `${digits}${"0".repeat(e + 1 - digits.length)}.0`
          : `${digits.slice(0, e + 1)}.${digits.slice(e + 1)}`;
    } else {
      body = `0.${"0".repeat(-e - 1)}${digits}`;
    }
  } else {
    const tail = digits.slice(1);
    body = `${digits[0]}${tail ? `.${tail}` : ""}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  }
  return sign + body;
}
