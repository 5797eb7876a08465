/**
 * Running shared test vectors (platform_core.expr.vectors): each is an expression's JSON form,
 * input columns (JSON-safe, built into Arrow vectors here) and what the Python evaluator gave,
 * values or an error kind. A vector passes when the interpreter gives the same result type and
 * values (f64 within 1e-9 relative, NaN equal to NaN; everything else exactly) or an error of the
 * same kind. The /worker/conformance/ page runs them; a worker runs this self-check before
 * lending a tab.
 */
import { batchOf, encodeCell, tableOf, type JsonCell } from "./arrow";
import { ExprError } from "./errors";
import { evaluateNode } from "./index";
import { fromDict } from "./nodes";

export interface TestVector {
  id: number;
  expr: unknown;
  rows: number;
  columns: { name: string; type: string; values: JsonCell[] }[];
  type?: string;
  expected: { values: JsonCell[] } | { error: string };
}

export interface Mismatch {
  id: number;
  reason: string;
  expected: unknown;
  got: unknown;
}

export interface Report {
  total: number;
  passed: number;
  failed: number;
  mismatches: Mismatch[];
  /** Error kinds the interpreter raised, counted (UnsupportedInBrowser among them). */
  errors: Record<string, number>;
}

export const REL_TOL = 1e-9;

function sameFloat(a: JsonCell, b: JsonCell): boolean {
  const nan = (v: JsonCell) => v === "NaN" || v === "-NaN";
  if (nan(a) || nan(b)) return nan(a) && nan(b);
  if (typeof a !== "number" || typeof b !== "number") return a === b;
  return a === b || Math.abs(a - b) <= REL_TOL * Math.max(Math.abs(a), Math.abs(b));
}

export function sameCell(a: JsonCell, b: JsonCell, type: string): boolean {
  if (a === null || b === null) return a === null && b === null;
  return type === "f64" ? sameFloat(a, b) : a === b;
}

type Outcome = { type: string; values: JsonCell[] } | { error: string; message: string };

/** What the interpreter gives for one vector. */
export function runOne(v: TestVector): Outcome {
  try {
    const table = tableOf(v.columns, v.rows);
    const { schema, batch } = batchOf(table);
    const { type, cells } = evaluateNode(fromDict(v.expr), schema, batch);
    return { type, values: cells.map((c) => encodeCell(c, type)) };
  } catch (e) {
    if (e instanceof ExprError) return { error: e.kind, message: e.message };
    return { error: "InternalError", message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

/** Compare one vector's outcome with its expectation; null when it passes. */
export function check(v: TestVector, got: Outcome): Mismatch | null {
  const expected = v.expected;
  if ("error" in expected) {
    if ("error" in got && got.error === expected.error) return null;
    return { id: v.id, reason: `expected ${expected.error}`, expected, got };
  }
  if ("error" in got) return { id: v.id, reason: `raised ${got.error}: ${got.message}`, expected, got };
  if (v.type !== undefined && v.type !== got.type) {
    return { id: v.id, reason: `result type ${got.type}, expected ${v.type}`, expected, got };
  }
  if (got.values.length !== expected.values.length) {
    return { id: v.id, reason: `${got.values.length} rows, expected ${expected.values.length}`, expected, got };
  }
  for (let i = 0; i < got.values.length; i++) {
    if (!sameCell(got.values[i], expected.values[i], got.type)) {
      return {
        id: v.id,
        reason: `row ${i}: got ${JSON.stringify(got.values[i])}, expected ${JSON.stringify(expected.values[i])}`,
        expected,
        got,
      };
    }
  }
  return null;
}

/** Run every vector; the report keeps the first `keep` mismatches. */
export function runVectors(vectors: TestVector[], keep = 20): Report {
  const report: Report = { total: vectors.length, passed: 0, failed: 0, mismatches: [], errors: {} };
  for (const v of vectors) {
    const got = runOne(v);
    if ("error" in got) report.errors[got.error] = (report.errors[got.error] ?? 0) + 1;
    const mismatch = check(v, got);
    if (mismatch === null) report.passed++;
    else {
      report.failed++;
      if (report.mismatches.length < keep) report.mismatches.push(mismatch);
    }
  }
  return report;
}
