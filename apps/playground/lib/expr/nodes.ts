/**
 * The expression tree as the canonical JSON form gives it (platform_core.expr.serde, described in
 * packages/core/README.md, "JSON form"), read strictly: an unknown kind, key, operator or
 * function is an ExpressionError naming its path, as in Python. Literal values are decoded by
 * their type: i64 from a decimal string into a BigInt (never through a JS number), floats from
 * a number or "NaN"/"Infinity"/"-Infinity", dates into days and timestamps into microseconds
 * since 1970.
 */
import { fail } from "./errors";
import type { Cell } from "./values";

export const BINARY_OPS = ["+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "and", "or", "||"] as const;
export const FUNCTIONS = [
  "lower", "upper", "length", "substr", "trim", "abs", "round", "floor", "pow", "power", "ceil", "coalesce",
  "nullif", "greatest", "least", "year", "month", "day", "hour",
] as const; // prettier-ignore
export const AGGREGATES = [
  "count", "sum", "avg", "min", "max", "stddev_samp", "stddev_pop", "var_samp", "var_pop", "corr",
  "median", "quantile_cont", "quantile_disc", "arg_min", "arg_max",
] as const; // prettier-ignore
export const KINDS = [
  "literal", "column", "unary", "binary", "is_null", "in", "between", "like", "case", "cast",
  "call", "aggregate",
] as const; // prettier-ignore

export type Node =
  | { kind: "literal"; type: string | null; value: Cell }
  | { kind: "column"; name: string }
  | { kind: "unary"; op: "neg" | "not"; operand: Node }
  | { kind: "binary"; op: (typeof BINARY_OPS)[number]; left: Node; right: Node }
  | { kind: "is_null"; operand: Node; negated: boolean }
  | { kind: "in"; operand: Node; items: Node[]; negated: boolean }
  | { kind: "between"; operand: Node; low: Node; high: Node; negated: boolean }
  | {
      kind: "like";
      operand: Node;
      pattern: Node;
      escape: string | null;
      negated: boolean;
      case_insensitive: boolean;
    }
  | { kind: "case"; whens: [Node, Node][]; otherwise: Node | null }
  | { kind: "cast"; operand: Node; to: string }
  | { kind: "call"; name: (typeof FUNCTIONS)[number]; args: Node[] }
  | { kind: "aggregate"; name: string; arg: Node | null; distinct: boolean; extra_args: Node[] };

export const MAX_DEPTH = 200;

/** The direct sub-expressions of a node, in source order (as nodes.children). */
export function children(n: Node): Node[] {
  switch (n.kind) {
    case "literal":
    case "column":
      return [];
    case "unary":
    case "is_null":
    case "cast":
      return [n.operand];
    case "binary":
      return [n.left, n.right];
    case "in":
      return [n.operand, ...n.items];
    case "between":
      return [n.operand, n.low, n.high];
    case "like":
      return [n.operand, n.pattern];
    case "case": {
      const flat = n.whens.flat();
      return n.otherwise === null ? flat : [...flat, n.otherwise];
    }
    case "call":
      return n.args;
    case "aggregate":
      return n.arg === null ? [] : [n.arg, ...n.extra_args];
  }
}

const FIELDS: Record<string, [string[], string[]]> = {
  literal: [["type", "value"], []],
  column: [["name"], []],
  unary: [["op", "operand"], []],
  binary: [["op", "left", "right"], []],
  is_null: [["operand"], ["negated"]],
  in: [["operand", "items"], ["negated"]],
  between: [["operand", "low", "high"], ["negated"]],
  like: [["operand", "pattern"], ["escape", "negated", "case_insensitive"]],
  case: [["whens"], ["otherwise"]],
  cast: [["operand", "to"], []],
  call: [["name", "args"], []],
  aggregate: [["name"], ["arg", "distinct", "extra_args"]],
};

const at = (path: string, message: string): never => fail(`${message} (at ${path})`);
const isObject = (d: unknown): d is Record<string, unknown> =>
  typeof d === "object" && d !== null && !Array.isArray(d);

/** Read an expression from its dict form (JSON.parse's output). */
export function fromDict(data: unknown, path = "$", level = 1): Node {
  if (level > MAX_DEPTH) at(path, `expression nests more than ${MAX_DEPTH} levels deep`);
  if (!isObject(data)) return at(path, "expected an expression object");
  const kind = data.kind;
  if (typeof kind !== "string" || !(kind in FIELDS)) {
    return at(path, `unknown kind ${JSON.stringify(kind)} (kinds: ${KINDS.join(", ")})`);
  }
  const [required, optional] = FIELDS[kind];
  for (const k of required) if (!(k in data)) at(path, `a ${kind} node needs '${k}'`);
  for (const k of Object.keys(data)) {
    if (k !== "kind" && !required.includes(k) && !optional.includes(k)) {
      at(path, `unknown key '${k}' in a ${kind} node`);
    }
  }
  const sub = (key: string) => fromDict(data[key], `${path}.${key}`, level + 1);
  const flag = (key: string): boolean => {
    const v = data[key] ?? false;
    return typeof v === "boolean" ? v : at(`${path}.${key}`, "expected true or false");
  };
  const list = (key: string): unknown[] => {
    const v = data[key];
    return Array.isArray(v) ? v : at(`${path}.${key}`, "expected a list");
  };
  const nodes = (key: string) => list(key).map((v, i) => fromDict(v, `${path}.${key}[${i}]`, level + 1));
  const choice = <T extends string>(value: unknown, choices: readonly T[], what: string, p: string): T =>
    typeof value === "string" && (choices as readonly string[]).includes(value)
      ? (value as T)
      : at(p, `unknown ${what} ${JSON.stringify(value)}`);
  switch (kind) {
    case "literal": {
      const type = data.type;
      if (type !== null && typeof type !== "string") at(`${path}.type`, "expected a type name");
      return { kind, type: type as string | null, value: decodeValue(data.value, type as string | null, `${path}.value`) };
    }
    case "column":
      if (typeof data.name !== "string" || !data.name) at(`${path}.name`, "a column name is a non-empty string");
      return { kind, name: data.name as string };
    case "unary":
      return { kind, op: choice(data.op, ["neg", "not"] as const, "unary op", `${path}.op`), operand: sub("operand") };
    case "binary":
      return { kind, op: choice(data.op, BINARY_OPS, "binary op", `${path}.op`), left: sub("left"), right: sub("right") };
    case "is_null":
      return { kind, operand: sub("operand"), negated: flag("negated") };
    case "in":
      return { kind, operand: sub("operand"), items: nodes("items"), negated: flag("negated") };
    case "between":
      return { kind, operand: sub("operand"), low: sub("low"), high: sub("high"), negated: flag("negated") };
    case "like": {
      const escape = data.escape ?? null;
      if (escape !== null && (typeof escape !== "string" || [...escape].length !== 1)) {
        at(`${path}.escape`, "a LIKE escape is null or one character");
      }
      return {
        kind,
        operand: sub("operand"),
        pattern: sub("pattern"),
        escape: escape as string | null,
        negated: flag("negated"),
        case_insensitive: flag("case_insensitive"),
      };
    }
    case "case": {
      const whens = list("whens").map((pair, i): [Node, Node] => {
        const where = `${path}.whens[${i}]`;
        if (!Array.isArray(pair) || pair.length !== 2) return at(where, "expected a [condition, value] pair");
        return [fromDict(pair[0], `${where}[0]`, level + 1), fromDict(pair[1], `${where}[1]`, level + 1)];
      });
      if (!whens.length) at(`${path}.whens`, "a case needs at least one [condition, value] pair");
      const other = data.otherwise ?? null;
      return { kind, whens, otherwise: other === null ? null : sub("otherwise") };
    }
    case "cast":
      if (typeof data.to !== "string") at(`${path}.to`, "expected a type name");
      return { kind, operand: sub("operand"), to: data.to as string };
    case "call":
      return { kind, name: choice(data.name, FUNCTIONS, "function", `${path}.name`), args: nodes("args") };
    default: {
      const name = choice(data.name, AGGREGATES, "aggregate", `${path}.name`);
      const arg = data.arg ?? null;
      return {
        kind: "aggregate",
        name,
        arg: arg === null ? null : sub("arg"),
        distinct: flag("distinct"),
        extra_args: "extra_args" in data ? nodes("extra_args") : [],
      };
    }
  }
}

const I64_RE = /^-?(?:0|[1-9][0-9]{0,18})$/;
const DATE_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;
const TS_RE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?$/;
const RANGES: Record<string, [bigint, bigint]> = {
  i32: [-(2n ** 31n), 2n ** 31n - 1n],
  i64: [-(2n ** 63n), 2n ** 63n - 1n],
};

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function validDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
  return d <= days;
}

