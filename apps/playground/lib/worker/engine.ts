/**
 * What a browser worker computes for one task: the steps of elytra's browser protocol over a
 * chunk's rows, mirroring the Python reference worker (elytra/browser/evaluate.py) step for
 * step. filter and map use the expression interpreter (lib/expr); project renames and selects;
 * partial_aggregate gives emsqrt's partial states (`__emsqrt_a<i>_<part>`: count `n`, sum `sum`
 * with integer and boolean sums exact as decimal(38, 0), avg `s` and `n`, min/max, and max's `nan` flag
 * over floats); top_k is a stable sort (NULLs first or last per key, NaN above every number)
 * cut at n; limit slices. The rows are then written as an Arrow IPC stream of exactly the
 * task's schema (the schema's own fields, so names, types and nullability are the server's).
 * Nothing here turns text into code.
 */
import {
  Data,
  DataType,
  Decimal,
  Field,
  RecordBatch,
  Schema,
  Struct,
  Table,
  Type,
  makeData,
  tableFromIPC,
  tableToIPC,
  type Vector,
} from "apache-arrow";

import { typeName, vectorCells } from "../expr/arrow";
import type { Schema as ExprSchema } from "../expr/checker";
import { order } from "../expr/compare";
import { ExprError } from "../expr/errors";
import { NEG_NAN, isNaNv, type F64 } from "../expr/floats";
import { evaluateNode } from "../expr/index";
import { fromDict, type Node } from "../expr/nodes";
import { SUPPORTED_TYPES, type Kind } from "../expr/types";
import type { Cell } from "../expr/values";

/** A cell of any column: the interpreter's cells, or what Arrow JS reads for other types. */
type Any = Cell | unknown;

interface Column {
  name: string;
  /** The canonical type name (typeName): the interpreter's for the types it runs. */
  type: string;
  cells: Any[];
  /** Set (to the Arrow type) for a column whose values this engine does not read. */
  opaque?: string;
}

interface Rows {
  length: number;
  columns: Column[];
}

export interface TaskMessage {
  type: "task";
  task_id: string;
  attempt: number;
  columns: string[];
  steps: Step[];
  schema: string;
  fields: [string, string][];
}

export type Step =
  | { op: "filter"; expr: unknown }
  | { op: "project"; columns: [string, string][] }
  | { op: "map"; columns: [string, unknown][] }
  | { op: "partial_aggregate"; group_by: string[]; aggregates: { name: string; agg: unknown }[] }
  | { op: "top_k"; keys: { column: string; descending: boolean; nulls_first: boolean }[]; n: number }
  | { op: "limit"; n: number; offset: number };

const SUPPORTED = new Set(["i32", "i64", "f64", "bool8", "utf8", "date", "timestamp[us]"]);
const kindOf = (type: string): Kind | null => SUPPORTED_TYPES[type] ?? null;

// --- reading ----------------------------------------------------------------------------------

export function rowsOf(table: Table): Rows {
  const columns: Column[] = table.schema.fields.map((field) => {
    const vector = table.getChild(field.name) as Vector;
    const type = typeName(field.type);
    if (SUPPORTED.has(type)) return { name: field.name, type, cells: vectorCells(vector, type) };
    const cells: Any[] = [];
    if (field.type.typeId === Type.Int || field.type.typeId === Type.Float) {
      // other widths, unsigned, f32: Arrow JS reads them exactly (64 bits as BigInt)
      for (let i = 0; i < vector.length; i++) cells.push(vector.get(i) ?? null);
      return { name: field.name, type, cells };
    }
    // Anything else (decimals, zoned or non-µs timestamps, lists, ...) is not read: a task that
    // uses or returns such a column fails here and runs elsewhere.
    return { name: field.name, type, cells: new Array<Any>(vector.length).fill(null), opaque: String(field.type) };
  });
  return { length: table.numRows, columns };
}

function exprSchema(rows: Rows): ExprSchema {
  return new Map(rows.columns.map((c) => [c.name, c.type]));
}

function evaluateOn(node: Node, rows: Rows): { type: string; cells: Cell[] } {
  const columns = new Map<string, Cell[]>();
  for (const c of rows.columns) if (SUPPORTED.has(c.type)) columns.set(c.name, c.cells as Cell[]);
  return evaluateNode(node, exprSchema(rows), { rows: rows.length, columns });
}

