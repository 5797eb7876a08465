/**
 * The interpreter's data are Arrow JS columns: a vector's cells are read from its buffers
 * (Int64 and timestamps as BigInt64Array, never through JS numbers; the sign bit of a NaN from
 * the raw f64 bits), and the JSON-safe columns of the test vectors (int64 as decimal strings,
 * dates and timestamps as ISO text, NaN/Infinity/-NaN as strings) are built into Arrow vectors
 * the same way, so the conformance page runs the interpreter over real Arrow data.
 */
import {
  Bool,
  DateDay,
  Float64,
  Int32,
  Int64,
  Table,
  TimestampMicrosecond,
  Type,
  TimeUnit,
  Utf8,
  makeData,
  makeVector,
  type DataType,
  type Vector,
} from "apache-arrow";

import { DAY_US, civilFromDays, floorDiv } from "./dates";
import { fail } from "./errors";
import { NEG_NAN, isNaNv, type F64 } from "./floats";
import { daysFromCivil } from "./nodes";
import type { Batch } from "./evaluate";
import type { Schema } from "./checker";
import type { Cell } from "./values";

/** The canonical type name of an Arrow type (types the browser refuses keep a name the
 * checker refuses with a reason). */
export function typeName(t: DataType): string {
  switch (t.typeId) {
    case Type.Int: {
      const i = t as unknown as { bitWidth: number; isSigned: boolean };
      return `${i.isSigned ? "i" : "u"}${i.bitWidth}`;
    }
    case Type.Float:
      return (t as unknown as { precision: number }).precision === 2 ? "f64" : "f32";
    case Type.Bool:
      return "bool8";
    case Type.Utf8:
    case Type.LargeUtf8:
      return "utf8";
    case Type.Date:
      return (t as unknown as { unit: number }).unit === 0 ? "date" : "date64";
    case Type.Timestamp: {
      const ts = t as unknown as { unit: number; timezone: string | null };
      if (ts.unit !== TimeUnit.MICROSECOND) return "timestamp[other unit]";
      return ts.timezone ? `timestamp[us, ${ts.timezone}]` : "timestamp[us]";
    }
    case Type.Decimal:
      return "decimal";
    default:
      return String(t);
  }
}

const bitsView = (values: Float64Array) => new Uint32Array(values.buffer, values.byteOffset, values.length * 2);

/** The cells of one Arrow vector of a supported type. */
export function vectorCells(vector: Vector, type: string): Cell[] {
  const out: Cell[] = [];
  for (const data of vector.data) {
    // Fixed-width values are sliced with the data (index i); the validity bitmap is read
    // through getValid, which applies the data's offset.
    const values = data.values as ArrayLike<unknown>;
    const words = type === "f64" ? bitsView(data.values as Float64Array) : null;
    const whole = type === "bool8" || type === "utf8" ? makeVector(data) : null;
    for (let i = 0; i < data.length; i++) {
      if (!data.getValid(i)) {
        out.push(null);
        continue;
      }
      switch (type) {
        case "i32":
          out.push(BigInt(values[i] as number));
          break;
        case "i64":
        case "timestamp[us]":
          out.push(values[i] as bigint);
          break;
        case "f64": {
          const v = values[i] as number;
          out.push(Number.isNaN(v) && ((words as Uint32Array)[2 * i + 1] & 0x80000000) !== 0 ? NEG_NAN : v);
          break;
        }
        case "date":
          out.push(values[i] as number);
          break;
        case "bool8":
          out.push(Boolean((whole as Vector).get(i)));
          break;
        default:
          out.push((whole as Vector).get(i) as string);
      }
    }
  }
  return out;
}

/** A table as the interpreter's schema and batch (only the columns in `used` are read). */
export function batchOf(table: Table, used?: ReadonlySet<string>): { schema: Schema; batch: Batch } {
  const schema = new Map<string, string>();
  const columns = new Map<string, Cell[]>();
  for (const field of table.schema.fields) {
    const type = typeName(field.type);
    schema.set(field.name, type);
    if (used && !used.has(field.name)) continue;
    const vector = table.getChild(field.name) as Vector;
    if (["i32", "i64", "f64", "bool8", "utf8", "date", "timestamp[us]"].includes(type)) {
      columns.set(field.name, vectorCells(vector, type));
    }
  }
  return { schema, batch: { rows: table.numRows, columns } };
}

// --- JSON-safe values (the vectors' encoding; platform_core.expr.vectors writes it) ----------

export type JsonCell = null | boolean | number | string;

const ISO_DATE = /^([+-]?[0-9]{4,6})-([0-9]{2})-([0-9]{2})$/;
const ISO_TS = /^([+-]?[0-9]{4,6})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6})$/;

const year = (y: number) => (y >= 0 && y <= 9999 ? String(y).padStart(4, "0") : `${y < 0 ? "-" : "+"}${String(Math.abs(y)).padStart(6, "0")}`);
const two = (n: number | bigint) => String(n).padStart(2, "0");

export function isoDate(days: number): string {
  const [y, m, d] = civilFromDays(days);
  return `${year(y)}-${two(m)}-${two(d)}`;
}