/** The cell of a literal's JSON value, by its type (types the browser refuses keep `null`
 * here and are refused by the checker). */
export function decodeValue(value: unknown, type: string | null, path: string): Cell {
  if (value === null) return null;
  if (type === null) return at(path, "a literal with type null must have value null");
  const bad = (): never => at(path, `a ${type} literal cannot hold ${JSON.stringify(value)}`);
  switch (type) {
    case "bool8":
      return typeof value === "boolean" ? value : bad();
    case "i64":
    case "i32": {
      let v: bigint;
      if (type === "i64") {
        if (typeof value !== "string" || !I64_RE.test(value)) return bad();
        v = BigInt(value);
      } else {
        if (typeof value !== "number" || !Number.isInteger(value)) return bad();
        v = BigInt(value);
      }
      const [lo, hi] = RANGES[type];
      return v < lo || v > hi ? bad() : v;
    }
    case "f64":
      if (value === "NaN") return NaN;
      if (value === "Infinity") return Infinity;
      if (value === "-Infinity") return -Infinity;
      return typeof value === "number" && Number.isFinite(value) ? value : bad();
    case "utf8":
    case "utf8_ref":
      return typeof value === "string" ? value : bad();
    case "date": {
      const m = typeof value === "string" ? DATE_RE.exec(value) : null;
      if (!m || !validDate(+m[1], +m[2], +m[3])) return bad();
      return daysFromCivil(+m[1], +m[2], +m[3]);
    }
    case "timestamp[us]": {
      const m = typeof value === "string" ? TS_RE.exec(value) : null;
      if (!m || !validDate(+m[1], +m[2], +m[3]) || +m[4] > 23 || +m[5] > 59 || +m[6] > 59) return bad();
      const days = BigInt(daysFromCivil(+m[1], +m[2], +m[3]));
      const seconds = BigInt(+m[4] * 3600 + +m[5] * 60 + +m[6]);
      return (days * 86400n + seconds) * 1_000_000n + BigInt((m[7] ?? "").padEnd(6, "0"));
    }
    default:
      return null; // refused by the checker (unsupported.ts)
  }
}
