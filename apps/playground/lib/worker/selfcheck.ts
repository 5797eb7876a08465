/**
 * The quick self-check a tab runs before it is lent: a bundled handful of shared test vectors
 * (written by scripts/expr_vectors.py, see selfcheck.json) through the interpreter, and one
 * small task through the engine compared with what the Python reference worker answers for it.
 * A tab that fails either is not lent: its results would be refused or get it banned.
 */
import { Float64, Table, makeData, makeVector, tableFromIPC, tableToIPC } from "apache-arrow";

import { runVectors, type TestVector } from "../expr/conformance";
import vectors from "./selfcheck.json";
import { runTask, type Step } from "./engine";

export interface SelfCheck {
  ok: boolean;
  vectors: number;
  failed: number;
  message: string;
}

interface Bundle {
  vectors: TestVector[];
  task: { steps: Step[]; schema: string; input: Record<string, number[]>; expected: unknown };
}

export function selfCheck(): SelfCheck {
  const bundle = vectors as unknown as Bundle;
  const report = runVectors(bundle.vectors, 3);
  const problems: string[] = report.mismatches.map((m) => `vector ${m.id}: ${m.reason}`);
  const task = bundle.task;
  try {
    const columns = Object.entries(task.input).map(([k, v]) => [k, makeVector(makeData({ type: new Float64(), length: v.length, data: Float64Array.from(v) }))]);
    const chunk = tableToIPC(new Table(Object.fromEntries(columns)), "stream");
    const out = tableFromIPC(runTask(task, chunk).bytes).toArray().map((r) => r.toJSON());
    const got = JSON.stringify(out, (_, v) => (typeof v === "bigint" ? v.toString() : v));
    if (got !== JSON.stringify(task.expected)) problems.push(`the sample task gave ${got}, expected ${JSON.stringify(task.expected)}`);
  } catch (e) {
    problems.push(`the sample task failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    ok: problems.length === 0,
    vectors: report.total,
    failed: report.failed,
    message: problems.length ? problems.join("; ") : `${report.passed} of ${report.total} vectors and the sample task passed`,
  };
}
