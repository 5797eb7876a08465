/**
 * A job's record as Elytra writes it (packages/elytra jobs.py; GET /api/jobs/{id} answers the
 * same fields) and useJob(id): the record over REST once, then live from Elkyn's /jobs/<id>
 * (only the job's owner and the admin may read it; the driver writes it at task boundaries).
 */
"use client";

import { useEffect, useState } from "react";

import { api, errorText } from "@/lib/api";
import { useLive } from "@/lib/live";

export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled";
export const FINAL: JobState[] = ["succeeded", "failed", "cancelled"];

export interface TaskBar {
  stage: number;
  start: number;
  end: number;
  rows?: number;
  worker?: number;
  attempt?: number;
}

export interface JobRecord {
  id: string;
  owner: string | null;
  state: JobState;
  plan: string;
  created: number;
  started?: number | null;
  finished?: number | null;
  tasks: { total: number; done: number; running: number; failed: number };
  rows_out?: number;
  bytes_in?: number;
  bytes_out?: number;
  spilled_bytes?: number;
  error?: { message: string; type: string; traceback?: string } | null;
  result?: { rows?: number; bytes?: number; where?: string; dropped?: boolean; dataset?: string; version?: number } | null;
  stages?: Record<string, { seconds?: number }>;
  timeline?: {
    stages?: Record<string, { total: number; done: number }>;
    tasks?: Record<string, TaskBar>;
    omitted?: number;
  };
}

export function isFinal(state: string | undefined): boolean {
  return FINAL.includes(state as JobState);
}

/** Seconds the job ran (or has been running, as of `now`). */
export function duration(j: JobRecord, now: number = Date.now() / 1000): number | null {
  const from = j.started ?? null;
  if (from === null) return null;
  return (j.finished ?? now) - from;
}

export function useJob(id: string | null): { job: JobRecord | null; error: string | null; setJob: (j: JobRecord) => void } {
  const [rest, setRest] = useState<JobRecord | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!id) return;
    let gone = false;
    setRest(null);
    setError(null);
    api<JobRecord>(`/api/jobs/${encodeURIComponent(id)}`)
      .then((j) => !gone && setRest(j))
      .catch((e) => !gone && setError(errorText(e)));
    return () => {
      gone = true;
    };
  }, [id]);
  const live = useLive(id ? `/jobs/${id}` : null);
  const value = live.value;
  const fromLive = live.loaded && value !== null && typeof value === "object" && !Array.isArray(value) ? (value as unknown as JobRecord) : null;
  // The live copy once it has arrived (it is never older than the REST answer); until then REST.
  const job = fromLive && fromLive.state ? { ...(rest ?? {}), ...fromLive } : rest;
  return { job, error: error ?? live.error, setJob: setRest };
}
