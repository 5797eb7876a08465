/**
 * A PartSender (../upload.ts) that hands each part to a Web Worker (part.worker.ts), so an
 * upload's parts are read, hashed and sent in parallel off the page's thread. Up to `max`
 * workers, made when first needed and kept for the next parts; a part asked for while all are
 * busy waits for one. An abort (pause, cancel) terminates the part's worker, which cuts its
 * request off at once; a new worker takes its place when one is next needed.
 */
import { Stopped, UploadError, type PartSender } from "../upload";

import type { PartReply, PartRequest } from "./part.worker";

/** Workers sending parts at once, over all uploads of the page. */
export const MAX_PART_WORKERS = 3;

export function workerSender(token: () => string | null, max = MAX_PART_WORKERS): PartSender {
  const idle: Worker[] = [];
  let made = 0;
  const waiting: ((w: Worker) => void)[] = [];

  function acquire(): Promise<Worker> {
    const w = idle.pop();
    if (w) return Promise.resolve(w);
    if (made < max) {
      made++;
      return Promise.resolve(new Worker(new URL("./part.worker.ts", import.meta.url), { type: "module", name: "upload-part" }));
    }
    return new Promise((resolve) => waiting.push(resolve));
  }

  function release(w: Worker): void {
    const next = waiting.shift();
    if (next) next(w);
    else idle.push(w);
  }

  function discard(w: Worker): void {
    w.terminate();
    made--;
    const next = waiting.shift();
    if (next) acquire().then(next);
  }

  return {
    async send(path, file, start, end, progress, signal) {
      if (signal.aborted) throw new Stopped();
      const worker = await acquire();
      if (signal.aborted) {
        release(worker);
        throw new Stopped();
      }
      return new Promise<void>((resolve, reject) => {
        const settle = (ok: boolean, after: () => void) => {
          signal.removeEventListener("abort", onAbort);
          worker.onmessage = null;
          worker.onerror = null;
          if (ok) release(worker);
          else discard(worker);
          after();
        };
        const onAbort = () => settle(false, () => reject(new Stopped()));
        signal.addEventListener("abort", onAbort, { once: true });
        worker.onmessage = (event: MessageEvent<PartReply>) => {
          const reply = event.data;
          if (reply.kind === "progress") progress(reply.loaded);
          else if (reply.kind === "done") settle(true, resolve);
          else settle(true, () => reject(new UploadError(reply.message, reply.status, reply.type)));
        };
        worker.onerror = (event) => {
          event.preventDefault();
          settle(false, () => reject(new UploadError(`the upload's Web Worker failed: ${event.message || "it could not start"}`, 0, "worker")));
        };
        const request: PartRequest = { path, file, start, end, token: token() };
        worker.postMessage(request);
      });
    },
  };
}
