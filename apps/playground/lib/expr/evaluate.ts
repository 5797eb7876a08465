/**
 * Evaluation with the Python evaluator's semantics (platform_core.expr.evaluate), structure for
 * structure, because DuckDB's (and so Python's) errors depend on what is evaluated where:
 *
 * - a call with a constant NULL argument is folded to NULL by DuckDB's binder, its other
 *   arguments never evaluated; column-free subtrees are evaluated once, on one row, and their
 *   error raised only where their value is used (except under unary minus: DuckDB's binder
 *   computes those while binding);
 * - CASE evaluates a branch only on the rows that reach it (AND/OR/BETWEEN conditions select rows
 *   step by step), coalesce an argument only on the rows still NULL;
 * - a constant NULL argument ends a call before its later arguments are evaluated.
 */
import { abs, arith, cPow, ceil, floor, negate, round } from "./arith";
import { explicitCast } from "./casts";
import { Checker, type Schema, type Signature } from "./checker";
import { coerce, compare, order } from "./compare";
import { datePart } from "./dates";
import { ExprError, fail } from "./errors";
import { isNaNv, type F64 } from "./floats";
import { likeMatch, type LikePlan } from "./like";
import { children, type Node } from "./nodes";
import { codePoints, lowerText, sliceCodePoints, substrBounds, trimText, upperText } from "./strings";
import type { Kind, MaybeType } from "./types";
import {
  NULL,
  and,
  array,
  cells,
  fill,
  isNullScalar,
  map1,
  map2,
  mapN,
  not,
  or,
  scalar,
  type Cell,
  type Value,
} from "./values";

/** Rows of named columns (cells as values.ts describes them). */
export interface Batch {
  rows: number;
  columns: ReadonlyMap<string, Cell[]>;
}

type NullRule = "any" | "left" | "none";
const OPERATOR_NULLS: Record<string, NullRule> = {
  "+": "any", "-": "any", "*": "any", "/": "any", "%": "any", "||": "any", neg: "any",
  "=": "left", "<>": "left", "<": "left", "<=": "left", ">": "left", ">=": "left",
  and: "none", or: "none", not: "none",
}; // prettier-ignore
const FUNCTION_NULLS: Record<string, NullRule> = { coalesce: "none", greatest: "none", least: "none", nullif: "left" };
const nullRule = (name: string): NullRule => OPERATOR_NULLS[name] ?? FUNCTION_NULLS[name] ?? "any";

const nullFoldingArgs = (rule: NullRule, args: Node[]) => (rule === "any" ? args : rule === "left" ? args.slice(0, 1) : []);

/** Every node, parents before children, in the Python evaluator's stack order. */
function nodesOf(expr: Node): Node[] {
  const out: Node[] = [];
  const stack = [expr];
  while (stack.length) {
    const n = stack.pop() as Node;
    out.push(n);
    stack.push(...children(n));
  }
  return out;
}

class Plan {
  folded = new Map<Node, boolean>();
  bindNull = new Map<Node, boolean>();
  constants = new Map<Node, { v: Cell } | { e: ExprError }>();
}

const ONE_ROW: Batch = { rows: 1, columns: new Map() };

/** Evaluate the expression (its JSON form, read by nodes.fromDict) over a batch: one cell per
 * row, or an ExprError of the kind the Python evaluator raises. */
export function evaluate(expr: Node, schema: Schema, batch: Batch): Cell[] {
  const checker = new Checker(schema);
  checker.check(expr);
  const evaluator = new Evaluator(checker, batch, new Plan());
  evaluator.prepare(expr);
  if (batch.rows === 0) return [];
  return cells(evaluator.value(expr), batch.rows);
}

class Evaluator {
  constructor(
    readonly checker: Checker,
    readonly batch: Batch,
    readonly plan: Plan,
  ) {}

  value(n: Node): Value {
    if (this.bindNull(n)) return NULL;
    if (this.folded(n) && n.kind !== "literal") return this.constant(n);
    return this.evaluate(n);
  }

  prepare(expr: Node): void {
    for (const n of nodesOf(expr).reverse()) {
      this.folded(n);
      if (n.kind === "unary" && n.op === "neg" && this.folded(n.operand) && !this.bindNull(n.operand)) {
        this.constant(n.operand);
      }
    }
  }

  private type(n: Node): MaybeType {
    return this.checker.type(n);
  }

