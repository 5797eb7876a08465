/**
 * The lake's resumable upload, UI-free (no React, no DOM beyond XMLHttpRequest, which Web
 * Workers also have), so a page or a worker drives it the same way.
 *
 * Protocol (packages/lake/src/lake/storage/uploads.py): POST /api/lake/uploads {name, size, filename,
 * part_size} → PUT .../parts/{n} with X-Content-SHA256 for each part → POST .../complete →
 * poll GET .../{id} until `committed` or `failed`. Parts are read with Blob.slice, a few parts
 * in flight at a time (`parallel`, 3 by default; the lake takes them in any order), so a file of
 * any size never sits in memory whole. A PartSender hashes and sends each part: in the page
 * (pageSender) or in Web Workers (upload-workers.ts, what the playground uses). What the server
 * already has (GET .../{id} → `received`) is never sent again, which is what resuming means.
 *
 * Unfinished uploads are remembered (an UploadStore; localStorage in a page) with the SHA-256
 * of their first part, so after a reload the same file can be recognised and resumed.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";

export const UPLOADS = "/api/lake/uploads";
/** The server's default part size (min(LAKE_MAX_PART_BYTES, 8 MiB)). */
export const DEFAULT_PART_SIZE = 8 << 20;
/** The server's smallest part (lake.storage.uploads.MIN_PART). */
export const MIN_PART_SIZE = 1 << 10;

export type Format = "csv" | "jsonl" | "parquet";

// --- names and formats, as the lake checks them (lake/names.py, lake/storage/convert.py) ----

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
export const NAME_RULE = "1–63 letters, digits or _, starting with a letter or _ (it is also the SQL table name)";

/** null when the lake accepts `name` as a dataset name, else what is wrong with it. */
export function nameProblem(name: string): string | null {
  if (name.length === 0) return "a dataset name is needed";
  if (name.length > 63) return `the name has ${name.length} characters; at most 63 are allowed`;
  if (!/^[A-Za-z_]/.test(name)) return "the name must start with a letter or _";
  if (!NAME.test(name)) return "the name may hold only letters, digits and _";
  return null;
}

/** A dataset name made from a file name: `sales 2024.csv` → `sales_2024`. */
export function nameFromFile(fileName: string): string {
  const stem = fileName.replace(/\.[^.]*$/, "");
  let name = stem.replace(/[^A-Za-z0-9_]+/g, "_").replace(/^_+|_+$/g, "");
  if (!/^[A-Za-z_]/.test(name)) name = `_${name}`;
  return name.slice(0, 63);
}

const SUFFIX: Record<string, Format> = {
  csv: "csv",
  jsonl: "jsonl",
  ndjson: "jsonl",
  json: "jsonl",
  parquet: "parquet",
  pq: "parquet",
};

/** The format the lake reads from the file's suffix, or null when it cannot tell. */
export function formatOf(fileName: string): Format | null {
  const m = /\.([^.]+)$/.exec(fileName);
  return m ? (SUFFIX[m[1].toLowerCase()] ?? null) : null;
}

// --- the server's answers ----------------------------------------------------------------

export interface UploadStatus {
  id: string;
  name: string;
  format: string;
  size: number;
  part_size: number;
  parts: number;
  received: number[];
  /** the SHA-256 each part of `received` arrived with (same order) */
  received_sha256?: string[];
  received_bytes: number;
  created: number;
  owner: string | null;
  state: "open" | "converting" | "committed" | "failed" | "aborted" | string;
  error: string | null;
  version: number | null;
  rows: number | null;
  chunks: number | null;
}

/** An answer of the server that is not 2xx, in its own words ({error, type, details}). */
export class UploadError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly type: string = "error",
  ) {
    super(message);
    this.name = "UploadError";
  }
}

/** Raised when the caller paused or cancelled while a request was in flight. */
export class Stopped extends Error {
  constructor() {
    super("stopped");
    this.name = "Stopped";
  }
}

// --- transport -------------------------------------------------------------------------

