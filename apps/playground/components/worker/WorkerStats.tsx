/** What a lent tab is doing: its connection, tasks done, rows/s and bytes (lib/worker/client). */
"use client";

import { bytes, count } from "@/lib/format";
import type { LendStats } from "@/lib/worker/client";

const STATE_TEXT: Record<string, string> = {
  idle: "not lent",
  checking: "checking the interpreter",
  connecting: "connecting",
  connected: "connected",
  reconnecting: "reconnecting",
  paused: "paused (tab hidden)",
  refused: "refused",
  stopped: "stopped",
};

export function WorkerStats({ stats, busySeconds }: { stats: LendStats; busySeconds: number }) {
  const rate = busySeconds > 0 ? stats.rowsIn / busySeconds : 0;
  const last = stats.timings.slice(-20);
  const mean = (f: (t: { fetchMs: number; runMs: number }) => number) =>
    last.length ? last.reduce((a, t) => a + f(t), 0) / last.length : null;
  const fetchMs = mean((t) => t.fetchMs);
  const runMs = mean((t) => t.runMs);
  return (
    <section aria-label="This tab as a worker" data-testid="worker-stats">
      <p>
        State:{" "}
        <strong data-testid="worker-state" data-state={stats.state}>
          {STATE_TEXT[stats.state] ?? stats.state}
        </strong>
        {stats.banned ? (
          <>
            {" "}
            · <strong className="error" data-testid="worker-banned">banned for the current job</strong> (a result
            differed from a trusted re-run)
          </>
        ) : null}
        {stats.workerId ? <span className="muted"> · worker {stats.workerId}</span> : null}
      </p>
      <table className="data" aria-label="Worker statistics">
        <tbody>
          <tr>
            <th scope="row">Slots (Web Workers)</th>
            <td className="num" data-testid="worker-slots">
              {stats.busy} busy of {stats.slots}
            </td>
          </tr>
          <tr>
            <th scope="row">Tasks done (accepted)</th>
            <td className="num" data-testid="worker-tasks-done">
              {count(stats.tasksDone)}
            </td>
          </tr>
          <tr>
            <th scope="row">Results sent · rejected · failed · cancelled</th>
            <td className="num" data-testid="worker-tasks-other">
              {count(stats.tasksSent)} · {count(stats.rejected)} · {count(stats.errors)} · {count(stats.cancelled)}
            </td>
          </tr>
          <tr>
            <th scope="row">Rows read</th>
            <td className="num" data-testid="worker-rows">
              {count(stats.rowsIn)} ({count(Math.round(rate))} rows/s busy)
            </td>
          </tr>
          <tr>
            <th scope="row">Bytes in · out</th>
            <td className="num" data-testid="worker-bytes">
              {bytes(stats.bytesIn)} · {bytes(stats.bytesOut)}
            </td>
          </tr>
          <tr>
            <th scope="row">Per task (last {last.length}): fetch · compute</th>
            <td className="num">
              {fetchMs === null ? "–" : `${fetchMs.toFixed(1)} ms · ${(runMs as number).toFixed(1)} ms`}
            </td>
          </tr>
        </tbody>
      </table>
      {stats.lastRejection ? <p className="muted">Last rejection: {stats.lastRejection}</p> : null}
    </section>
  );
}
