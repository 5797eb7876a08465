/**
 * A TypeScript interpreter of platform_core.expr's JSON form over Arrow JS columns, with the
 * Python evaluator's semantics (see packages/core/README.md, "Expressions", and the modules
 * here: one concept each). It never turns text into code: no eval, no Function constructor,
 * no regular expressions built from user text (LIKE is matched by like.ts).
 *
 *   const { type, cells } = evaluateJson(planJson, arrowTable);
 */
import type { Table } from "apache-arrow";

import { batchOf } from "./arrow";
import { Checker, type Schema } from "./checker";
import { evaluate, type Batch } from "./evaluate";
import { children, fromDict, type Node } from "./nodes";
import type { Cell } from "./values";

export { ExprError, type ErrorKind } from "./errors";
export { UNSUPPORTED } from "./unsupported";
export { fromDict, type Node } from "./nodes";

const CANONICAL: Record<string, string> = { timestamp: "timestamp[us]" };

/** The result type (canonical name) and one cell per row of an expression node. */
export function evaluateNode(node: Node, schema: Schema, batch: Batch): { type: string; cells: Cell[] } {
  const kind = new Checker(schema).check(node);
  return { type: CANONICAL[kind] ?? kind, cells: evaluate(node, schema, batch) };
}

/** Evaluate an expression's JSON form (as parsed by JSON.parse) over an Arrow table. */
export function evaluateJson(expr: unknown, table: Table): { type: string; cells: Cell[] } {
  const node = fromDict(expr);
  const used = new Set<string>();
  const stack = [node];
  while (stack.length) {
    const n = stack.pop() as Node;
    if (n.kind === "column") used.add(n.name);
    stack.push(...children(n));
  }
  const { schema, batch } = batchOf(table, used);
  return evaluateNode(node, schema, batch);
}
