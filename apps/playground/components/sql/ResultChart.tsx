/**
 * A chart of the result with ECharts (only the bar, line and scatter charts and the parts
 * they need are bundled). Defaults come from the column types: a text or time column on x,
 * the first numeric column on y; bars over categories, lines over time, scatter otherwise.
 */
"use client";

import { BarChart, LineChart, ScatterChart } from "echarts/charts";
import { DataZoomComponent, GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { useEffect, useId, useMemo, useRef, useState } from "react";

import { Empty } from "@/components/ui";
import { cellText, Instant, isNumeric, type Frame } from "@/lib/arrow";

import styles from "@/app/sql/sql.module.css";

echarts.use([BarChart, LineChart, ScatterChart, GridComponent, TooltipComponent, LegendComponent, DataZoomComponent, CanvasRenderer]);

/** Rows drawn at most (a chart of more points says nothing more and costs a lot). */
export const CHART_ROWS = 20_000;
/** Distinct values of the series column drawn at most. */
export const CHART_SERIES = 24;

type Kind = "bar" | "line" | "scatter";

function isTime(type: string): boolean {
  return /^(date|timestamp|time)/i.test(type);
}

function toNumber(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "bigint") return Number(v);
  if (v instanceof Date) return v.getTime();
  if (v instanceof Instant) return v.ms;
  const n = Number(typeof v === "string" ? v : String(v));
  return Number.isFinite(n) ? n : null;
}

function defaults(frame: Frame): { kind: Kind; x: number; ys: number[]; series: number } {
  const cols = frame.columns;
  const numeric = cols.map((c) => isNumeric(c.type));
  let x = cols.findIndex((c) => isTime(c.type));
  if (x < 0) x = numeric.findIndex((n) => !n);
  if (x < 0) x = 0;
  const y = numeric.findIndex((n, i) => n && i !== x);
  const kind: Kind = isTime(cols[x]?.type ?? "") ? "line" : numeric[x] ? "scatter" : "bar";
  return { kind, x, ys: y >= 0 ? [y] : [], series: -1 };
}