function take(rows: Rows, index: number[]): Rows {
  return { length: index.length, columns: rows.columns.map((c) => ({ ...c, cells: index.map((i) => c.cells[i]) })) };
}

function column(rows: Rows, name: string, read = true): Column {
  const c = rows.columns.find((x) => x.name === name);
  if (!c) throw new Error(`no column ${JSON.stringify(name)} in the rows`);
  if (read && c.opaque) throw new ExprError("UnsupportedInBrowser", `the browser does not read ${c.opaque} columns (${name})`);
  return c;
}

// --- steps ------------------------------------------------------------------------------------

function filter(rows: Rows, expr: unknown): Rows {
  const { cells } = evaluateOn(fromDict(expr), rows);
  const keep: number[] = [];
  for (let i = 0; i < rows.length; i++) if (cells[i] === true) keep.push(i);
  return take(rows, keep);
}

function project(rows: Rows, columns: [string, string][]): Rows {
  return { length: rows.length, columns: columns.map(([out, src]) => ({ ...column(rows, src, false), name: out })) };
}

function map(rows: Rows, columns: [string, unknown][]): Rows {
  let current = rows;
  for (const [name, expr] of columns) {
    const { type, cells } = evaluateOn(fromDict(expr), current);
    const col: Column = { name, type, cells };
    const at = current.columns.findIndex((c) => c.name === name);
    const next = [...current.columns];
    if (at >= 0) next[at] = col;
    else next.push(col);
    current = { length: current.length, columns: next };
  }
  return current;
}

function limit(rows: Rows, n: number, offset: number): Rows {
  const index: number[] = [];
  for (let i = offset; i < Math.min(rows.length, offset + n); i++) index.push(i);
  return take(rows, index);
}

/** -1, 0, 1 of two non-NULL cells (DuckDB's order for the interpreter's types). */
function compareCells(a: Any, b: Any, type: string): number {
  const kind = kindOf(type);
  if (kind !== null) return order(a as Cell, b as Cell, kind);
  const x = a as number | bigint | string;
  const y = b as number | bigint | string;
  return x < y ? -1 : x > y ? 1 : 0;
}

function topK(rows: Rows, keys: { column: string; descending: boolean; nulls_first: boolean }[], n: number): Rows {
  if (n <= 0) return take(rows, []);
  const cols = keys.map((k) => column(rows, k.column));
  const index = Array.from({ length: rows.length }, (_, i) => i);
  index.sort((i, j) => {
    for (let k = 0; k < keys.length; k++) {
      const { cells, type } = cols[k];
      const a = cells[i];
      const b = cells[j];
      if (a === null || b === null) {
        if (a === null && b === null) continue;
        return (a === null) === keys[k].nulls_first ? -1 : 1;
      }
      const c = compareCells(a, b, type);
      if (c !== 0) return keys[k].descending ? -c : c;
    }
    return i - j; // stable: ties keep the input order (Arrow's sort_indices is stable)
  });
  return take(rows, index.slice(0, n));
}

// --- partial aggregate (emsqrt's partial states) -----------------------------------------------

/** A group key cell as text: NULL, one 0.0 (-0.0 too) and one NaN, as emsqrt's canonical keys. */
function keyText(v: Any): string {
  if (v === null || v === undefined) return "N";
  if (v === NEG_NAN) return "fNaN";
  switch (typeof v) {
    case "number":
      return Number.isNaN(v) ? "fNaN" : `f${v === 0 ? 0 : v}`;
    case "bigint":
      return `i${v}`;
    case "string":
      return `s${v}`;
    case "boolean":
      return v ? "T" : "F";
    default:
      return `o${String(v)}`;
  }
}

function canonicalKey(v: Any): Any {
  if (v === NEG_NAN) return NaN;
  if (typeof v === "number" && v === 0) return 0;
  return v;
}

const isFloatType = (type: string) => type === "f64" || type === "f32";
const isIntType = (type: string) => /^[iu](8|16|32|64)$/.test(type);

function fnum(v: Any): number {
  return v === NEG_NAN ? NaN : typeof v === "bigint" ? Number(v) : (v as number);
}