  private evaluate(n: Node): Value {
    switch (n.kind) {
      case "literal":
        return scalar(n.value);
      case "column": {
        const column = this.batch.columns.get(n.name);
        if (column === undefined) return fail(`column "${n.name}" is in the schema but not in the data`);
        return array(column);
      }
      case "unary":
      case "binary":
        return this.apply(n, n.op, children(n));
      case "call":
        return n.name === "coalesce" ? this.coalesce(n, n.args) : this.apply(n, n.name, n.args);
      case "is_null": {
        const v = this.value(n.operand);
        return map1(v, (x) => (n.negated ? x !== null : x === null), true);
      }
      case "in":
        return this.inList(n);
      case "between": {
        const target = this.checker.signature(n).args[0];
        const a = this.coerced(n.operand, target);
        if (isNullScalar(a)) return NULL;
        const low = this.coerced(n.low, target);
        const high = this.coerced(n.high, target);
        const inside = and(compare(">=", a, low, target), compare("<=", a, high, target));
        return n.negated ? not(inside) : inside;
      }
      case "like": {
        const [plan] = this.checker.signature(n).params as [LikePlan | null];
        if (plan === null) return NULL;
        let text = this.coerced(n.operand, "utf8");
        if (n.case_insensitive) text = map1(text, (v) => lowerText(v as string));
        return map1(text, (v) => likeMatch(v as string, plan) !== n.negated);
      }
      case "case":
        return this.caseOf(n);
      case "cast":
        return explicitCast(this.value(n.operand), this.type(n.operand), this.checker.signature(n).result as Kind);
      case "aggregate":
        return fail(`aggregate ${n.name} cannot be evaluated row by row; aggregations are executed by emsqrt and lake`);
    }
  }

  // --- folding, as DuckDB's binder --------------------------------------------------------

  private folded(n: Node): boolean {
    let known = this.plan.folded.get(n);
    if (known === undefined) {
      if (n.kind === "column" || n.kind === "aggregate") known = false;
      else known = this.bindNull(n) || children(n).every((c) => this.folded(c));
      this.plan.folded.set(n, known);
    }
    return known;
  }

  private bindNull(n: Node): boolean {
    let known = this.plan.bindNull.get(n);
    if (known === undefined) {
      let candidates: Node[] = [];
      if (n.kind === "unary" || n.kind === "binary") candidates = nullFoldingArgs(nullRule(n.op), children(n));
      else if (n.kind === "call") candidates = nullFoldingArgs(nullRule(n.name), n.args);
      else if (n.kind === "like") candidates = [n.operand, n.pattern];
      else if (n.kind === "between") candidates = [n.operand];
      known = candidates.some((c) => this.isNullConstant(c));
      this.plan.bindNull.set(n, known);
    }
    return known;
  }

  private constant(n: Node): Value {
    let known = this.plan.constants.get(n);
    if (known === undefined) {
      try {
        const v = new Evaluator(this.checker, ONE_ROW, this.plan).evaluate(n);
        known = { v: v.s ? v.v : v.a[0] };
      } catch (e) {
        if (!(e instanceof ExprError)) throw e;
        known = { e };
      }
      this.plan.constants.set(n, known);
    }
    if ("e" in known) throw known.e;
    return scalar(known.v);
  }

  private isNullConstant(n: Node): boolean {
    if (this.checker.type(n) === null) return true;
    if (!this.folded(n)) return false;
    if (this.bindNull(n)) return true;
    try {
      return (this.constant(n) as { v: Cell }).v === null;
    } catch (e) {
      if (e instanceof ExprError) return false;
      throw e;
    }
  }

  private coerced(n: Node, target: MaybeType): Value {
    const v = this.value(n);
    return target === null ? v : coerce(v, this.type(n), target);
  }

  // --- calls --------------------------------------------------------------------------------

  private apply(n: Node, name: string, args: Node[]): Value {
    const sig = this.checker.signature(n);
    const rule = nullRule(name);
    const values: Value[] = [];
    for (let i = 0; i < args.length; i++) {
      const v = this.value(args[i]);
      values.push(v);
      if ((rule === "any" || (rule === "left" && i === 0)) && isNullScalar(v)) return NULL;
    }
    const types = args.map((a) => this.type(a));
    return implement(name, values, types, sig, () => JSON.stringify(name));
  }

