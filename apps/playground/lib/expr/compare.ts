/**
 * Comparison and implicit casts (platform_core.expr._kernels): values of one type compared with
 * DuckDB's order (NaN equals NaN and is above every number, -0.0 = 0.0, text by code point as
 * UTF-8 bytes order it, false < true), NULL on either side giving NULL; the widenings the type
 * rules produce (integer to f64, date to timestamp at midnight).
 */
import { DAY_US } from "./dates";
import { fcmp, type F64 } from "./floats";
import type { Kind, MaybeType } from "./types";
import { map1, map2, type Cell, type Value } from "./values";

function compareText(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i) as number;
    const y = b.codePointAt(i) as number;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** -1, 0 or 1: the order of two non-NULL cells of one type. */
export function order(a: Cell, b: Cell, type: Kind): number {
  switch (type) {
    case "f64":
      return fcmp(a as F64, b as F64);
    case "utf8":
      return compareText(a as string, b as string);
    case "bool8":
      return a === b ? 0 : a ? 1 : -1;
    default: {
      const x = a as bigint | number;
      const y = b as bigint | number;
      return x < y ? -1 : x > y ? 1 : 0;
    }
  }
}

const TESTS: Record<string, (c: number) => boolean> = {
  "=": (c) => c === 0,
  "<>": (c) => c !== 0,
  "<": (c) => c < 0,
  "<=": (c) => c <= 0,
  ">": (c) => c > 0,
  ">=": (c) => c >= 0,
};

export function compare(op: string, a: Value, b: Value, type: MaybeType): Value {
  const test = TESTS[op];
  return map2(a, b, (x, y) => test(order(x, y, type as Kind)));
}

/** `x` of type `source` as `target` (DuckDB's implicit casts). */
export function coerce(x: Value, source: MaybeType, target: MaybeType): Value {
  if (source === null || target === null || source === target) return x;
  if (target === "f64" && (source === "i32" || source === "i64")) return map1(x, (v) => Number(v as bigint));
  if (target === "timestamp" && source === "date") return map1(x, (v) => BigInt(v as number) * DAY_US);
  return x; // i32 -> i64: the same BigInt
}