interface AggState {
  name: string;
  argType: string;
  values: Any[] | null; // the argument per row (null for count(*))
}

function partialAggregate(
  rows: Rows,
  groupBy: string[],
  aggregates: { name: string; agg: unknown }[],
): Rows {
  const keyCols = groupBy.map((k) => column(rows, k));
  const groupOf = new Int32Array(rows.length);
  const firsts: number[] = [];
  const ids = new Map<string, number>();
  for (let r = 0; r < rows.length; r++) {
    // each key's text length-prefixed: a separator inside a text cannot join two keys into one
    const text = keyCols.map((c) => {
      const t = keyText(c.cells[r]);
      return `${t.length}:${t}`;
    }).join("");
    let g = ids.get(text);
    if (g === undefined) {
      g = firsts.length;
      ids.set(text, g);
      firsts.push(r);
    }
    groupOf[r] = g;
  }
  // No keys: one row even over no rows (a scalar aggregate).
  const groups = groupBy.length === 0 ? 1 : firsts.length;
  const out: Column[] = keyCols.map((c) => ({
    name: c.name,
    type: c.type,
    cells: firsts.map((r) => canonicalKey(c.cells[r])),
  }));
  aggregates.forEach((spec, i) => {
    const node = fromDict(spec.agg);
    if (node.kind !== "aggregate") throw new Error(`aggregate ${spec.name} is not an aggregate`);
    if (node.distinct || !["count", "sum", "avg", "min", "max"].includes(node.name)) {
      throw new ExprError("UnsupportedInBrowser", `the browser does not compute ${node.name} partial states`);
    }
    const st: AggState = { name: node.name, argType: "", values: null };
    if (node.arg !== null) {
      const { type, cells } = node.arg.kind === "column" ? (() => {
        const c = column(rows, (node.arg as { name: string }).name);
        return { type: c.type, cells: c.cells as Cell[] };
      })() : evaluateOn(node.arg, rows);
      st.argType = type;
      st.values = cells;
    }
    const p = `__emsqrt_a${i}`;
    const count = (): Column => {
      const n = new Array<bigint>(groups).fill(0n);
      for (let r = 0; r < rows.length; r++) {
        if (st.values === null || st.values[r] !== null) n[groupOf[r]] += 1n;
      }
      return { name: `${p}_n`, type: "i64", cells: n };
    };
    const sum = (name: string): Column => {
      const values = st.values as Any[];
      const seen = new Array<boolean>(groups).fill(false);
      if (isIntType(st.argType) || st.argType === "bool8") {
        // DuckDB sums integers and booleans into a 128-bit HUGEINT: decimal(38, 0) states
        const s = new Array<bigint>(groups).fill(0n);
        for (let r = 0; r < rows.length; r++) {
          const v = values[r];
          if (v === null) continue;
          s[groupOf[r]] += BigInt(v as bigint | number | boolean);
          seen[groupOf[r]] = true;
        }
        return { name, type: "decimal", cells: s.map((x, g) => (seen[g] ? x : null)) };
      }
      const s = new Array<number>(groups).fill(0);
      for (let r = 0; r < rows.length; r++) {
        const v = values[r];
        if (v === null) continue;
        s[groupOf[r]] += fnum(v);
        seen[groupOf[r]] = true;
      }
      return { name, type: st.argType, cells: s.map((x, g) => (seen[g] ? x : null)) };
    };
    const extreme = (largest: boolean): Column => {
      const values = st.values as Any[];
      const best: Any[] = new Array<Any>(groups).fill(null);
      const float = isFloatType(st.argType);
      for (let r = 0; r < rows.length; r++) {
        const v = values[r];
        if (v === null || (float && isNaNv(v as F64))) continue; // Arrow's min/max skip NaN
        const g = groupOf[r];
        const b = best[g];
        if (b === null || (largest ? compareCells(v, b, st.argType) > 0 : compareCells(v, b, st.argType) < 0)) best[g] = v;
      }
      if (float) {
        // a group of only NaNs: Arrow answers NaN (its min/max start from NaN-free values)
        for (let r = 0; r < rows.length; r++) {
          const g = groupOf[r];
          if (best[g] === null && values[r] !== null) best[g] = NaN;
        }
      }
      return { name: `${p}_${largest ? "max" : "min"}`, type: st.argType, cells: best };
    };
    if (st.name === "count") out.push(count());
    else if (st.name === "sum") out.push(sum(`${p}_sum`));
    else if (st.name === "avg") out.push(sum(`${p}_s`), count());
    else out.push(extreme(st.name === "max"));
    if (st.name === "max" && isFloatType(st.argType)) {
      const values = st.values as Any[];
      const flag: (boolean | null)[] = new Array<boolean | null>(groups).fill(null);
      for (let r = 0; r < rows.length; r++) {
        const v = values[r];
        if (v === null) continue;
        const g = groupOf[r];
        flag[g] = (flag[g] ?? false) || isNaNv(v as F64);
      }
      out.push({ name: `${p}_nan`, type: "bool8", cells: flag });
    }
  });
  if (groupBy.length === 0 && rows.length === 0) {
    // Acero's scalar aggregate over no rows: one row, every state NULL (counts too)
    for (const c of out) c.cells = [null];
  }
  return { length: groups, columns: out };
}