export interface Transport {
  json<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** PUT `data` to `path`; `progress(loaded)` as bytes leave; rejects with Stopped on abort. */
  put(path: string, data: Uint8Array, headers: Record<string, string>, progress: (loaded: number) => void, signal: AbortSignal): Promise<unknown>;
}

function parseError(status: number, statusText: string, text: string): UploadError {
  let message = `${status} ${statusText}`.trim();
  let type = "error";
  try {
    const j = JSON.parse(text);
    if (typeof j?.error === "string") message = j.error;
    if (typeof j?.type === "string") type = j.type;
  } catch {
    /* not JSON: keep the status line */
  }
  return new UploadError(message, status, type);
}

/**
 * Requests with `Authorization: Bearer <token()>` against `base` (the gateway). XHR, not
 * fetch: only XHR reports upload progress, so the bar moves within a part too.
 */
export function xhrTransport(token: () => string | null, base = ""): Transport {
  function request(
    method: string,
    path: string,
    body: XMLHttpRequestBodyInit | null,
    headers: Record<string, string>,
    progress?: (loaded: number) => void,
    signal?: AbortSignal,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new Stopped());
      const xhr = new XMLHttpRequest();
      xhr.open(method, base + path);
      const t = token();
      if (t) xhr.setRequestHeader("authorization", `Bearer ${t}`);
      for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
      if (progress) xhr.upload.onprogress = (ev) => progress(ev.loaded);
      const onAbort = () => xhr.abort();
      signal?.addEventListener("abort", onAbort, { once: true });
      xhr.onload = () => {
        signal?.removeEventListener("abort", onAbort);
        if (xhr.status >= 200 && xhr.status < 300) {
          try {
            resolve(xhr.responseText ? JSON.parse(xhr.responseText) : undefined);
          } catch {
            resolve(undefined);
          }
        } else reject(parseError(xhr.status, xhr.statusText, xhr.responseText));
      };
      xhr.onerror = () => {
        signal?.removeEventListener("abort", onAbort);
        reject(new UploadError("the gateway did not answer; is platform up running? (resume when it is back)", 0, "unavailable"));
      };
      xhr.onabort = () => {
        signal?.removeEventListener("abort", onAbort);
        // Ours (pause, cancel) or the browser's (the connection was dropped on the way).
        reject(signal?.aborted ? new Stopped() : new UploadError("the request was cut off before the gateway answered; resume to send the rest", 0, "unavailable"));
      };
      xhr.send(body);
    });
  }
  return {
    json: <T,>(method: string, path: string, body?: unknown) =>
      request(method, path, body === undefined ? null : JSON.stringify(body), body === undefined ? {} : { "content-type": "application/json" }) as Promise<T>,
    put: (path, data, headers, progress, signal) =>
      request("PUT", path, data as Uint8Array<ArrayBuffer>, { "content-type": "application/octet-stream", ...headers }, progress, signal),
  };
}

// --- sending one part ------------------------------------------------------------------

/**
 * Hashes bytes [start, end) of `file` (SHA-256) and PUTs them to `path` with X-Content-SHA256;
 * `progress(loaded)` as bytes leave; rejects with Stopped when `signal` aborts, else with an
 * UploadError in the server's words.
 */
export interface PartSender {
  send(path: string, file: Blob, start: number, end: number, progress: (loaded: number) => void, signal: AbortSignal): Promise<void>;
}

/** Parts read, hashed and sent by the caller's own thread (the page, or one worker). */
export function pageSender(transport: Transport): PartSender {
  return {
    async send(path, file, start, end, progress, signal) {
      if (signal.aborted) throw new Stopped();
      const data = new Uint8Array(await file.slice(start, end).arrayBuffer());
      await transport.put(path, data, { "x-content-sha256": sha256Hex(data) }, (loaded) => progress(Math.min(loaded, data.length)), signal);
    },
  };
}

// --- what is remembered across reloads -------------------------------------------------

export interface UploadRecord {
  id: string;
  /** dataset name */
  name: string;
  fileName: string;
  size: number;
  partSize: number;
  /** hex SHA-256 of part 0, to recognise the same file after a reload */
  firstPart: string;
  /** who started it (a shared browser keeps each user's own) */
  user: string;
  created: number;
}

