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

/** An Arrow table (e.g. from `tableFromIPC`). Decimals (DuckDB's SUM of integers is one)
 * come out as exact decimal strings: Arrow's own values print unscaled. */
export function frameFromArrow(table: Table): Frame {
  const fields = table.schema.fields;
  const vectors = fields.map((_, i) => table.getChildAt(i));
  const scales = fields.map((f) => (DataType.isDecimal(f.type) ? f.type.scale : null));
  return {
    columns: fields.map((f) => ({ name: f.name, type: String(f.type) })),
    rowCount: table.numRows,
    cell: (r, c) => {
      const v = vectors[c]?.get(r) ?? null;
      const scale = scales[c];
      return scale === null || scale === undefined ? v : decimalText(v, scale);
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
