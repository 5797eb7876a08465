/**
 * A virtualised grid over a Frame: only the rows in view are rendered (TanStack Virtual), so
 * a result of 100k rows opens as fast as ten. TanStack Table gives the column model and the
 * sort state of the headers; the rows themselves are never turned into objects: sorting orders
 * an index array by one column's values read once, and a visible row reads its cells on demand.
 */
"use client";

import {
  flexRender,
  getCoreRowModel,
  useReactTable,
  type ColumnDef,
  type SortingState,
} from "@tanstack/react-table";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useMemo, useRef, useState } from "react";

import { cellText, Instant, isNumeric, type Frame } from "@/lib/arrow";

import styles from "./DataGrid.module.css";

const ROW_HEIGHT = 28;
const NO_ROWS: number[] = [];

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "bigint" && typeof b === "bigint") return a < b ? -1 : 1;
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  if (a instanceof Instant && b instanceof Instant) return a.ms - b.ms;
  const sa = cellText(a);
  const sb = cellText(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** Row numbers in the order of `sorting` (its first column), or null for the frame's order. */
function sortedOrder(frame: Frame, sorting: SortingState): Uint32Array | null {
  if (!sorting.length) return null;
  const col = Number(sorting[0].id);
  const values = new Array<unknown>(frame.rowCount);
  for (let r = 0; r < frame.rowCount; r++) values[r] = frame.cell(r, col);
  const order = Uint32Array.from({ length: frame.rowCount }, (_, i) => i);
  const sign = sorting[0].desc ? -1 : 1;
  // A stable sort: ties keep the frame's order.
  order.sort((a, b) => sign * compare(values[a], values[b]) || a - b);
  return order;
}

export interface DataGridProps {
  frame: Frame;
  /** Accessible name of the grid (e.g. "Query results"). */
  label: string;
  /** Height of the scrolling area in px (default 420). */
  height?: number;
}

export function DataGrid({ frame, label, height = 420 }: DataGridProps) {
  const [sorting, setSorting] = useState<SortingState>([]);
  const columns = useMemo<ColumnDef<number>[]>(
    () =>
      frame.columns.map((c, i) => ({
        id: `${i}`,
        header: c.name,
        accessorFn: (row: number) => frame.cell(row, i),
        meta: { numeric: isNumeric(c.type), type: c.type },
      })),
    [frame],
  );
  const numeric = useMemo(() => frame.columns.map((c) => isNumeric(c.type)), [frame]);
  const table = useReactTable({
    data: NO_ROWS, // headers and sort state only; rows are rendered from `order` below
    columns,
    state: { sorting },
    onSortingChange: setSorting,
    manualSorting: true,
    enableMultiSort: false,
    sortDescFirst: false,
    getCoreRowModel: getCoreRowModel(),
  });
  const order = useMemo(() => sortedOrder(frame, sorting), [frame, sorting]);
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: frame.rowCount,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });
  const items = virtual.getVirtualItems();
  const padTop = items.length ? items[0].start : 0;
  const padBottom = items.length ? virtual.getTotalSize() - items[items.length - 1].end : 0;

  return (
    <div className={styles.wrap}>
      <div ref={scroller} className={styles.scroller} style={{ maxHeight: height }} tabIndex={0} role="region" aria-label={label}>
        <table className="data" aria-rowcount={frame.rowCount + 1} data-testid="grid">
          <thead>
            {table.getHeaderGroups().map((hg) => (
              <tr key={hg.id}>
                {hg.headers.map((h) => {
                  const meta = h.column.columnDef.meta as { numeric: boolean; type: string };
                  const sorted = h.column.getIsSorted();
                  return (
                    <th
                      key={h.id}
                      className={meta.numeric ? "num" : undefined}
                      aria-sort={sorted === "asc" ? "ascending" : sorted === "desc" ? "descending" : "none"}
                      title={meta.type}
                    >
                      <button type="button" className={styles.sort} onClick={h.column.getToggleSortingHandler()}>
                        {flexRender(h.column.columnDef.header, h.getContext())}
                        <span aria-hidden="true">{sorted === "asc" ? " ▲" : sorted === "desc" ? " ▼" : ""}</span>
                      </button>
                    </th>
                  );
                })}
              </tr>
            ))}
          </thead>
          <tbody>
            {padTop > 0 ? (
              <tr aria-hidden="true">
                <td style={{ height: padTop, padding: 0, border: 0 }} colSpan={frame.columns.length} />
              </tr>
            ) : null}
            {items.map((vi) => {
              const r = order ? order[vi.index] : vi.index;
              return (
                <tr key={vi.index} aria-rowindex={vi.index + 2} style={{ height: ROW_HEIGHT }}>
                  {frame.columns.map((_, c) => {
                    const v = frame.cell(r, c);
                    return (
                      <td key={c} className={numeric[c] ? "num" : undefined}>
                        {v === null || v === undefined ? <span className={styles.null}>NULL</span> : cellText(v)}
                      </td>
                    );
                  })}
                </tr>
              );
            })}
            {padBottom > 0 ? (
              <tr aria-hidden="true">
                <td style={{ height: padBottom, padding: 0, border: 0 }} colSpan={frame.columns.length} />
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <div className={styles.foot} data-testid="grid-rows">
        {frame.rowCount.toLocaleString("en-US")} {frame.rowCount === 1 ? "row" : "rows"}
      </div>
    </div>
  );
}
