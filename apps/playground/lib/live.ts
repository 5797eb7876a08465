/**
 * Live state from Elkyn: the gateway's /db speaks Firebase's REST streaming protocol
 * (EventSource; events put/patch with {path, data}; keep-alive; cancel; auth_revoked).
 * useLive(path) keeps a local copy of the value at path, patched by each event, so a page
 * re-renders within the server's push of a change and never polls.
 */
"use client";

import { useEffect, useRef, useState } from "react";

import { token } from "./session";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** "/a/b" -> ["a", "b"] */
export function segments(path: string): string[] {
  return path.split("/").filter((s) => s.length > 0);
}

/** The URL of a location under the gateway's /db, with the token as Firebase's ?auth=. */
export function dbUrl(path: string, params: Record<string, string> = {}): string {
  const encoded = segments(path).map(encodeURIComponent).join("/");
  const q = new URLSearchParams(params);
  const t = token();
  if (t) q.set("auth", t);
  const qs = q.toString();
  return `/db/${encoded}.json${qs ? `?${qs}` : ""}`;
}

/** A copy of `root` with `data` at `path` (null deletes), as Firebase's put applies it. */
export function applyPut(root: Json, path: string, data: Json): Json {
  const parts = segments(path);
  if (parts.length === 0) return data;
  const base: { [k: string]: Json } =
    root !== null && typeof root === "object" && !Array.isArray(root) ? { ...root } : {};
  const [head, ...rest] = parts;
  // Own keys only, defined rather than assigned: a key may be any text, `__proto__` too, and
  // `base["__proto__"] = v` would set the object's prototype instead of adding a child.
  const child = applyPut(Object.hasOwn(base, head) ? base[head] : null, rest.join("/"), data);
  if (child === null) delete base[head];
  else Object.defineProperty(base, head, { value: child, enumerable: true, writable: true, configurable: true });
  return Object.keys(base).length ? base : null;
}

/** Firebase's patch: each key of `data` put under `path`. */
export function applyPatch(root: Json, path: string, data: { [k: string]: Json }): Json {
  let out = root;
  for (const [k, v] of Object.entries(data)) out = applyPut(out, `${path}/${k}`, v);
  return out;
}

export interface LiveState {
  value: Json;
  /** false until the first put arrives */
  loaded: boolean;
  /** the server refused or ended the stream (the reason, in its words) */
  error: string | null;
  /** a counter that moves on every event, for pages that re-fetch on change */
  version: number;
  /**
   * whether the stream is open now: false while connecting and after it dropped (the
   * gateway stopped or restarted), when `value` is the last one seen, not the current one
   */
  connected: boolean;
}

/** How long to wait before opening a refused stream again (doubling up to the last). */
const RETRY_MS = [1000, 2000, 4000, 8000, 15000];

/**
 * Subscribe to `path` (null: no subscription). The browser's EventSource reconnects by itself
 * after a network error; a stream the server refused or cut with an error answer (the
 * browser gives up on those) is opened again after a pause, so a page recovers from a
 * restart of `platform up`; `connected` says whether it is live meanwhile. A `cancel` (rules
 * denied) or `auth_revoked` ends the stream for good.
 */
export function useLive(path: string | null, params: Record<string, string> = {}): LiveState {
  const [state, setState] = useState<LiveState>({ value: null, loaded: false, error: null, version: 0, connected: false });
  const key = path === null ? null : `${path}?${new URLSearchParams(params).toString()}`;
  const paramsRef = useRef(params);
  paramsRef.current = params;

  useEffect(() => {
    if (path === null) return;
    setState({ value: null, loaded: false, error: null, version: 0, connected: false });
    let source: EventSource | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let failures = 0;
    let ended = false;
    const onOpen = () => setState((s) => ({ ...s, connected: true }));
    const onPut = (ev: MessageEvent) => {
      failures = 0;
      const msg = JSON.parse(ev.data) as { path: string; data: Json };
      setState((s) => ({ value: applyPut(s.value, msg.path, msg.data), loaded: true, error: null, version: s.version + 1, connected: true }));
    };
    const onPatch = (ev: MessageEvent) => {
      const msg = JSON.parse(ev.data) as { path: string; data: { [k: string]: Json } };
      setState((s) => ({ ...s, value: applyPatch(s.value, msg.path, msg.data), version: s.version + 1 }));
    };
    const end = (why: string) => (ev: MessageEvent) => {
      ended = true;
      source?.close();
      let text = why;
      try {
        const d = JSON.parse(ev.data);
        if (typeof d === "string" && d) text = d;
      } catch {
        /* keep the default */
      }
      setState((s) => ({ ...s, error: text, connected: false }));
    };
    const onError = () => {
      if (ended || source === null) return;
      setState((s) => ({ ...s, connected: false }));
      if (source.readyState !== EventSource.CLOSED) return; // the browser is reconnecting
      source.close();
      const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures++;
      setState((s) => ({
        ...s,
        error: `the live stream was refused or cut (is platform up running?); trying again in ${wait / 1000} s`,
      }));
      retry = setTimeout(open, wait);
    };
    function open(): void {
      retry = null;
      const s = new EventSource(dbUrl(path as string, paramsRef.current));
      source = s;
      s.addEventListener("open", onOpen);
      s.addEventListener("put", onPut);
      s.addEventListener("patch", onPatch);
      s.addEventListener("error", onError);
      s.addEventListener("cancel", end("the database refused this location (its rules deny reading it)"));
      s.addEventListener("auth_revoked", end("your session expired; sign in again"));
    }
    open();
    return () => {
      ended = true;
      if (retry !== null) clearTimeout(retry);
      source?.close();
    };
  }, [key, path]);

  return state;
}
