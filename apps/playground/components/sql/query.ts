/**
 * Running the SQL page's statements against the lake: an Arrow stream read batch by batch up
 * to a row cap (the grid never holds more than ROW_CAP rows, whatever the query returns), the
 * cancel call, EXPLAIN as JSON, and capped CSV/Parquet downloads.
 */
"use client";

import { RecordBatchReader, Table, type RecordBatch } from "apache-arrow";

import { api, apiResponse } from "@/lib/api";
import { frameFromArrow, type Column, type Frame } from "@/lib/arrow";

/** Rows the grid and the chart hold at most; the downloads give the whole result. */
export const ROW_CAP = 100_000;
/** Bytes a download may take in this tab's memory (the browser saves a Blob). */
export const DOWNLOAD_CAP = 512 * 1024 * 1024;

/** A query id the lake accepts (letters, digits, '-'), unique enough to cancel by. */
export function newQueryId(): string {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return "ui-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export interface QueryOutcome {
  frame: Frame;
  /** True when the result had more than ROW_CAP rows and reading stopped there. */
  cut: boolean;
}

/**
 * POST the query as an Arrow stream and read at most ROW_CAP rows. Past the cap the caller
 * aborts the fetch (the lake then stops the query: its client went away).
 */
export async function runArrow(sql: string, queryId: string, signal: AbortSignal): Promise<QueryOutcome> {
  const res = await apiResponse("/api/lake/query", {
    method: "POST",
    body: { sql, format: "arrow", query_id: queryId },
    signal,
  });
  if (!res.body) throw new Error("the lake answered without a body");
  const batches: RecordBatch[] = [];
  let rows = 0;
  let cut = false;
  try {
    const reader = await RecordBatchReader.from(res.body);
    await reader.open();
    for await (const batch of reader) {
      if (rows + batch.numRows > ROW_CAP) {
        batches.push(batch.slice(0, ROW_CAP - rows));
        rows = ROW_CAP;
        cut = true;
        break;
      }
      batches.push(batch);
      rows += batch.numRows;
    }
    const table = batches.length ? new Table(batches) : new Table(reader.schema);
    return { frame: frameFromArrow(table), cut };
  } catch (e) {
    if ((e as Error).name === "AbortError" || signal.aborted) throw e;
    throw new Error(
      `the result stream broke off after ${rows.toLocaleString("en-US")} rows (${(e as Error).message}): ` +
        "the query failed, timed out or passed the lake's stream limit midway",
    );
  }
}

/** Ask the lake to stop a running query (it answers even if the query already ended). */
export async function cancelQuery(queryId: string): Promise<void> {
  await api(`/api/lake/query/${encodeURIComponent(queryId)}`, { method: "DELETE" });
}

export interface PlanRead {
  kind: "read" | "moved";
  node: string;
  dataset: string;
  chunk: string | null;
  bytes: number;
  rows: number;
  attempt: number | null;
}

/** What Elytra's stages did (EXPLAIN ANALYZE only), per stage or per later round. */
export interface StageRun {
  tasks: number;
  task_seconds: number;
  max_task_seconds: number;
  rows_out: number;
  bytes_in: number;
  bytes_out: number;
  bytes_to_exchange: number;
  bytes_to_driver: number;
  workers: number[];
  nodes: string[];
}

export interface StageJoin {
  strategy: string;
  how: string;
  keys: string[][];
  small_side: string;
  small_side_bytes: number | null;
}

export interface StageInfo {
  index: number;
  name: string;
  kind: string;
  reads: string;
  joins: StageJoin[];
  output: string;
  task_count: number;
  bytes_in: number;
  tasks: { id: string; files: number; bytes_in: number }[];
  analyze?: StageRun;
}

/** The plan of a query run on Elytra's stages (the platform's SQL route, elytra installed). */
export interface StagePlan {
  backend: string;
  stages: StageInfo[];
  exchanges: { name: string; strategy: string; how: string; left_stage: number; right_stage: number; keys: string[][]; partitions: number }[];
  merge: { strategy: string; where: string; plan: string[] };
  rounds?: (StageRun & { stage_index: number; what: string })[];
  analyze?: {
    seconds: Record<string, number | null>;
    rows_out: number;
    result_bytes: number;
    tasks: number;
    bytes_read: number;
    bytes_between_stages: number;
    bytes_to_driver: number;
    spilled_bytes: number;
  };
}

