/**
 * The page's running uploads, kept outside React so they go on (and show again) when the user
 * moves to another page of the playground and back. Components read them with useUploads().
 */
"use client";

import { useSyncExternalStore } from "react";

import { signOut, token } from "@/lib/session";
import {
  localUploadStore,
  pageSender,
  ResumableUpload,
  UploadError,
  xhrTransport,
  type FileLike,
  type PartSender,
  type Transport,
  type UploadOptions,
  type UploadSnapshot,
} from "@/lib/upload";
import { workerSender } from "@/lib/upload-workers/pool";

export interface Running {
  key: number;
  upload: ResumableUpload;
  snap: UploadSnapshot;
}

let items: Running[] = [];
let nextKey = 1;
const listeners = new Set<() => void>();
const emit = () => listeners.forEach((l) => l());
const committed = new Set<() => void>();

export const store = localUploadStore();

/** The gateway with the session's token; a 401 ends the session as lib/api does. */
const base = xhrTransport(() => token());
const transport: Transport = {
  json: <T,>(method: string, path: string, body?: unknown) =>
    base.json<T>(method, path, body).catch((e) => {
      if (e instanceof UploadError && e.status === 401) signOut();
      throw e;
    }),
  put: (path, data, headers, progress, signal) =>
    base.put(path, data, headers, progress, signal).catch((e) => {
      if (e instanceof UploadError && e.status === 401) signOut();
      throw e;
    }),
};

/**
 * Parts go to Web Workers (lib/upload-workers), three at a time over all the page's uploads;
 * a browser without workers sends them from the page.
 */
const parts: PartSender = typeof Worker === "undefined" ? pageSender(transport) : workerSender(() => token());
const sender: PartSender = {
  send: (path, file, start, end, progress, signal) =>
    parts.send(path, file, start, end, progress, signal).catch((e) => {
      if (e instanceof UploadError && e.status === 401) signOut();
      throw e;
    }),
};

/** Start (or resume) an upload of `file` and list it. */
export function startUpload(file: FileLike, opts: Omit<UploadOptions, "transport" | "store" | "onChange">): Running {
  const key = nextKey++;
  const upload = new ResumableUpload(file, {
    ...opts,
    transport,
    store,
    sender,
    onChange: (snap) => {
      items = items.map((i) => (i.key === key ? { ...i, snap } : i));
      emit();
      if (snap.phase === "committed") committed.forEach((l) => l());
    },
  });
  const item = { key, upload, snap: upload.snapshot };
  items = [item, ...items];
  emit();
  void upload.run();
  return item;
}

export function dismiss(key: number): void {
  items = items.filter((i) => i.key !== key);
  emit();
}

/** Whether an upload with this server id is running here (so it is not offered for resume). */
export function isRunning(id: string): boolean {
  return items.some((i) => i.snap.id === id);
}

function subscribe(l: () => void): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}
const snapshot = () => items;
const empty: Running[] = [];

export function useUploads(): Running[] {
  return useSyncExternalStore(subscribe, snapshot, () => empty);
}

/** Call `l` whenever an upload commits (the page re-reads its list). */
export function onCommitted(l: () => void): () => void {
  committed.add(l);
  return () => committed.delete(l);
}
