/**
 * A lent tab: the browser side of elytra's worker protocol (packages/elytra/README.md, "Browser
 * workers"), as the Python reference worker speaks it. One WebSocket to /api/workers/ws with
 * the worker token; `hello` with a concurrency; each `task` goes to a free Web Worker slot
 * (task.worker.ts: fetch the chunk, run the steps, Arrow IPC back), whose rows are sent as a
 * `result` header and one binary frame, or an `error`; heartbeats every `heartbeat_seconds`
 * while connected; `cancel` drops a task's result; `banned` is shown. A dropped connection is
 * reconnected with exponential backoff (0.5 s doubling to 30 s); "pause when hidden" closes it
 * while the tab is hidden (the server re-offers the tasks in flight) and reconnects when shown.
 */
import type { TaskMessage } from "./engine";
import type { WorkReply, WorkRequest } from "./task.worker";

export type LendState = "idle" | "checking" | "connecting" | "connected" | "reconnecting" | "paused" | "refused" | "stopped";

export interface LendStats {
  state: LendState;
  banned: boolean;
  workerId: string | null;
  slots: number;
  busy: number;
  tasksDone: number;
  tasksSent: number;
  rejected: number;
  errors: number;
  cancelled: number;
  rowsIn: number;
  bytesIn: number;
  bytesOut: number;
  /** Wall seconds with at least one task in flight. */
  busySeconds: number;
  reconnects: number;
  lastError: string | null;
  lastRejection: string | null;
  /** Per task: chunk fetch and compute milliseconds of the last results (the newest last). */
  timings: { fetchMs: number; runMs: number }[];
  /** Milliseconds from sending a result to its `accepted` (the server's check), the last ones. */
  acceptMs: number[];
  /** Milliseconds from a slot's result to the next task it was handed (the lease's turnaround). */
  leaseMs: number[];
}

export interface LendOptions {
  token: string;
  cap: number;
  pauseWhenHidden: boolean;
  onChange: (stats: LendStats) => void;
  /** Where the worker routes are (default: this origin's /api/workers). */
  base?: string;
}

interface Welcome {
  worker_id: string;
  concurrency: number;
  heartbeat_seconds: number;
  chunk_path: string;
}

/** The claims of a token, read without checking it (the server checks it). */
export function tokenClaims(token: string): Record<string, unknown> | null {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims: unknown = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
    return claims && typeof claims === "object" ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Why a token cannot lend this tab, or null if it looks like a worker token. */
export function tokenProblem(token: string): string | null {
  const claims = tokenClaims(token.trim());
  if (claims === null) return "This is not a platform token (a worker token is a signed JWT).";
  if (claims.kind !== "worker") {
    const who = claims.cluster ? "a cluster token" : claims.admin ? "an admin's user token" : "a user token";
    return `This is ${who}, not a worker token: the worker routes refuse it. An admin mints worker tokens (\`platform token --worker\`, or the button on this page).`;
  }
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) return "This worker token has expired: mint a new one.";
  return null;
}

const MAX_BACKOFF_MS = 30_000;
const KEEP_TIMINGS = 50;

/** The figures of a tab that has not lent itself yet (each call a fresh object). */
export function idleStats(): LendStats {
  return {
    state: "idle",
    banned: false,
    workerId: null,
    slots: 0,
    busy: 0,
    tasksDone: 0,
    tasksSent: 0,
    rejected: 0,
    errors: 0,
    cancelled: 0,
    rowsIn: 0,
    bytesIn: 0,
    bytesOut: 0,
    busySeconds: 0,
    reconnects: 0,
    lastError: null,
    lastRejection: null,
    timings: [],
    acceptMs: [],
    leaseMs: [],
  };
}

export class LentTab {
  private ws: WebSocket | null = null;
  private welcome: Welcome | null = null;
  private workers: Worker[] = [];
  private free: Worker[] = [];
  private running = new Map<string, { task: TaskMessage; worker: Worker }>();
  private queue: TaskMessage[] = [];
  private cancelled = new Set<string>();
  private beat: ReturnType<typeof setInterval> | null = null;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private backoff = 500;
  private busySince: number | null = null;
  private stopped = false;
  private hidden = false;
  private sentAt = new Map<string, number>();
  private freedAt: number[] = [];
  readonly stats: LendStats = idleStats();