export interface Plan {
  /** "explain" on one node; "explain (<plan>)" when the statement ran across nodes. */
  kind: string;
  reads: PlanRead[];
  seconds: number;
  /** Across nodes: per dataset the SQL each node ran over its chunks, and the coordinator's. */
  fragments: Record<string, string>;
  final: string | null;
  /** Which engine planned it ("elytra" or "lake"), and why the lake's when Elytra declined. */
  engine: string;
  why: string | null;
  /** Elytra's stages (engine "elytra"), with what they did under EXPLAIN ANALYZE. */
  stages: StagePlan | null;
}

interface JsonResult {
  kind: string;
  columns: Column[];
  rows: unknown[][];
  seconds: number;
  reads?: { node?: string; dataset?: string; chunk?: string | null; bytes?: number; rows?: number }[];
  plan?: ({ kind?: string; fragments?: Record<string, string>; final?: string; engine?: string; why?: string } & Partial<StagePlan>) | null;
}

const num = (v: unknown) => (v === null || v === undefined ? 0 : Number(v));

/** The lake's EXPLAIN rows: which node reads which chunk of which dataset, and what moves. */
function lakeReads(r: JsonResult): PlanRead[] {
  const at = (name: string) => r.columns.findIndex((c) => c.name === name);
  const [k, n, d, c, b, rw, a] = ["kind", "node", "dataset", "chunk", "bytes", "rows", "attempt"].map(at);
  return r.rows.map((row) => ({
    kind: (k >= 0 && row[k] === "moved" ? "moved" : "read") as PlanRead["kind"],
    node: String(row[n] ?? "?"),
    dataset: String(row[d] ?? "?"),
    chunk: c >= 0 && row[c] != null ? String(row[c]) : null,
    bytes: num(row[b]),
    rows: num(row[rw]),
    attempt: a >= 0 && row[a] != null ? Number(row[a]) : null,
  }));
}

/**
 * `EXPLAIN [ANALYZE] <sql>`: on Elytra, its stages (and with ANALYZE what each moved and how
 * long it took) and the chunks they read; on the lake, which node reads which chunk.
 */
export async function explain(sql: string, queryId: string, signal: AbortSignal, analyze = false): Promise<Plan> {
  const r = await api<JsonResult>("/api/lake/query", {
    method: "POST",
    body: { sql: `EXPLAIN ${analyze ? "ANALYZE " : ""}${sql}`, format: "json", query_id: queryId },
    signal,
  });
  const elytra = r.plan?.engine === "elytra" && Array.isArray(r.plan.stages);
  const reads: PlanRead[] = elytra
    ? (r.reads ?? []).map((x) => ({
        kind: "read" as const,
        node: String(x.node ?? "?"),
        dataset: String(x.dataset ?? "?"),
        chunk: x.chunk ?? null,
        bytes: num(x.bytes),
        rows: num(x.rows),
        attempt: null,
      }))
    : lakeReads(r);
  return {
    kind: r.kind,
    reads,
    seconds: r.seconds,
    fragments: r.plan?.fragments ?? {},
    final: r.plan?.final ?? null,
    engine: r.plan?.engine ?? "lake",
    why: r.plan?.why ?? null,
    stages: elytra ? (r.plan as unknown as StagePlan) : null,
  };
}

export type DownloadFormat = "csv" | "parquet";

/**
 * The whole result in `format` as a Blob, refused past DOWNLOAD_CAP bytes (the lake itself
 * cuts a stream at LAKE_MAX_STREAM_BYTES; a cut-off stream fails here, never saves short).
 */
export async function download(sql: string, format: DownloadFormat, signal: AbortSignal): Promise<Blob> {
  const res = await apiResponse("/api/lake/query", {
    method: "POST",
    body: { sql, format, query_id: newQueryId() },
    signal,
  });
  if (!res.body) throw new Error("the lake answered without a body");
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > DOWNLOAD_CAP) {
        await reader.cancel();
        throw new Error(
          `the ${format.toUpperCase()} is over ${DOWNLOAD_CAP / 1024 / 1024} MiB, more than this page ` +
            "saves: aggregate or filter it, or fetch it with the lake client or `curl`",
        );
      }
      parts.push(value);
    }
  } catch (e) {
    if ((e as Error).name === "AbortError" || signal.aborted) throw e;
    if ((e as Error).message.includes("MiB")) throw e;
    throw new Error(`the download broke off after ${size} bytes (${(e as Error).message}); nothing was saved`);
  }
  const type = format === "csv" ? "text/csv" : "application/vnd.apache.parquet";
  return new Blob(parts as BlobPart[], { type });
}

/** Let the browser save `blob` as `name`. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
