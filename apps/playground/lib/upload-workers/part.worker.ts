/// <reference lib="webworker" />
/**
 * A Web Worker that sends parts of the lake's resumable upload (../upload.ts): it gets the File
 * (a structured clone: a handle, not the bytes), the part's byte range, its path and the
 * session's token; it reads the slice, hashes it (SHA-256) and PUTs it with X-Content-SHA256 by
 * XHR, posting the bytes sent as they leave, then `done` or the server's error. One part at a
 * time; the page ends a part early (pause, cancel) by terminating the worker.
 */
import { pageSender, UploadError, xhrTransport } from "../upload";

export interface PartRequest {
  path: string;
  file: Blob;
  start: number;
  end: number;
  token: string | null;
}

export type PartReply =
  | { kind: "progress"; loaded: number }
  | { kind: "done" }
  | { kind: "error"; message: string; status: number; type: string };

const scope = self as unknown as DedicatedWorkerGlobalScope;

scope.onmessage = async (event: MessageEvent<PartRequest>) => {
  const { path, file, start, end, token } = event.data;
  const post = (reply: PartReply) => scope.postMessage(reply);
  try {
    const sender = pageSender(xhrTransport(() => token));
    await sender.send(path, file, start, end, (loaded) => post({ kind: "progress", loaded }), new AbortController().signal);
    post({ kind: "done" });
  } catch (e) {
    if (e instanceof UploadError) post({ kind: "error", message: e.message, status: e.status, type: e.type });
    else post({ kind: "error", message: e instanceof Error ? `${e.name}: ${e.message}` : String(e), status: 0, type: "error" });
  }
};
