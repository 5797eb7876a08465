/**
 * Chunks and bytes per node as a small horizontal bar chart (ECharts, tree-shaken: bars,
 * grid, tooltip, legend, canvas). The chart is a picture of the table next to it, so it is
 * aria-hidden; it follows the container's width (a ResizeObserver) for narrow windows.
 */
"use client";

import { BarChart } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import * as echarts from "echarts/core";
import { CanvasRenderer } from "echarts/renderers";
import { useEffect, useRef } from "react";

import { bytes } from "@/lib/format";

import styles from "./cluster.module.css";
import type { LakeNode } from "./types";

echarts.use([BarChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

const COLORS = { alive: "#2557d6", suspect: "#b54708", dead: "#b42318" };

export function NodesChart({ nodes }: { nodes: LakeNode[] }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const c = echarts.init(el, undefined, { renderer: "canvas" });
    chart.current = c;
    const ro = new ResizeObserver(() => c.resize());
    ro.observe(el);
    return () => {
      ro.disconnect();
      c.dispose();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const names = nodes.map((n) => n.id);
    c.setOption(
      {
        animation: false,
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
        legend: { data: ["chunks", "bytes"], top: 0 },
        grid: { left: 8, right: 16, top: 28, bottom: 4, containLabel: true },
        yAxis: { type: "category", data: names, inverse: true, axisLabel: { width: 140, overflow: "truncate" } },
        xAxis: [
          { type: "value", name: "chunks", minInterval: 1, position: "top", show: false },
          { type: "value", name: "bytes", show: false },
        ],
        series: [
          {
            name: "chunks",
            type: "bar",
            xAxisIndex: 0,
            data: nodes.map((n) => ({ value: n.chunks ?? 0, itemStyle: { color: COLORS[n.state] } })),
          },
          {
            name: "bytes",
            type: "bar",
            xAxisIndex: 1,
            data: nodes.map((n) => n.bytes ?? 0),
            itemStyle: { color: "#98a2b3" },
            tooltip: { valueFormatter: (v: unknown) => bytes(typeof v === "number" ? v : null) },
          },
        ],
      },
      { notMerge: true },
    );
  }, [nodes]);

  return (
    <div
      ref={box}
      className={styles.chart}
      style={{ height: `${Math.max(120, 48 + nodes.length * 44)}px` }}
      aria-hidden="true"
      data-testid="nodes-chart"
    />
  );
}