/** Run a task's steps over rows (the reference worker's evaluate_steps). */
export function runSteps(steps: Step[], input: Rows): Rows {
  let rows = input;
  for (const step of steps) {
    switch (step.op) {
      case "filter":
        rows = filter(rows, step.expr);
        break;
      case "project":
        rows = project(rows, step.columns);
        break;
      case "map":
        rows = map(rows, step.columns);
        break;
      case "limit":
        rows = limit(rows, Number(step.n), Number(step.offset));
        break;
      case "top_k":
        rows = topK(rows, step.keys, Number(step.n));
        break;
      case "partial_aggregate":
        rows = partialAggregate(rows, step.group_by, step.aggregates);
        break;
      default:
        throw new Error(`unknown step ${JSON.stringify((step as { op: unknown }).op)}`);
    }
  }
  return rows;
}

// --- writing ----------------------------------------------------------------------------------

function validity(cells: Any[]): { bitmap: Uint8Array; nulls: number } {
  const bitmap = new Uint8Array(Math.ceil(cells.length / 8) || 1);
  let nulls = 0;
  cells.forEach((c, i) => {
    if (c === null || c === undefined) nulls++;
    else bitmap[i >> 3] |= 1 << (i & 7);
  });
  return { bitmap, nulls };
}

function toBigInt(v: Any): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "number") return BigInt(Math.trunc(v));
  if (typeof v === "boolean") return v ? 1n : 0n;
  return BigInt(String(v));
}

/** Little-endian 128-bit two's complement words of an integer (a decimal's unscaled value). */
function decimalWords(values: bigint[]): Uint32Array {
  const words = new Uint32Array(values.length * 4);
  const mask = (1n << 128n) - 1n;
  values.forEach((v, i) => {
    let x = v & mask;
    for (let w = 0; w < 4; w++) {
      words[i * 4 + w] = Number(x & 0xffffffffn);
      x >>= 32n;
    }
  });
  return words;
}

