/** One upload as it runs: its progress bar, bytes sent of total, pause/resume/cancel, errors. */
"use client";

import Link from "next/link";

import styles from "@/app/datasets/datasets.module.css";
import { ErrorLine } from "@/components/ui";
import { bytes, count } from "@/lib/format";
import type { UploadPhase, UploadSnapshot } from "@/lib/upload";

const PHASE: Record<UploadPhase, { text: string; badge: string }> = {
  starting: { text: "starting", badge: "queued" },
  uploading: { text: "uploading", badge: "uploading" },
  paused: { text: "paused", badge: "queued" },
  completing: { text: "completing", badge: "running" },
  converting: { text: "converting", badge: "running" },
  committed: { text: "done", badge: "succeeded" },
  failed: { text: "failed", badge: "failed" },
  cancelled: { text: "cancelled", badge: "cancelled" },
};

export interface UploadItemProps {
  snap: UploadSnapshot;
  onPause: () => void;
  onResume: () => void;
  onCancel: () => void;
  onDismiss: () => void;
}

export function UploadItem({ snap, onPause, onResume, onCancel, onDismiss }: UploadItemProps) {
  const phase = PHASE[snap.phase];
  const active = snap.phase === "starting" || snap.phase === "uploading";
  const ended = snap.phase === "committed" || snap.phase === "failed" || snap.phase === "cancelled";
  const pct = snap.total ? Math.floor((snap.sent / snap.total) * 100) : 0;
  return (
    <li className={styles.upload} data-testid="upload" data-phase={snap.phase} data-name={snap.name} aria-label={`Upload of ${snap.fileName} to ${snap.name}`}>
      <header>
        <strong className={styles.name}>{snap.name}</strong>
        <span className="muted">from {snap.fileName}</span>
        <span className={`badge ${phase.badge}`} data-testid="upload-phase">
          {phase.text}
        </span>
      </header>
      <progress value={snap.sent} max={snap.total || 1} aria-label={`Upload of ${snap.fileName} to ${snap.name}`} data-testid="upload-progress">
        {pct}%
      </progress>
      <div className={styles.numbers} data-testid="upload-numbers" aria-live="polite">
        {bytes(snap.sent)} of {bytes(snap.total)} ({pct}%) · part {Math.min(snap.partsDone, snap.parts)} of {snap.parts}
        {snap.phase === "converting" ? " · converting to Parquet chunks…" : null}
        {snap.phase === "committed" && snap.rows !== null ? ` · ${count(snap.rows)} rows, version ${snap.version}` : null}
      </div>
      <ErrorLine error={snap.error} testId="upload-error" />
      <div className="row">
        {active ? (
          <button type="button" onClick={onPause}>
            Pause
          </button>
        ) : null}
        {snap.phase === "paused" ? (
          <button type="button" className="primary" onClick={onResume}>
            Resume
          </button>
        ) : null}
        {!ended && snap.phase !== "converting" && snap.phase !== "completing" ? (
          <button type="button" className="danger" onClick={onCancel}>
            Cancel upload
          </button>
        ) : null}
        {snap.phase === "committed" ? (
          <Link href={`/datasets/view/?name=${encodeURIComponent(snap.name)}`}>Open {snap.name}</Link>
        ) : null}
        {ended ? (
          <button type="button" onClick={onDismiss}>
            Dismiss
          </button>
        ) : null}
      </div>
    </li>
  );
}
