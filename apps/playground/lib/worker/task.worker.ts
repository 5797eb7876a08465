/// <reference lib="webworker" />
/**
 * A Web Worker: one slot of a lent tab. It gets a task (the protocol's `task` message), the
 * chunk's URL and the worker token, fetches the chunk (Arrow IPC) with the token, runs the
 * steps (engine.ts) and posts back the result's Arrow IPC bytes (transferred, not copied), or
 * the error's message. It holds no connection of its own: the page speaks the protocol.
 */
import { runTask, type TaskMessage } from "./engine";

export interface WorkRequest {
  task: TaskMessage;
  url: string;
  token: string;
}

export type WorkReply =
  | { task_id: string; ok: true; bytes: Uint8Array; rowsIn: number; rowsOut: number; bytesIn: number; fetchMs: number; runMs: number }
  | { task_id: string; ok: false; message: string; fetchMs: number };

const scope = self as unknown as DedicatedWorkerGlobalScope;

scope.onmessage = async (event: MessageEvent<WorkRequest>) => {
  const { task, url, token } = event.data;
  const started = performance.now();
  let fetched = started;
  try {
    const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    if (!response.ok) throw new Error(`chunk fetch answered ${response.status}`);
    const chunk = new Uint8Array(await response.arrayBuffer());
    fetched = performance.now();
    const out = runTask(task, chunk);
    const reply: WorkReply = {
      task_id: task.task_id,
      ok: true,
      bytes: out.bytes,
      rowsIn: out.rowsIn,
      rowsOut: out.rowsOut,
      bytesIn: chunk.byteLength,
      fetchMs: fetched - started,
      runMs: performance.now() - fetched,
    };
    scope.postMessage(reply, [out.bytes.buffer]);
  } catch (e) {
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    const reply: WorkReply = { task_id: task.task_id, ok: false, message, fetchMs: fetched - started };
    scope.postMessage(reply);
  }
};