export function ResultChart({ frame }: { frame: Frame }) {
  const id = useId();
  const init = useMemo(() => defaults(frame), [frame]);
  const [kind, setKind] = useState<Kind>(init.kind);
  const [x, setX] = useState(init.x);
  const [ys, setYs] = useState<number[]>(init.ys);
  const [series, setSeries] = useState(init.series);
  const [shownFor, setShownFor] = useState(frame);
  if (shownFor !== frame) {
    // A new result: start again from its defaults.
    setShownFor(frame);
    setKind(init.kind);
    setX(init.x);
    setYs(init.ys);
    setSeries(init.series);
  }
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const numericCols = frame.columns.map((c, i) => ({ ...c, i })).filter((c) => isNumeric(c.type));
  const rows = Math.min(frame.rowCount, CHART_ROWS);

  const option = useMemo(() => {
    if (!ys.length || x >= frame.columns.length) return null;
    const xType = frame.columns[x].type;
    const axis = isTime(xType) ? "time" : isNumeric(xType) && kind !== "bar" ? "value" : "category";
    const xValue = (r: number) => {
      const v = frame.cell(r, x);
      return axis === "category" ? cellText(v) : axis === "time" ? toNumber(v) : toNumber(v);
    };
    const groups = new Map<string, number[]>();
    let dropped = 0;
    for (let r = 0; r < rows; r++) {
      const key = series >= 0 ? cellText(frame.cell(r, series)) : "";
      let g = groups.get(key);
      if (!g) {
        if (groups.size >= CHART_SERIES) {
          dropped++;
          continue;
        }
        g = [];
        groups.set(key, g);
      }
      g.push(r);
    }
    const out = [];
    for (const [key, idx] of groups) {
      for (const y of ys) {
        const yName = frame.columns[y].name;
        out.push({
          name: series >= 0 ? (ys.length > 1 ? `${key} · ${yName}` : key) : yName,
          type: kind,
          data: idx.map((r) => [xValue(r), toNumber(frame.cell(r, y))]),
          symbolSize: kind === "scatter" ? 6 : 4,
          showSymbol: kind !== "line" || idx.length < 200,
          large: kind === "scatter" && idx.length > 2000,
        });
      }
    }
    return {
      option: {
        animation: false,
        tooltip: { trigger: kind === "scatter" ? "item" : "axis" },
        legend: { type: "scroll", top: 0 },
        grid: { left: 56, right: 24, top: 36, bottom: 56, containLabel: true },
        xAxis: { type: axis, name: frame.columns[x].name, nameLocation: "middle", nameGap: 32 },
        yAxis: { type: "value", name: ys.length === 1 ? frame.columns[ys[0]].name : undefined },
        dataZoom: [{ type: "inside" }],
        series: out,
      },
      dropped,
    };
  }, [frame, kind, x, ys, series, rows]);

  useEffect(() => {
    const el = box.current;
    if (!el || !option) return;
    if (chart.current && chart.current.getDom() !== el) chart.current.dispose();
    const c =
      chart.current && !chart.current.isDisposed() ? chart.current : echarts.init(el, undefined, { renderer: "canvas" });
    chart.current = c;
    c.setOption(option.option, true);
    const ro = new ResizeObserver(() => c.resize());
    ro.observe(el);
    return () => ro.disconnect();
  }, [option]);

  useEffect(
    () => () => {
      chart.current?.dispose();
      chart.current = null;
    },
    [],
  );

  if (!frame.rowCount) return <Empty title="Nothing to chart">The result has no rows.</Empty>;
  if (!numericCols.length)
    return (
      <Empty title="Nothing to chart">
        The result has no numeric column; select a count, sum or other number to plot it.
      </Empty>
    );

  const toggleY = (i: number) => setYs((cur) => (cur.includes(i) ? cur.filter((c) => c !== i) : [...cur, i].sort((a, b) => a - b)));

  return (
    <div className={styles.chartWrap}>
      <div className={styles.chartControls} role="group" aria-label="Chart settings">
        <label>
          Chart type
          <select value={kind} onChange={(e) => setKind(e.target.value as Kind)}>
            <option value="bar">Bar</option>
            <option value="line">Line</option>
            <option value="scatter">Scatter</option>
          </select>
        </label>
        <label>
          X axis
          <select value={x} onChange={(e) => setX(Number(e.target.value))}>
            {frame.columns.map((c, i) => (
              <option key={i} value={i}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
        <fieldset className={styles.ys}>
          <legend>Y axis</legend>
          {numericCols.map((c) => (
            <label key={c.i} className="inline">
              <input type="checkbox" checked={ys.includes(c.i)} onChange={() => toggleY(c.i)} />
              {c.name}
            </label>
          ))}
        </fieldset>
        <label>
          Series
          <select value={series} onChange={(e) => setSeries(Number(e.target.value))}>
            <option value={-1}>(none)</option>
            {frame.columns.map((c, i) => (
              <option key={i} value={i}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      {option ? (
        <>
          <div
            ref={box}
            className={styles.chart}
            role="img"
            aria-label={`${kind} chart of ${ys.map((y) => frame.columns[y].name).join(", ")} by ${frame.columns[x].name}`}
            data-testid="chart"
            id={id}
          />
          {frame.rowCount > rows || option.dropped ? (
            <p className="muted">
              {frame.rowCount > rows ? `Charting the first ${rows.toLocaleString("en-US")} rows. ` : ""}
              {option.dropped ? `Only the first ${CHART_SERIES} series are drawn.` : ""}
            </p>
          ) : null}
        </>
      ) : (
        <Empty title="Pick a Y column">Tick one or more numeric columns to plot against the X axis.</Empty>
      )}
    </div>
  );
}
