/**
 * Results as a grid reads them: column names and types, a row count, and one cell at a time.
 * Lake's JSON answers ({columns, rows}) and Arrow IPC streams (format=arrow, read by
 * apache-arrow) both become a Frame, so the grid, the chart and downloads share one shape
 * and a big Arrow result is never copied into per-row JavaScript objects.
 */
import { DataType, tableFromIPC, type Table } from "apache-arrow";

export interface Column {
  name: string;
  type: string;
}

export interface Frame {
  columns: Column[];
  rowCount: number;
  /** The value at (row, column): null, boolean, number, bigint, string, Date or a nested value. */
  cell(row: number, col: number): unknown;
}

/** Lake's JSON result: `columns: [{name, type}]`, `rows: [[...], ...]`. */
export function frameFromRows(columns: Column[], rows: unknown[][]): Frame {
  return { columns, rowCount: rows.length, cell: (r, c) => rows[r]?.[c] ?? null };
}

/** A decimal's unscaled digits (what Arrow's BigNum prints) with its scale applied. */
function decimalText(value: unknown, scale: number): string | null {
  if (value === null || value === undefined) return null;
  const digits = String(value);
  if (scale <= 0) return digits;
  const neg = digits.startsWith("-");
  const d = (neg ? digits.slice(1) : digits).padStart(scale + 1, "0");
  return `${neg ? "-" : ""}${d.slice(0, -scale)}.${d.slice(-scale)}`;
}

/**
 * A time, date or time of day read from Arrow, which hands them over as numbers (milliseconds
 * since 1970, or a count of its unit): `text` is how DuckDB writes it (`2024-01-02
 * 03:04:05.123456`), `ms` its position on a time axis (charts and sorting use valueOf()).
 */
export class Instant {
  constructor(
    readonly ms: number,
    readonly text: string,
  ) {}
  valueOf(): number {
    return this.ms;
  }
  toString(): string {
    return this.text;
  }
  toJSON(): string {
    return this.text;
  }
}

const DAY_MS = 86_400_000;
const pad = (n: number, width = 2) => String(n).padStart(width, "0");

function dayText(ms: number): string {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  return `${y < 0 ? "-" + pad(-y, 4) : pad(y, 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** A time of day from microseconds since midnight: `12:34:56.789` (no trailing zeros). */
function clockText(micros: number): string {
  const s = Math.floor(micros / 1e6);
  const frac = Math.round(micros - s * 1e6);
  const text = `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
  return frac ? `${text}.${pad(frac, 6).replace(/0+$/, "")}` : text;
}

/** A timestamp (Arrow's milliseconds, fractional for micro- and nanoseconds) as DuckDB writes it. */
function timestampText(ms: number, zoned: boolean): string {
  const micros = Math.round(ms * 1000);
  const days = Math.floor(micros / (DAY_MS * 1000));
  return `${dayText(days * DAY_MS)} ${clockText(micros - days * DAY_MS * 1000)}${zoned ? "+00" : ""}`;
}

const MICROS_PER_UNIT = [1e6, 1e3, 1, 1e-3]; // TimeUnit: SECOND, MILLISECOND, MICROSECOND, NANOSECOND

/** Bytes as DuckDB writes a BLOB: printable ASCII as is, anything else as \xNN. */
function blobText(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}

type Reader = (value: unknown) => unknown;

/** How to turn a column's Arrow values into what the grid shows (identity when they print as is). */
function readerOf(type: DataType): Reader | null {
  if (DataType.isDecimal(type)) return (v) => decimalText(v, type.scale);
  if (DataType.isTimestamp(type)) {
    const zoned = Boolean(type.timezone);
    return (v) => (typeof v === "number" ? new Instant(v, timestampText(v, zoned)) : v);
  }
  if (DataType.isDate(type)) return (v) => (typeof v === "number" ? new Instant(v, dayText(v)) : v);
  if (DataType.isTime(type)) {
    const perUnit = MICROS_PER_UNIT[type.unit] ?? 1;
    return (v) => {
      if (typeof v !== "number" && typeof v !== "bigint") return v;
      const micros = Math.round(Number(v) * perUnit);
      return new Instant(micros / 1000, clockText(micros));
    };
  }
  if (DataType.isBinary(type) || DataType.isLargeBinary(type) || DataType.isFixedSizeBinary(type)) {
    return (v) => (v instanceof Uint8Array ? blobText(v) : v);
  }
  return null;
}

/** An Arrow table (e.g. from `tableFromIPC`). Decimals (DuckDB's SUM of integers is one)
 * come out as exact decimal strings (Arrow's own values print unscaled); times and dates as
 * Instants that print as DuckDB writes them; BLOBs as DuckDB's escaped text. */
export function frameFromArrow(table: Table): Frame {
  const fields = table.schema.fields;
  const vectors = fields.map((_, i) => table.getChildAt(i));
  const readers = fields.map((f) => readerOf(f.type));
  return {
    columns: fields.map((f) => ({ name: f.name, type: String(f.type) })),
    rowCount: table.numRows,
    cell: (r, c) => {
      const v = vectors[c]?.get(r) ?? null;
      const read = readers[c];
      return read && v !== null ? read(v) : v;
    },
  };
}

/** Read an Arrow IPC stream response (lake's `format: "arrow"`, a job's `?format=arrow`). */
export async function frameFromResponse(res: Response): Promise<Frame> {
  const table = tableFromIPC(new Uint8Array(await res.arrayBuffer()));
  return frameFromArrow(table);
}

/** The text a cell shows (and a CSV cell holds): NULL for null, exact integers, ISO times. */
export function cellText(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Instant) return value.text;
  if (typeof value === "object") {
    const v = value as { toJSON?: () => unknown };
    try {
      return JSON.stringify(typeof v.toJSON === "function" ? v.toJSON() : value, (_, x) =>
        typeof x === "bigint" ? x.toString() : x,
      );
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/** Whether a column holds numbers (right-aligned, chartable as a measure). */
export function isNumeric(type: string): boolean {
  return /^(u?int|i\d|u\d|int|float|f\d|double|decimal|Int|Uint|Float|Decimal)/i.test(type);
}