  private inList(n: Extract<Node, { kind: "in" }>): Value {
    const target = this.checker.signature(n).args[0];
    const x = this.coerced(n.operand, target);
    if (target === null) return NULL;
    let result: Value | null = null;
    for (const item of n.items) {
      const term = compare("=", x, this.coerced(item, target), target);
      result = result === null ? term : or(result, term);
    }
    return n.negated ? not(result as Value) : (result as Value);
  }

  // --- lazy forms -----------------------------------------------------------------------------

  private caseOf(n: Extract<Node, { kind: "case" }>): Value {
    const resultType = this.checker.signature(n).result;
    const rows = this.batch.rows;
    let out: Cell[] = new Array<Cell>(rows).fill(null);
    const remaining = new Array<boolean>(rows).fill(true);
    for (const [condition, value] of n.whens) {
      if (!remaining.some(Boolean)) break;
      const positions = indexes(remaining);
      const test = this.select(condition, positions);
      if (!test.some(Boolean)) continue;
      if (test.every(Boolean) && positions.length === rows) return this.coerced(value, resultType);
      const taken = positions.filter((_, i) => test[i]);
      out = this.fill(out, taken, value, resultType);
      for (const p of taken) remaining[p] = false;
    }
    if (remaining.every(Boolean)) return n.otherwise === null ? NULL : this.coerced(n.otherwise, resultType);
    if (n.otherwise !== null && remaining.some(Boolean)) out = this.fill(out, indexes(remaining), n.otherwise, resultType);
    return array(out);
  }

  /** Which of the rows at `positions` satisfy the condition (NULL is no), evaluating the
   * right side of AND only where the left kept the row, of OR only where it did not. */
  private select(condition: Node, positions: number[]): boolean[] {
    if (condition.kind === "between" && !condition.negated) {
      const above = this.select({ kind: "binary", op: ">=", left: condition.operand, right: condition.low }, positions);
      const kept = positions.filter((_, i) => above[i]);
      const below = this.select({ kind: "binary", op: "<=", left: condition.operand, right: condition.high }, kept);
      const out = new Array<boolean>(positions.length).fill(false);
      indexes(above).forEach((k, i) => (out[k] = below[i]));
      return out;
    }
    if (condition.kind === "binary" && (condition.op === "and" || condition.op === "or")) {
      const left = this.select(condition.left, positions);
      const isAnd = condition.op === "and";
      const restIdx = indexes(left.map((b) => b === isAnd));
      const rest = restIdx.map((i) => positions[i]);
      const right = rest.length ? this.select(condition.right, rest) : [];
      const out = isAnd ? new Array<boolean>(positions.length).fill(false) : left.slice();
      restIdx.forEach((k, i) => {
        if (right[i]) out[k] = true;
      });
      return out;
    }
    const test = fill(this.subset(positions, condition).coerced(condition, "bool8"), false);
    return cells(test, positions.length) as boolean[];
  }

  private coalesce(n: Node, args: Node[]): Value {
    const resultType = this.checker.signature(n).result;
    let first = 0;
    let value = this.coerced(args[0], resultType);
    while (isNullScalar(value) && first + 1 < args.length) {
      first++;
      value = this.coerced(args[first], resultType);
    }
    if (value.s) return value;
    let out = value.a;
    for (const arg of args.slice(first + 1)) {
      const missing = indexes(out.map((v) => v === null));
      if (!missing.length) break;
      out = this.fill(out, missing, arg, resultType);
    }
    return array(out);
  }

  /** An evaluator over the rows at `positions`, with the columns `n` uses. */
  private subset(positions: number[], n: Node): Evaluator {
    const names = new Set(nodesOf(n).flatMap((c) => (c.kind === "column" ? [c.name] : [])));
    const columns = new Map<string, Cell[]>();
    const all = positions.length === this.batch.rows;
    for (const name of names) {
      const column = this.batch.columns.get(name);
      if (column !== undefined) columns.set(name, all ? column : positions.map((p) => column[p]));
    }
    return new Evaluator(this.checker, { rows: positions.length, columns }, this.plan);
  }

  private fill(out: Cell[], positions: number[], n: Node, resultType: MaybeType): Cell[] {
    const values = cells(this.subset(positions, n).coerced(n, resultType), positions.length);
    const result = out.slice();
    positions.forEach((p, i) => (result[p] = values[i]));
    return result;
  }
}