export interface UploadStore {
  list(): UploadRecord[];
  save(record: UploadRecord): void;
  forget(id: string): void;
}

const STORE_KEY = "platform.lake.uploads";
/** At most this many unfinished uploads are remembered (the oldest are dropped). */
export const MAX_REMEMBERED = 50;

/** UploadRecords in localStorage (a page), or nowhere when there is none (a worker, SSR). */
export function localUploadStore(): UploadStore {
  const storage = typeof localStorage === "undefined" ? null : localStorage;
  const read = (): UploadRecord[] => {
    try {
      const v = JSON.parse(storage?.getItem(STORE_KEY) ?? "[]");
      return Array.isArray(v) ? (v as UploadRecord[]) : [];
    } catch {
      return [];
    }
  };
  const write = (records: UploadRecord[]) => {
    try {
      storage?.setItem(STORE_KEY, JSON.stringify(records.slice(-MAX_REMEMBERED)));
    } catch {
      /* storage full or refused: the upload still runs, it is just not resumable after a reload */
    }
  };
  return {
    list: read,
    save: (r) => write([...read().filter((x) => x.id !== r.id), r]),
    forget: (id) => write(read().filter((x) => x.id !== id)),
  };
}

// --- hashing ---------------------------------------------------------------------------

export async function readPart(file: Blob, n: number, partSize: number): Promise<Uint8Array> {
  const start = n * partSize;
  return new Uint8Array(await file.slice(start, Math.min(start + partSize, file.size)).arrayBuffer());
}

export function sha256Hex(data: Uint8Array): string {
  return bytesToHex(sha256(data));
}

export interface FileLike extends Blob {
  readonly name: string;
}

/**
 * Why `file` is not the file of `record` (null when it is): same name, same size, and the
 * same first part (its SHA-256), checked in that order so the cheap checks speak first.
 * Given the server's `status`, every part it already holds is checked too (a part at a time,
 * by its SHA-256): those are the parts that will not be sent again, so a file that differs
 * only after its first part would otherwise be mixed with the one whose upload this was.
 */
export async function mismatch(
  record: UploadRecord,
  file: FileLike,
  status?: Pick<UploadStatus, "received" | "received_sha256">,
): Promise<string | null> {
  if (file.name !== record.fileName) return `this is ${file.name}, but the upload was of ${record.fileName}`;
  if (file.size !== record.size) return `${file.name} has ${file.size} bytes now; the upload was of ${record.size} bytes, so it is a different file`;
  const different = `${file.name} has the same name and size, but different content than the file being uploaded`;
  const first = sha256Hex(await readPart(file, 0, record.partSize));
  if (first !== record.firstPart) return `${different}; start a new upload for it`;
  const hashes = status?.received_sha256 ?? [];
  for (let i = 0; i < hashes.length; i++) {
    const n = status?.received[i] ?? 0;
    if (n === 0 || !hashes[i]) continue;
    if (sha256Hex(await readPart(file, n, record.partSize)) !== hashes[i]) {
      return `${different} (part ${n + 1} differs from the part the server has); start a new upload for it`;
    }
  }
  return null;
}

// --- the upload ------------------------------------------------------------------------

export type UploadPhase =
  | "starting"
  | "uploading"
  | "paused"
  | "completing"
  | "converting"
  | "committed"
  | "failed"
  | "cancelled";

export interface UploadSnapshot {
  id: string | null;
  name: string;
  fileName: string;
  phase: UploadPhase;
  /** bytes the server has, plus what has left for the parts in flight */
  sent: number;
  total: number;
  parts: number;
  partsDone: number;
  /** the server's words for what went wrong (the upload may still be resumable: see phase) */
  error: string | null;
  rows: number | null;
  version: number | null;
}

export interface UploadOptions {
  name: string;
  transport: Transport;
  store: UploadStore;
  user: string;
  partSize?: number;
  format?: Format;
  append?: boolean;
  /** resume this upload (a remembered one) rather than starting a new one */
  resume?: UploadRecord;
  onChange: (snapshot: UploadSnapshot) => void;
  /** how often to ask whether the conversion has finished (ms) */
  pollMs?: number;
  /** who hashes and sends the parts (default: this thread, through `transport`) */
  sender?: PartSender;
  /** parts in flight at once (default PARALLEL_PARTS) */
  parallel?: number;
}

