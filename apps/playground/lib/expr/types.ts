/**
 * Field types as the interpreter knows them, and DuckDB's type rules (platform_core.expr._types)
 * for the part of the vocabulary the browser runs: i32, i64, f64, bool8, utf8 (utf8_ref is read
 * as utf8), date and naive timestamp[us]. Every other type is refused (see unsupported.ts).
 */
import { TypeProblem } from "./errors";

export type Kind = "i32" | "i64" | "f64" | "bool8" | "utf8" | "date" | "timestamp";
/** A type, or null for an untyped NULL whose type comes from its context. */
export type MaybeType = Kind | null;

/** The canonical type names of the JSON form that the browser supports, and their kinds. */
export const SUPPORTED_TYPES: Readonly<Record<string, Kind>> = {
  i32: "i32",
  i64: "i64",
  f64: "f64",
  bool8: "bool8",
  utf8: "utf8",
  utf8_ref: "utf8",
  date: "date",
  "timestamp[us]": "timestamp",
};

export const isInt = (t: MaybeType) => t === "i32" || t === "i64";
export const isFloat = (t: MaybeType) => t === "f64";
export const isNumeric = (t: MaybeType) => isInt(t) || isFloat(t);
export const isString = (t: MaybeType) => t === "utf8";
export const isTemporal = (t: MaybeType) => t === "date" || t === "timestamp";

export const show = (t: MaybeType) => (t === null ? "NULL" : t === "timestamp" ? "timestamp[us]" : t);

/** DuckDB's result type of a + b for integers and floats. */
export function promoteNumeric(a: Kind, b: Kind): Kind {
  if (isFloat(a) || isFloat(b)) return "f64";
  return a === b ? a : "i64";
}

/** The type both sides of a comparison are cast to, or a TypeProblem. */
export function compareType(a: MaybeType, b: MaybeType): MaybeType {
  if (a === null || b === null) return a === null ? b : a;
  if (isNumeric(a) && isNumeric(b)) return promoteNumeric(a, b);
  if (isString(a) && isString(b)) return "utf8";
  if (isTemporal(a) && isTemporal(b)) return a === b ? a : "timestamp";
  if (a === b && a === "bool8") return a;
  throw new TypeProblem(`cannot compare ${show(a)} with ${show(b)}`);
}

/** The type values of several branches share (CASE, coalesce, greatest, IN lists). */
export function commonType(types: readonly MaybeType[]): MaybeType {
  let result: MaybeType = null;
  for (const t of types) {
    if (t === null) continue;
    if (result === null) {
      result = t;
      continue;
    }
    if ((isNumeric(result) && isNumeric(t)) || (isTemporal(result) && isTemporal(t))) {
      result = compareType(result, t);
    } else if (isString(result) && isString(t)) {
      result = "utf8";
    } else if (result !== t || result !== "bool8") {
      throw new TypeProblem(`cannot mix ${show(result)} with ${show(t)}`);
    }
  }
  return result;
}
