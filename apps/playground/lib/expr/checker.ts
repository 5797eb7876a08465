/**
 * Type checking, as platform_core.expr.checker and the type rules of functions.py: the type of
 * every node and the signature chosen for every operator, function and predicate (the type each
 * argument is brought to, the result type, constants read from literal arguments). Nodes are
 * keyed by identity, so nodes made while evaluating (BETWEEN split in two) are checked on use.
 */
import { ExprError, TypeProblem, fail, ensure, unsupported } from "./errors";
import { planLike, type LikePlan } from "./like";
import { children, type Node } from "./nodes";
import { lowerText } from "./strings";
import {
  SUPPORTED_TYPES,
  commonType,
  compareType,
  isFloat,
  isInt,
  isNumeric,
  isString,
  isTemporal,
  promoteNumeric,
  show,
  type Kind,
  type MaybeType,
} from "./types";
import { UNSUPPORTED } from "./unsupported";

export interface Signature {
  args: MaybeType[];
  result: MaybeType;
  params: unknown[];
}

/** Column name -> canonical type name (the JSON form's type strings). */
export type Schema = ReadonlyMap<string, string>;

export const SUBSTR_LIMIT = 2n ** 32n;

const VOCABULARY = /^(?:u8|u16|u32|f32|json|bytes|i32_array|f32_array|timestamp\[us, .+\]|decimal\([0-9]+, [0-9]+\))$/;

/** A canonical type name as a kind; a type of the vocabulary the browser does not run is
 * refused (UnsupportedInBrowser), anything else is not a type (ExpressionError). */