function indexes(mask: boolean[]): number[] {
  const out: number[] = [];
  mask.forEach((b, i) => b && out.push(i));
  return out;
}

function castArgs(values: Value[], types: MaybeType[], sig: Signature): Value[] {
  return values.map((v, i) => (sig.args[i] === null ? v : coerce(v, types[i], sig.args[i])));
}

/** The implementation of an operator or function (functions.py's `implement`s). */
function implement(name: string, values: Value[], types: MaybeType[], sig: Signature, what: () => string): Value {
  const result = sig.result as Kind;
  switch (name) {
    case "+":
    case "-":
    case "*":
    case "%":
    case "/": {
      const [a, b] = castArgs(values, types, sig);
      return arith(name, a, b, result, what());
    }
    case "=":
    case "<>":
    case "<":
    case "<=":
    case ">":
    case ">=": {
      const [a, b] = castArgs(values, types, sig);
      return compare(name, a, b, sig.args[0]);
    }
    case "and":
      return and(values[0], values[1]);
    case "or":
      return or(values[0], values[1]);
    case "not":
      return not(values[0]);
    case "||": {
      const [a, b] = values.map((v, i) => (types[i] === null || types[i] === "utf8" ? v : explicitCast(v, types[i], "utf8")));
      return map2(a, b, (x, y) => (x as string) + (y as string));
    }
    case "neg":
      return negate(castArgs(values, types, sig)[0], result, what());
    case "lower":
      return map1(values[0], (v) => lowerText(v as string));
    case "upper":
      return map1(values[0], (v) => upperText(v as string));
    case "trim":
      return map1(values[0], (v) => trimText(v as string));
    case "length":
      return map1(values[0], (v) => BigInt(codePoints(v as string)));
    case "substr": {
      const [start, length, allNull] = sig.params as [bigint, bigint | null, boolean];
      if (allNull) return NULL;
      const bounds = substrBounds(start, length);
      return map1(values[0], (v) => sliceCodePoints(v as string, bounds));
    }
    case "abs":
      return abs(castArgs(values, types, sig)[0], result, what());
    case "round": {
      const [digits] = sig.params as [bigint | null];
      const x = coerce(values[0], types[0], result);
      if (digits === null) return NULL;
      return round(x, digits, result, what());
    }
    case "pow":
    case "power": {
      const [x, y] = castArgs(values, types, sig);
      return mapN([x, y], (a, b) => cPow(a as number, b as number));
    }
    case "floor":
      return floor(castArgs(values, types, sig)[0]);
    case "ceil":
      return ceil(castArgs(values, types, sig)[0]);
    case "greatest":
    case "least":
      return extreme(name === "greatest", values, types, sig);
    case "nullif": {
      if (sig.result === null) return values[0];
      const [a, b] = castArgs(values, types, sig);
      const equal = fill(compare("=", a, b, sig.args[0]), false);
      const kept = coerce(values[0], types[0], sig.result);
      if (equal.s) return equal.v ? NULL : kept;
      if (equal.a.length) {
        if (equal.a.every(Boolean)) return NULL;
        if (!equal.a.some(Boolean)) return kept;
      }
      return mapN([equal, kept], (e, k) => (e ? null : k), true);
    }
    case "year":
    case "month":
    case "day":
    case "hour":
      return map1(values[0], (v) => datePart(name, v as number | bigint));
  }
  return fail(`unknown function ${name}`);
}

/** greatest/least: the largest (smallest) non-NULL argument; NaN is the greatest value, so
 * greatest is NaN when any argument is; the first of equal values wins. */
function extreme(greatest: boolean, values: Value[], types: MaybeType[], sig: Signature): Value {
  if (sig.result === null) return values[0];
  const type = sig.result;
  const args = castArgs(values, types, sig);
  return mapN(
    args,
    (...vs) => {
      let best: Cell = null;
      let sawNaN: Cell = null;
      for (const v of vs) {
        if (v === null) continue;
        if (type === "f64" && isNaNv(v as F64)) {
          if (sawNaN === null) sawNaN = v;
          continue;
        }
        if (best === null || (greatest ? order(v, best, type) > 0 : order(v, best, type) < 0)) best = v;
      }
      if (sawNaN !== null) return greatest ? NaN : (best ?? sawNaN);
      return best;
    },
    true,
  );
}