  constructor(private options: LendOptions) {}

  private set(patch: Partial<LendStats>): void {
    Object.assign(this.stats, patch);
    this.options.onChange({ ...this.stats, timings: [...this.stats.timings], acceptMs: [...this.stats.acceptMs], leaseMs: [...this.stats.leaseMs] });
  }

  /** The concurrency asked for: one slot per core, capped. */
  get concurrency(): number {
    const cores = typeof navigator !== "undefined" && navigator.hardwareConcurrency ? navigator.hardwareConcurrency : 1;
    return Math.max(1, Math.min(cores, this.options.cap));
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.ws?.close(1000, "the tab stopped lending");
    this.ws = null;
    this.dropWork();
    this.workers.forEach((w) => w.terminate());
    this.workers = [];
    this.free = [];
    this.set({ state: "stopped", slots: 0, busy: 0 });
  }

  setPauseWhenHidden(on: boolean): void {
    this.options.pauseWhenHidden = on;
    this.visibility(this.hidden);
  }

  /** The page's visibility changed (document.hidden). */
  visibility(hidden: boolean): void {
    this.hidden = hidden;
    if (this.stopped) return;
    if (hidden && this.options.pauseWhenHidden) {
      if (this.stats.state === "paused") return;
      this.clearTimers();
      const ws = this.ws;
      this.ws = null;
      ws?.close(1000, "the tab is hidden");
      this.dropWork();
      this.set({ state: "paused" });
    } else if (this.stats.state === "paused") {
      this.connect();
    }
  }

  private clearTimers(): void {
    if (this.beat !== null) clearInterval(this.beat);
    if (this.retry !== null) clearTimeout(this.retry);
    this.beat = null;
    this.retry = null;
  }

  private dropWork(): void {
    // Results of tasks in flight are dropped: their leases end with the connection.
    for (const id of this.running.keys()) this.cancelled.add(id);
    this.queue = [];
    this.markBusy();
  }

  private url(): string {
    const base = this.options.base ?? `${location.origin}/api/workers`;
    return base.replace(/^http/, "ws") + `/ws?auth=${encodeURIComponent(this.options.token)}`;
  }

  private connect(): void {
    this.clearTimers();
    this.set({ state: this.stats.reconnects > 0 || this.stats.state === "reconnecting" ? "reconnecting" : "connecting" });
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", concurrency: this.concurrency }));
    ws.onmessage = (event) => {
      if (ws !== this.ws || typeof event.data !== "string") return;
      this.message(JSON.parse(event.data) as Record<string, unknown>);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.clearTimers();
      this.dropWork();
      if (this.stopped) return;
      const why = event.reason || (this.welcome === null ? "the server refused the connection" : "the connection dropped");
      this.welcome = null;
      this.stats.reconnects += 1;
      this.set({ state: "reconnecting", lastError: `${why} (code ${event.code}); retrying in ${(this.backoff / 1000).toFixed(1)} s` });
      this.retry = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
    };
  }

  private send(message: Record<string, unknown>, data?: Uint8Array): void {
    const ws = this.ws;
    if (ws === null || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify(message));
    if (data !== undefined) ws.send(data);
  }