/** One column's cells as Arrow data of exactly `type`. */
function dataOf(cells: Any[], type: DataType): Data {
  const length = cells.length;
  const { bitmap, nulls } = validity(cells);
  const base = { length, nullCount: nulls, nullBitmap: nulls ? bitmap : undefined };
  const zero = (f: (v: Any) => number) => cells.map((c) => (c === null || c === undefined ? 0 : f(c)));
  switch (type.typeId) {
    case Type.Int: {
      const t = type as unknown as { bitWidth: number; isSigned: boolean; ArrayType: new (n: number) => ArrayLike<unknown> };
      if (t.bitWidth === 64) {
        const arr = t.isSigned ? new BigInt64Array(length) : new BigUint64Array(length);
        cells.forEach((c, i) => {
          if (c !== null && c !== undefined) arr[i] = toBigInt(c);
        });
        return makeData({ ...base, type, data: arr } as never);
      }
      const Ctor = { 8: t.isSigned ? Int8Array : Uint8Array, 16: t.isSigned ? Int16Array : Uint16Array, 32: t.isSigned ? Int32Array : Uint32Array }[
        t.bitWidth as 8 | 16 | 32
      ];
      return makeData({ ...base, type, data: Ctor.from(zero((v) => Number(v as bigint | number))) } as never);
    }
    case Type.Float: {
      const precision = (type as unknown as { precision: number }).precision;
      if (precision === 2) {
        const data = Float64Array.from(zero(fnum));
        const words = new Uint32Array(data.buffer);
        cells.forEach((c, i) => {
          if (c === NEG_NAN) {
            words[2 * i] = 0;
            words[2 * i + 1] = 0xfff80000;
          }
        });
        return makeData({ ...base, type, data } as never);
      }
      return makeData({ ...base, type, data: Float32Array.from(zero(fnum)) } as never);
    }
    case Type.Decimal: {
      const d = type as Decimal;
      if (d.bitWidth !== 128) break;
      const data = decimalWords(cells.map((c) => (c === null || c === undefined ? 0n : c instanceof Uint32Array ? 0n : toBigInt(c))));
      cells.forEach((c, i) => {
        if (c instanceof Uint32Array) data.set(c.subarray(0, 4), i * 4);
      });
      return makeData({ ...base, type, data } as never);
    }
    case Type.Date: {
      if ((type as unknown as { unit: number }).unit === 0) {
        return makeData({ ...base, type, data: Int32Array.from(zero((v) => Number(v as number))) } as never);
      }
      break;
    }
    case Type.Timestamp: {
      const data = new BigInt64Array(length);
      cells.forEach((c, i) => {
        if (c !== null && c !== undefined) data[i] = toBigInt(c);
      });
      return makeData({ ...base, type, data } as never);
    }
    case Type.Bool: {
      const data = new Uint8Array(Math.ceil(length / 8) || 1);
      cells.forEach((c, i) => {
        if (c === true) data[i >> 3] |= 1 << (i & 7);
      });
      return makeData({ ...base, type, data } as never);
    }
    case Type.Utf8:
    case Type.LargeUtf8: {
      const encoder = new TextEncoder();
      const parts = cells.map((c) => (c === null || c === undefined ? new Uint8Array(0) : encoder.encode(String(c))));
      const total = parts.reduce((n, p) => n + p.length, 0);
      const data = new Uint8Array(total);
      const large = type.typeId === Type.LargeUtf8;
      const offsets = large ? new BigInt64Array(length + 1) : new Int32Array(length + 1);
      let at = 0;
      parts.forEach((p, i) => {
        data.set(p, at);
        at += p.length;
        offsets[i + 1] = (large ? BigInt(at) : at) as never;
      });
      return makeData({ ...base, type, data, valueOffsets: offsets } as never);
    }
  }
  // Arrow JS's builders (vectorFromArray) compile a function from text: refused under the CSP.
  throw new ExprError("UnsupportedInBrowser", `the browser does not write Arrow ${String(type)} columns`);
}

/** The rows as an Arrow table of exactly `schema` (columns matched by name, in order). */
export function tableOfRows(rows: Rows, schema: Schema): Table {
  const names = rows.columns.map((c) => c.name);
  const wanted = schema.fields.map((f) => f.name);
  if (names.join("\u0000") !== wanted.join("\u0000")) {
    throw new Error(`columns ${JSON.stringify(names)} where ${JSON.stringify(wanted)} were expected`);
  }
  for (const c of rows.columns) column(rows, c.name); // refuses a column it could not read
  const children = schema.fields.map((f: Field, i) => dataOf(rows.columns[i].cells, f.type));
  const struct = makeData({ type: new Struct(schema.fields), length: rows.length, nullCount: 0, children });
  return new Table([new RecordBatch(schema, struct)]);
}

export function schemaOf(b64: string): Schema {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  return tableFromIPC(bytes).schema;
}

export interface TaskOutcome {
  bytes: Uint8Array;
  rowsIn: number;
  rowsOut: number;
}

/** A task over its chunk's bytes (Arrow IPC stream): the result's Arrow IPC stream bytes. */
export function runTask(task: Pick<TaskMessage, "steps" | "schema">, chunk: Uint8Array): TaskOutcome {
  const input = tableFromIPC(chunk);
  const rows = runSteps(task.steps, rowsOf(input));
  const table = tableOfRows(rows, schemaOf(task.schema));
  return { bytes: tableToIPC(table, "stream"), rowsIn: input.numRows, rowsOut: rows.length };
}