export function isoTimestamp(micros: bigint): string {
  const days = floorDiv(micros, DAY_US);
  const ofDay = micros - days * DAY_US;
  const s = ofDay / 1_000_000n;
  return `${isoDate(Number(days))}T${two(s / 3600n)}:${two((s / 60n) % 60n)}:${two(s % 60n)}.${String(ofDay % 1_000_000n).padStart(6, "0")}`;
}

function parseDate(text: string): number {
  const m = ISO_DATE.exec(text);
  if (!m) return fail(`not an ISO date: ${text}`);
  return daysFromCivil(Number(m[1]), Number(m[2]), Number(m[3]));
}

export function decodeCell(v: JsonCell, type: string): Cell {
  if (v === null) return null;
  switch (type) {
    case "i32":
    case "i64":
      return BigInt(v as string);
    case "f64":
      if (v === "NaN") return NaN;
      if (v === "-NaN") return NEG_NAN;
      if (v === "Infinity") return Infinity;
      if (v === "-Infinity") return -Infinity;
      return v as number;
    case "date":
      return parseDate(v as string);
    case "timestamp[us]": {
      const m = ISO_TS.exec(v as string);
      if (!m) return fail(`not an ISO timestamp: ${v}`);
      const days = BigInt(daysFromCivil(Number(m[1]), Number(m[2]), Number(m[3])));
      const seconds = BigInt(Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]));
      return days * DAY_US + seconds * 1_000_000n + BigInt(m[7]);
    }
    default:
      return v as boolean | string;
  }
}

export function encodeCell(v: Cell, type: string): JsonCell {
  if (v === null) return null;
  switch (type) {
    case "i32":
    case "i64":
      return (v as bigint).toString();
    case "f64": {
      const x = v as F64;
      if (isNaNv(x)) return x === NEG_NAN ? "-NaN" : "NaN";
      if (x === Infinity) return "Infinity";
      if (x === -Infinity) return "-Infinity";
      return x as number;
    }
    case "date":
      return isoDate(v as number);
    case "timestamp[us]":
      return isoTimestamp(v as bigint);
    default:
      return v as boolean | string;
  }
}

function validity(cells: Cell[]): Uint8Array {
  const bits = new Uint8Array(Math.ceil(cells.length / 8) || 1);
  cells.forEach((c, i) => {
    if (c !== null) bits[i >> 3] |= 1 << (i & 7);
  });
  return bits;
}

/** An Arrow vector of JSON-safe values of a supported type. */
export function vectorOf(values: JsonCell[], type: string): Vector {
  const cells = values.map((v) => decodeCell(v, type));
  const length = cells.length;
  const nullBitmap = validity(cells);
  const nullCount = cells.filter((c) => c === null).length;
  const base = { length, nullCount, nullBitmap };
  switch (type) {
    case "i32":
      return makeVector(makeData({ ...base, type: new Int32(), data: Int32Array.from(cells, (c) => (c === null ? 0 : Number(c))) }));
    case "i64":
      return makeVector(makeData({ ...base, type: new Int64(), data: BigInt64Array.from(cells, (c) => (c === null ? 0n : (c as bigint))) }));
    case "timestamp[us]":
      return makeVector(
        makeData({ ...base, type: new TimestampMicrosecond(), data: BigInt64Array.from(cells, (c) => (c === null ? 0n : (c as bigint))) }),
      );
    case "date":
      return makeVector(makeData({ ...base, type: new DateDay(), data: Int32Array.from(cells, (c) => (c === null ? 0 : (c as number))) }));
    case "f64": {
      const data = Float64Array.from(cells, (c) => (c === null || c === NEG_NAN ? 0 : (c as number)));
      const words = bitsView(data);
      cells.forEach((c, i) => {
        if (c === NEG_NAN) {
          words[2 * i] = 0;
          words[2 * i + 1] = 0xfff80000; // little-endian high word: sign, exponent, quiet bit
        }
      });
      return makeVector(makeData({ ...base, type: new Float64(), data }));
    }
    // Built by hand: Arrow JS's builders (vectorFromArray) compile a function from text, which
    // the pages' CSP (no unsafe-eval) refuses.
    case "bool8": {
      const data = new Uint8Array(Math.ceil(length / 8) || 1);
      cells.forEach((c, i) => {
        if (c === true) data[i >> 3] |= 1 << (i & 7);
      });
      return makeVector(makeData({ ...base, type: new Bool(), data }));
    }
    case "utf8": {
      const parts = cells.map((c) => new TextEncoder().encode(c === null ? "" : (c as string)));
      const valueOffsets = new Int32Array(length + 1);
      parts.forEach((p, i) => (valueOffsets[i + 1] = valueOffsets[i] + p.length));
      const data = new Uint8Array(valueOffsets[length]);
      parts.forEach((p, i) => data.set(p, valueOffsets[i]));
      return makeVector(makeData({ ...base, type: new Utf8(), data, valueOffsets }));
    }
  }
  return fail(`no Arrow vector for type ${type}`);
}

/** Columns of JSON-safe values as an Arrow table. */
export function tableOf(columns: { name: string; type: string; values: JsonCell[] }[], rows: number): Table {
  if (!columns.length) return new Table({ _: vectorOf(new Array<JsonCell>(rows).fill(null), "bool8") });
  return new Table(Object.fromEntries(columns.map((c) => [c.name, vectorOf(c.values, c.type)])));
}