export function kindOf(type: string, what: string): Kind {
  const kind = SUPPORTED_TYPES[type];
  if (kind !== undefined) return kind;
  if (!VOCABULARY.test(type)) return fail(`unknown type "${type}" for ${what}`);
  const key = type.startsWith("timestamp") ? "timestamp[us, tz]" : type.replace(/\(.*/, "");
  return unsupported(`${what} of type ${type}: ${UNSUPPORTED.types[key] ?? UNSUPPORTED.types["*"]}`);
}

/** The text of a node for messages (compact, not SQL). */
export function describe(n: Node): string {
  const text = JSON.stringify(n, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  return text.length <= 200 ? text : `${text.slice(0, 197)}...`;
}

function intConstant(n: Node, what: string): bigint | null {
  if (n.kind === "unary" && n.op === "neg" && n.operand.kind === "literal") {
    const inner = intConstant(n.operand, what);
    return inner === null ? null : -inner;
  }
  if (n.kind === "literal" && n.value === null) return null;
  if (n.kind === "literal" && typeof n.value === "bigint") return n.value;
  throw new TypeProblem(`${what} must be an integer literal`);
}

const ARITY: Record<string, [number, number | null]> = {
  lower: [1, 1], upper: [1, 1], length: [1, 1], trim: [1, 1], substr: [2, 3], abs: [1, 1],
  round: [1, 2], floor: [1, 1], ceil: [1, 1], pow: [2, 2], power: [2, 2], coalesce: [1, null], nullif: [2, 2],
  greatest: [1, null], least: [1, null], year: [1, 1], month: [1, 1], day: [1, 1], hour: [1, 1],
}; // prettier-ignore

export class Checker {
  private types = new Map<Node, MaybeType>();
  private signatures = new Map<Node, Signature>();

  constructor(readonly schema: Schema) {}

  /** The result type of `n` (an untyped NULL alone is reported as utf8). */
  check(n: Node): Kind {
    return this.type(n) ?? "utf8";
  }

  /** The type of `n`, null for an untyped NULL (checked on first use). */
  type(n: Node): MaybeType {
    const known = this.types.get(n);
    if (known !== undefined) return known;
    const result = this.infer(n);
    this.types.set(n, result);
    return result;
  }

  signature(n: Node): Signature {
    if (!this.signatures.has(n)) this.type(n);
    const sig = this.signatures.get(n);
    if (sig === undefined) return fail(`no signature for ${describe(n)}`);
    return sig;
  }

  private remember(n: Node, args: MaybeType[], result: MaybeType, params: unknown[] = []): MaybeType {
    this.signatures.set(n, { args, result, params });
    return result;
  }

  private infer(n: Node): MaybeType {
    if (n.kind === "aggregate") {
      return fail(
        `aggregate ${n.name} is not allowed here: filters and computed columns are evaluated ` +
          "row by row (aggregates belong in an aggregation)",
      );
    }
    const kids = children(n).map((c) => this.type(c));
    try {
      return this.rule(n, kids);
    } catch (e) {
      if (e instanceof TypeProblem) return fail(`${e.message} in "${describe(n)}"`);
      throw e;
    }
  }

  private rule(n: Node, kids: MaybeType[]): MaybeType {
    switch (n.kind) {
      case "literal":
        return n.type === null ? null : kindOf(n.type, "a literal");
      case "column": {
        const type = this.schema.get(n.name);
        if (type === undefined) {
          return fail(`column "${n.name}" not found (columns: ${[...this.schema.keys()].join(", ")})`);
        }
        return kindOf(type, `column "${n.name}"`);
      }
      case "unary": {
        const [t] = kids;
        if (n.op === "not") {
          ensure(t === null || t === "bool8", `NOT takes booleans, got ${show(t)}`);
          return this.remember(n, ["bool8"], "bool8");
        }
        ensure(t === null || isNumeric(t), `cannot negate ${show(t)} (it takes a number)`);
        const result = t ?? "i64";
        return this.remember(n, [result], result);
      }
      case "binary":
        return this.binary(n, n.op, kids);
      case "is_null":
        return this.remember(n, [null], "bool8");
      case "in":
      case "between": {
        let target: MaybeType = kids[0];
        for (const t of kids.slice(1)) {
          try {
            target = compareType(target, t);
          } catch {
            throw new TypeProblem(`cannot compare ${show(kids[0])} with ${kids.slice(1).map(show).join(", ")}`);
          }
        }
        return this.remember(n, kids.map(() => target), "bool8");
      }
      case "like":
        return this.like(n, kids);
      case "case": {
        const count = n.whens.length;
        for (let i = 0; i < count; i++) {
          const t = kids[2 * i];
          ensure(t === null || t === "bool8", `a CASE condition must be bool8, got ${show(t)}`);
        }
        const values = n.whens.map((_, i) => kids[2 * i + 1]);
        if (n.otherwise !== null) values.push(kids[kids.length - 1]);
        let result: MaybeType;
        try {
          result = commonType(values);
        } catch (e) {
          throw new TypeProblem(`CASE branches must share a type: ${(e as Error).message}`);
        }
        return this.remember(n, kids.map((_, i) => (i % 2 === 0 && i < 2 * count ? "bool8" : result)), result);
      }
      case "cast": {
        const to = kindOf(n.to, "a CAST");
        const problem = castProblem(kids[0], to);
        ensure(problem === null, problem ?? "");
        return this.remember(n, [null], to);
      }
      case "call":
        return this.call(n, kids);
    }
    return fail(`not an expression node: ${describe(n)}`);
  }

  private binary(n: Node, op: string, kids: MaybeType[]): MaybeType {
    const [a, b] = kids;
    if (["+", "-", "*", "%", "/"].includes(op)) {
      for (const t of kids) {
        ensure(t === null || isNumeric(t), `cannot apply ${op} to ${show(a)} and ${show(b)} (it takes numbers)`);
      }
      if (a === null && b === null) {
        const t = op === "/" ? "f64" : "i64";
        return this.remember(n, [t, t], t);
      }
      const result = op === "/" ? "f64" : promoteNumeric((a ?? b) as Kind, (b ?? a) as Kind);
      return this.remember(n, [result, result], result);
    }
    if (["=", "<>", "<", "<=", ">", ">="].includes(op)) {
      const target = compareType(a, b);
      return this.remember(n, [target, target], "bool8");
    }
    if (op === "and" || op === "or") {
      for (const t of kids) ensure(t === null || t === "bool8", `${op.toUpperCase()} takes booleans`);
      return this.remember(n, ["bool8", "bool8"], "bool8");
    }
    // ||: every supported type has a text form
    return this.remember(n, ["utf8", "utf8"], "utf8");
  }

  private like(n: Extract<Node, { kind: "like" }>, kids: MaybeType[]): MaybeType {
    const word = n.case_insensitive ? "ILIKE" : "LIKE";
    ensure(kids[0] === null || isString(kids[0]), `${word} takes utf8, got ${show(kids[0])}`);
    const p = n.pattern;
    ensure(
      p.kind === "literal" && (p.value === null || typeof p.value === "string"),
      `the ${word} pattern must be a string literal`,
    );
    let plan: LikePlan | null = null;
    if (p.kind === "literal" && typeof p.value === "string") {
      let text = p.value;
      let escape = n.escape;
      if (n.case_insensitive) {
        text = lowerText(text);
        escape = escape ? lowerText(escape) : escape;
      }
      try {
        plan = planLike(text, escape);
      } catch (e) {
        if (e instanceof ExprError) throw new TypeProblem(e.message);
        throw e;
      }
    }
    return this.remember(n, ["utf8", null], "bool8", [plan]);
  }

  private call(n: Extract<Node, { kind: "call" }>, kids: MaybeType[]): MaybeType {
    const [min, max] = ARITY[n.name];
    const count = n.args.length;
    if (count < min || (max !== null && count > max)) {
      return fail(`${n.name} takes ${max === null ? `at least ${min}` : min === max ? min : `${min} to ${max}`} arguments, got ${count}`);
    }
    const t = kids[0];
    const named = (message: string) => `${n.name}: ${message}`;
    switch (n.name) {
      case "lower":
      case "upper":
      case "trim":
      case "length":
        ensure(t === null || isString(t), named(`it takes utf8, got ${show(t)}`));
        return this.remember(n, ["utf8"], n.name === "length" ? "i64" : "utf8");
      case "substr": {
        ensure(t === null || isString(t), named(`it takes utf8, got ${show(t)}`));
        const start = intConstant(n.args[1], "the start of substr");
        const length = count > 2 ? intConstant(n.args[2], "the length of substr") : null;
        for (const v of [start, length]) {
          ensure(v === null || (-SUBSTR_LIMIT <= v && v < SUBSTR_LIMIT), named("substr bound outside of the supported range"));
        }
        const allNull = start === null || (count > 2 && length === null);
        return this.remember(n, ["utf8", ...n.args.slice(1).map(() => null)], "utf8", [start, length, allNull]);
      }
      case "abs": {
        ensure(t === null || isNumeric(t), named(`it takes a number, got ${show(t)}`));
        const result = t ?? "i64";
        return this.remember(n, [result], result);
      }
      case "round": {
        ensure(t === null || isNumeric(t), named(`it takes a number, got ${show(t)}`));
        const digits = count > 1 ? intConstant(n.args[1], "the digits of round") : 0n;
        const result: Kind = t === null ? "i64" : t;
        return this.remember(n, [result, ...n.args.slice(1).map(() => null)], result, [digits]);
      }
      case "pow":
      case "power": {
        for (const k of kids) ensure(k === null || isNumeric(k), named(`it takes numbers, got ${show(k)}`));
        return this.remember(n, ["f64", "f64"], "f64"); // DuckDB's one overload: DOUBLE ** DOUBLE
      }
      case "floor":
      case "ceil": {
        ensure(t === null || isNumeric(t), named(`it takes a number, got ${show(t)}`));
        return this.remember(n, ["f64"], "f64"); // DuckDB: floor of an integer is a DOUBLE
      }
      case "coalesce":
      case "greatest":
      case "least": {
        let result: MaybeType;
        try {
          result = commonType(kids);
        } catch (e) {
          throw new TypeProblem(named(`arguments must share a type: ${(e as Error).message}`));
        }
        return this.remember(n, kids.map(() => result), result);
      }
      case "nullif": {
        const target = compareType(kids[0], kids[1]);
        return this.remember(n, [target, target], kids[0]);
      }
      default: // year, month, day, hour
        ensure(t !== null, named(`${n.name}(NULL) has no argument type; CAST the NULL to date`));
        ensure(isTemporal(t), named(`it takes a date or timestamp, got ${show(t)}`));
        return this.remember(n, [t], "i64");
    }
  }
}

/** Why CAST(source AS target) is refused (as _casts.cast_problem), or null. */
export function castProblem(source: MaybeType, target: Kind): string | null {
  if (source === null || source === target) return null;
  const numericLike = isInt(source) || isFloat(source) || source === "bool8";
  if (isNumeric(target) || target === "bool8") {
    if (numericLike || isString(source)) return null;
  } else if (target === "utf8") {
    return null;
  } else if (target === "date") {
    if (isString(source) || source === "timestamp") return null;
  } else if (isString(source) || isTemporal(source)) {
    return null;
  }
  return `CAST from ${show(source)} to ${show(target)} is not supported`;
}
