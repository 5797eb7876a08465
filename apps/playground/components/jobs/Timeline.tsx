/**
 * The job's tasks over time, a Gantt chart in plain CSS: one lane group per stage, tasks
 * packed into lanes so overlapping ones sit on separate rows (a lane is a slot a task ran in,
 * like a worker), one bar per task the record keeps (Elytra keeps the first 100 per stage and
 * counts the rest). Bars are focusable; the line under the chart names the one in focus.
 */
"use client";

import { useMemo, useState } from "react";

import { Empty } from "@/components/ui";
import { count, seconds } from "@/lib/format";

import styles from "./jobs.module.css";
import type { JobRecord, TaskBar } from "./record";

interface Placed extends TaskBar {
  key: string;
}

interface Lane {
  stage: number;
  bars: Placed[];
}

/** Tasks of each stage, greedily packed into the fewest lanes where none overlap. */
function pack(tasks: Record<string, TaskBar>): Lane[] {
  const byStage = new Map<number, Placed[]>();
  for (const [key, t] of Object.entries(tasks)) {
    if (typeof t?.start !== "number" || typeof t?.end !== "number") continue;
    const list = byStage.get(t.stage) ?? [];
    list.push({ ...t, key });
    byStage.set(t.stage, list);
  }
  const lanes: Lane[] = [];
  for (const stage of [...byStage.keys()].sort((a, b) => a - b)) {
    const bars = byStage.get(stage)!.sort((a, b) => a.start - b.start);
    const mine: { end: number; lane: Lane }[] = [];
    for (const bar of bars) {
      const free = mine.find((l) => l.end <= bar.start);
      if (free) {
        free.lane.bars.push(bar);
        free.end = bar.end;
      } else {
        const lane = { stage, bars: [bar] };
        mine.push({ end: bar.end, lane });
        lanes.push(lane);
      }
    }
  }
  return lanes;
}

function describe(b: Placed, origin: number): string {
  const parts = [
    `task ${b.key} (stage ${b.stage})`,
    `from ${seconds(b.start - origin)} to ${seconds(b.end - origin)}`,
    `${seconds(b.end - b.start)}`,
  ];
  if (b.rows !== undefined) parts.push(`${count(b.rows)} rows out`);
  if (b.worker !== undefined) parts.push(`worker ${b.worker}`);
  if (b.attempt && b.attempt > 1) parts.push(`attempt ${b.attempt}`);
  return parts.join(", ");
}

export function Timeline({ job }: { job: JobRecord }) {
  const tasks = job.timeline?.tasks;
  const lanes = useMemo(() => pack(tasks ?? {}), [tasks]);
  const [focus, setFocus] = useState<string | null>(null);
  const all = lanes.flatMap((l) => l.bars);
  if (!all.length) {
    return (
      <Empty title="No task has ended yet">
        {job.state === "queued" || job.state === "running"
          ? "Bars appear here as tasks finish."
          : "This job ran no tasks (or was stopped before any ended)."}
      </Empty>
    );
  }
  const origin = Math.min(job.started ?? Infinity, ...all.map((b) => b.start));
  const last = Math.max(...all.map((b) => b.end));
  const span = Math.max(last - origin, 1e-3);
  const focused = all.find((b) => b.key === focus) ?? null;
  return (
    <figure className={styles.timeline} aria-label="Task timeline" data-testid="timeline" style={{ margin: 0 }}>
      {lanes.map((lane, i) => (
        <div className={styles.lane} key={i}>
          <span className={styles.laneLabel}>{i === 0 || lanes[i - 1].stage !== lane.stage ? `stage ${lane.stage}` : ""}</span>
          <div className={styles.track}>
            {lane.bars.map((b) => (
              <span
                key={b.key}
                className={styles.bar}
                data-testid="task-bar"
                data-stage-odd={lane.stage % 2 === 1}
                tabIndex={0}
                role="img"
                aria-label={describe(b, origin)}
                title={describe(b, origin)}
                onFocus={() => setFocus(b.key)}
                onMouseEnter={() => setFocus(b.key)}
                style={{ left: `${((b.start - origin) / span) * 100}%`, width: `${((b.end - b.start) / span) * 100}%` }}
              />
            ))}
          </div>
        </div>
      ))}
      <div className={styles.axis} aria-hidden="true">
        <span />
        <div>
          <span>0</span>
          <span>{seconds(span / 2)}</span>
          <span>{seconds(span)}</span>
        </div>
      </div>
      <figcaption className={`${styles.tip} muted`}>
        {focused ? describe(focused, origin) : `${all.length} task${all.length === 1 ? "" : "s"}; focus or point at a bar for its times.`}
        {job.timeline?.omitted ? ` ${count(job.timeline.omitted)} more tasks ran but are not kept in the record.` : ""}
      </figcaption>
    </figure>
  );
}