/** Parts of one upload in flight at once. */
export const PARALLEL_PARTS = 3;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(new Stopped());
      },
      { once: true },
    );
  });

/**
 * One file's upload. `run()` starts it (or resumes it) and resolves when it has committed,
 * failed, been paused or cancelled; `pause()`, `run()` again, `cancel()` control it.
 */
export class ResumableUpload {
  private snap: UploadSnapshot;
  private received = new Set<number>();
  private partSize: number;
  private controller: AbortController | null = null;
  private running = false;

  constructor(
    readonly file: FileLike,
    private readonly opts: UploadOptions,
  ) {
    const r = opts.resume;
    this.partSize = r?.partSize ?? opts.partSize ?? DEFAULT_PART_SIZE;
    this.snap = {
      id: r?.id ?? null,
      name: r?.name ?? opts.name,
      fileName: file.name,
      phase: "starting",
      sent: 0,
      total: file.size,
      parts: Math.max(1, Math.ceil(file.size / this.partSize)),
      partsDone: 0,
      error: null,
      rows: null,
      version: null,
    };
  }

  get snapshot(): UploadSnapshot {
    return this.snap;
  }

  private set(patch: Partial<UploadSnapshot>): void {
    this.snap = { ...this.snap, ...patch };
    this.opts.onChange(this.snap);
  }

  private fromStatus(s: UploadStatus): void {
    this.received = new Set(s.received);
    this.set({ parts: s.parts, partsDone: s.received.length, sent: s.received_bytes, rows: s.rows, version: s.version });
  }

  /** Start, or go on from what the server has; safe to call again after pause or an error. */
  async run(): Promise<void> {
    if (this.running || ["committed", "failed", "cancelled"].includes(this.snap.phase)) return;
    this.running = true;
    const controller = new AbortController();
    this.controller = controller;
    const signal = controller.signal;
    const { transport, store } = this.opts;
    this.set({ error: null, phase: this.snap.id ? "uploading" : "starting" });
    try {
      if (this.snap.id === null) {
        const first = await readPart(this.file, 0, this.partSize);
        const started = await transport.json<UploadStatus>("POST", UPLOADS, {
          name: this.opts.name,
          size: this.file.size,
          filename: this.file.name,
          part_size: this.partSize,
          ...(this.opts.format ? { format: this.opts.format } : {}),
          append: this.opts.append ?? false,
        });
        this.partSize = started.part_size;
        if (this.snap.phase === "cancelled") {
          // Cancelled while the server was starting it: abort what it just made.
          await transport.json("DELETE", `${UPLOADS}/${started.id}`).catch(() => undefined);
          return;
        }
        store.save({
          id: started.id,
          name: started.name,
          fileName: this.file.name,
          size: this.file.size,
          partSize: started.part_size,
          firstPart: sha256Hex(first.subarray(0, started.part_size)),
          user: this.opts.user,
          created: Date.now(),
        });
        this.set({ id: started.id, phase: "uploading" });
        this.fromStatus(started);
        if (signal.aborted) throw new Stopped();
      } else {
        const status = await transport.json<UploadStatus>("GET", `${UPLOADS}/${this.snap.id}`);
        this.fromStatus(status);
        if (status.state !== "open") return await this.finish(status, signal);
      }
      const id = this.snap.id as string;
      await this.sendParts(id, signal);
      this.set({ phase: "completing" });
      const done = await transport.json<UploadStatus>("POST", `${UPLOADS}/${id}/complete`);
      await this.finish(done, signal);
    } catch (e) {
      if (e instanceof Stopped) {
        if (this.snap.phase !== "cancelled") this.set({ phase: "paused", sent: this.sentOnServer() });
      } else {
        const err = e as UploadError;
        // Refused at the start (a bad name, a size over the limit): nothing to resume.
        const phase: UploadPhase = this.snap.id === null ? "failed" : err.status === 404 ? "failed" : "paused";
        if (phase === "failed" && this.snap.id) store.forget(this.snap.id);
        this.set({ phase, error: err.message ?? String(e), sent: this.sentOnServer() });
      }
    } finally {
      this.running = false;
      if (this.controller === controller) this.controller = null;
    }
  }