  private message(msg: Record<string, unknown>): void {
    switch (msg.type) {
      case "welcome": {
        this.welcome = msg as unknown as Welcome;
        this.backoff = 500;
        this.freedAt = [];
        this.ensureWorkers(this.welcome.concurrency);
        const every = Math.max(0.5, Number(this.welcome.heartbeat_seconds) || 3) * 1000;
        this.beat = setInterval(() => this.send({ type: "heartbeat" }), every);
        this.set({ state: "connected", workerId: this.welcome.worker_id, slots: this.welcome.concurrency, banned: false });
        break;
      }
      case "task": {
        const freed = this.freedAt.shift();
        if (freed !== undefined) this.stats.leaseMs = [...this.stats.leaseMs, performance.now() - freed].slice(-KEEP_TIMINGS);
        this.queue.push(msg as unknown as TaskMessage);
        this.pump();
        break;
      }
      case "cancel":
        this.cancelled.add(String(msg.task_id));
        this.queue = this.queue.filter((t) => t.task_id !== msg.task_id);
        this.set({ cancelled: this.stats.cancelled + 1 });
        break;
      case "accepted": {
        const sent = this.sentAt.get(String(msg.task_id));
        this.sentAt.delete(String(msg.task_id));
        const acceptMs = sent === undefined ? this.stats.acceptMs : [...this.stats.acceptMs, performance.now() - sent].slice(-KEEP_TIMINGS);
        this.set({ tasksDone: this.stats.tasksDone + 1, acceptMs });
        break;
      }
      case "rejected":
        this.sentAt.delete(String(msg.task_id));
        this.set({ rejected: this.stats.rejected + 1, lastRejection: String(msg.reason ?? "") });
        break;
      case "banned":
        this.set({ banned: true });
        break;
    }
  }

  private ensureWorkers(n: number): void {
    while (this.workers.length < n) {
      const worker = new Worker(new URL("./task.worker.ts", import.meta.url), { type: "module", name: "elytra-task" });
      worker.onmessage = (event: MessageEvent<WorkReply>) => this.done(worker, event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.set({ lastError: `a Web Worker failed: ${event.message}` });
      };
      this.workers.push(worker);
      this.free.push(worker);
    }
  }

  private pump(): void {
    while (this.queue.length && this.free.length && this.welcome !== null) {
      const task = this.queue.shift() as TaskMessage;
      const worker = this.free.pop() as Worker;
      this.cancelled.delete(task.task_id);
      this.running.set(task.task_id, { task, worker });
      const base = this.options.base ?? `${location.origin}/api/workers`;
      const url = `${base}/${this.welcome.chunk_path.replace("{task_id}", encodeURIComponent(task.task_id))}`;
      const request: WorkRequest = { task, url, token: this.options.token };
      worker.postMessage(request);
    }
    this.markBusy();
  }

  private markBusy(): void {
    const busy = this.running.size;
    const now = performance.now();
    if (busy > 0 && this.busySince === null) this.busySince = now;
    if (busy === 0 && this.busySince !== null) {
      this.stats.busySeconds += (now - this.busySince) / 1000;
      this.busySince = null;
    }
    this.set({ busy });
  }

  /** Seconds busy so far, the current stretch included. */
  busySeconds(): number {
    return this.stats.busySeconds + (this.busySince === null ? 0 : (performance.now() - this.busySince) / 1000);
  }

  private done(worker: Worker, reply: WorkReply): void {
    const entry = this.running.get(reply.task_id);
    if (this.workers.includes(worker)) this.free.push(worker);
    if (entry !== undefined && entry.worker !== worker) {
      // A stale reply: the task was offered again (after a reconnect) and runs on another
      // Web Worker now; this answer belongs to the old attempt and is dropped.
      this.pump();
      return;
    }
    this.running.delete(reply.task_id);
    const dropped = this.cancelled.delete(reply.task_id) || entry === undefined;
    if (!dropped && entry !== undefined) {
      const header = { task_id: entry.task.task_id, attempt: entry.task.attempt };
      if (reply.ok) {
        this.send({ type: "result", ...header, bytes: reply.bytes.byteLength }, reply.bytes);
        this.sentAt.set(entry.task.task_id, performance.now());
        this.freedAt.push(performance.now());
        const timings = [...this.stats.timings, { fetchMs: reply.fetchMs, runMs: reply.runMs }].slice(-KEEP_TIMINGS);
        Object.assign(this.stats, {
          tasksSent: this.stats.tasksSent + 1,
          rowsIn: this.stats.rowsIn + reply.rowsIn,
          bytesIn: this.stats.bytesIn + reply.bytesIn,
          bytesOut: this.stats.bytesOut + reply.bytes.byteLength,
          timings,
        });
      } else {
        this.send({ type: "error", ...header, message: reply.message.slice(0, 2000) });
        Object.assign(this.stats, { errors: this.stats.errors + 1, lastError: reply.message });
      }
    }
    this.pump();
  }
}
