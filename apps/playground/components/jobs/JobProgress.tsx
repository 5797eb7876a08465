/**
 * A job as it runs: state, tasks done of total (all stages, then per stage), rows and bytes,
 * spill, duration, its error, and a Cancel button while it can still be stopped. Everything
 * comes from the live record (useJob), so it moves as the driver writes it.
 */
"use client";

import { useState } from "react";

import { ErrorLine } from "@/components/ui";
import { api, errorText } from "@/lib/api";
import { bytes, count, seconds } from "@/lib/format";

import styles from "./jobs.module.css";
import { duration, isFinal, type JobRecord } from "./record";

export function StateBadge({ state }: { state: string }) {
  return (
    <span className={`badge ${state}`} data-testid="job-state">
      {state}
    </span>
  );
}

function stageLabel(key: string): string {
  return `stage ${key.replace(/^s/, "")}`;
}

export function JobProgress({ job, onChange }: { job: JobRecord; onChange?: (j: JobRecord) => void }) {
  const [cancelling, setCancelling] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const t = job.tasks ?? { total: 0, done: 0, running: 0, failed: 0 };
  const stages = Object.entries(job.timeline?.stages ?? {}).sort(([a], [b]) => Number(a.slice(1)) - Number(b.slice(1)));
  const final = isFinal(job.state);

  async function cancel() {
    setCancelling(true);
    setError(null);
    try {
      const j = await api<JobRecord>(`/api/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
      onChange?.(j);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setCancelling(false);
    }
  }

  return (
    <section aria-label="Progress" data-testid="job-progress">
      <div className={styles.head}>
        <StateBadge state={job.state} />
        <span data-testid="job-tasks">
          tasks {t.done} / {t.total}
        </span>
        {t.running ? <span className="muted">{t.running} running</span> : null}
        {t.failed ? <span className="warn">{t.failed} failed</span> : null}
        {job.state === "running" && t.total > 0 && t.done === t.total ? (
          <span className="muted" data-testid="job-phase">
            merging the tasks&apos; results in the driver
          </span>
        ) : null}
        {!final ? (
          <button type="button" className="danger" onClick={cancel} disabled={cancelling}>
            {cancelling ? "Cancelling…" : "Cancel job"}
          </button>
        ) : null}
      </div>
      <progress
        max={Math.max(1, t.total)}
        value={job.state === "succeeded" ? Math.max(1, t.total) : t.done}
        aria-label="Tasks done"
      />
      {stages.length ? (
        <div className={styles.stages} data-testid="job-stages">
          {stages.map(([key, s]) => (
            <div className={styles.stageRow} key={key}>
              <span>{stageLabel(key)}</span>
              <progress max={Math.max(1, s.total)} value={s.done} aria-label={`${stageLabel(key)}: tasks done`} />
              <span>
                {s.done} / {s.total}
              </span>
            </div>
          ))}
        </div>
      ) : null}
      <dl className={styles.facts}>
        <div>
          <dt>Rows out</dt>
          <dd data-testid="job-rows">{count(job.result?.rows ?? job.rows_out)}</dd>
        </div>
        <div>
          <dt>Read</dt>
          <dd>{bytes(job.bytes_in)}</dd>
        </div>
        <div>
          <dt>Task output</dt>
          <dd>{bytes(job.bytes_out)}</dd>
        </div>
        <div>
          <dt>Spilled</dt>
          <dd>{bytes(job.spilled_bytes)}</dd>
        </div>
        <div>
          <dt>{final ? "Ran for" : "Running for"}</dt>
          <dd>{seconds(duration(job))}</dd>
        </div>
      </dl>
      <ErrorLine error={error} testId="cancel-error" />
      {job.error && job.state !== "succeeded" ? (
        <p className={job.state === "cancelled" ? "muted" : "error"} data-testid="job-error">
          {job.error.message}
        </p>
      ) : null}
    </section>
  );
}