  /**
   * Send the parts the server lacks, `parallel` at a time. The bar shows the bytes the server
   * has plus the bytes of every part in flight. A part refused or cut off starts no new parts
   * (the ones in flight finish, so what got through is kept) and the first error is thrown;
   * an abort (pause, cancel) drops the parts in flight, which are sent again on resume.
   */
  private async sendParts(id: string, signal: AbortSignal): Promise<void> {
    const sender = this.opts.sender ?? pageSender(this.opts.transport);
    const missing: number[] = [];
    for (let n = 0; n < this.snap.parts; n++) if (!this.received.has(n)) missing.push(n);
    const inFlight = new Map<number, number>();
    let done = this.sentOnServer();
    let failure: unknown = null;
    let next = 0;
    const show = (extra: Partial<UploadSnapshot> = {}) => {
      let sent = done;
      for (const loaded of inFlight.values()) sent += loaded;
      this.set({ sent, ...extra });
    };
    const lane = async () => {
      while (failure === null && !signal.aborted && next < missing.length) {
        const n = missing[next++];
        const start = n * this.partSize;
        const end = Math.min(start + this.partSize, this.file.size);
        inFlight.set(n, 0);
        try {
          await sender.send(
            `${UPLOADS}/${id}/parts/${n}`,
            this.file,
            start,
            end,
            (loaded) => {
              // Never backwards (a progress report may come late), never past the part.
              if (!inFlight.has(n)) return;
              inFlight.set(n, Math.max(inFlight.get(n) ?? 0, Math.min(loaded, end - start)));
              show();
            },
            signal,
          );
          inFlight.delete(n);
          this.received.add(n);
          done += end - start;
          show({ partsDone: this.received.size });
        } catch (e) {
          inFlight.delete(n);
          if (failure === null) failure = e;
        }
      }
    };
    const lanes = Math.max(1, Math.min(this.opts.parallel ?? PARALLEL_PARTS, missing.length));
    await Promise.all(Array.from({ length: lanes }, lane));
    if (signal.aborted) throw new Stopped();
    if (failure !== null) throw failure;
  }

  private sentOnServer(): number {
    let bytes = 0;
    for (const n of this.received) bytes += Math.min(this.partSize, this.file.size - n * this.partSize);
    return bytes;
  }

  /** Wait for the conversion (the server converts in the background) to commit or fail. */
  private async finish(status: UploadStatus, signal: AbortSignal): Promise<void> {
    let s = status;
    let wait = this.opts.pollMs ?? 300;
    while (s.state === "converting" || s.state === "open") {
      this.set({ phase: "converting" });
      await sleep(wait, signal);
      wait = Math.min(wait * 1.5, 2000);
      s = await this.opts.transport.json<UploadStatus>("GET", `${UPLOADS}/${s.id}`);
    }
    this.fromStatus(s);
    this.opts.store.forget(s.id);
    if (s.state === "committed") this.set({ phase: "committed", sent: this.file.size });
    else this.set({ phase: "failed", error: s.error ?? `the upload ended ${s.state}` });
  }

  /** Stop sending (the parts in flight are dropped and sent again on resume). */
  pause(): void {
    this.controller?.abort();
  }

  /** Abort on the server (its parts are removed) and forget it. */
  async cancel(): Promise<void> {
    const id = this.snap.id;
    this.set({ phase: "cancelled" });
    this.controller?.abort();
    if (id) {
      try {
        await this.opts.transport.json("DELETE", `${UPLOADS}/${id}`);
      } catch (e) {
        if (!(e instanceof UploadError && e.status === 404)) {
          this.set({ phase: "paused", error: (e as Error).message });
          return;
        }
      }
      this.opts.store.forget(id);
    }
  }
}
