/**
 * The live value of the location the page shows, over ONE EventSource.
 *
 * Why one stream at the root of what is shown, not one per expanded node: a Firebase stream
 * always carries the whole subtree below it (Elkyn refuses shallow and query streams with a
 * 400), so streams at nested nodes would each re-send overlapping data, and Chromium allows
 * only 6 HTTP/1.1 connections per origin: a few expanded nodes would starve the page's own
 * REST calls. One stream costs one connection and one copy of the shown subtree, and every
 * change anywhere in it arrives as one put/patch with its path, which is also exactly what the
 * highlight needs. The page bounds its size: a location with very many children is not
 * streamed (see page.tsx, which checks with a shallow read first).
 *
 * Events are applied with structural sharing (lib/live's applyPut copies only the path that
 * changed), so unchanged subtrees keep their identity and the tree's per-object caches hold.
 */
"use client";

import { useEffect, useRef, useState } from "react";

import { applyPatch, applyPut, dbUrl, segments, type Json } from "@/lib/live";

import { joinPath } from "./db";

/** How long a changed row stays highlighted (ms). */
export const HIGHLIGHT_MS = 1500;

export interface StreamState {
  value: Json;
  loaded: boolean;
  error: string | null;
  /** absolute paths changed recently -> when their highlight ends (epoch ms) */
  changed: ReadonlyMap<string, number>;
}

const EMPTY: StreamState = { value: null, loaded: false, error: null, changed: new Map() };

function absolute(root: string, rel: string): string {
  return joinPath([...segments(root), ...segments(rel)]);
}

export function useStream(root: string | null): StreamState {
  const [state, setState] = useState<StreamState>(EMPTY);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  useEffect(() => {
    if (root === null) {
      setState(EMPTY);
      return;
    }
    setState(EMPTY);
    const source = new EventSource(dbUrl(root));
    // the first put after (re)connecting is the snapshot, not a change: no highlight
    let snapshot = true;

    const prune = () => {
      timer.current = null;
      setState((s) => {
        const now = Date.now();
        const left = new Map([...s.changed].filter(([, until]) => until > now));
        if (left.size) schedule(left);
        return { ...s, changed: left };
      });
    };
    const schedule = (changed: ReadonlyMap<string, number>) => {
      if (timer.current !== null || changed.size === 0) return;
      const next = Math.min(...changed.values());
      timer.current = setTimeout(prune, Math.max(50, next - Date.now()));
    };
    const mark = (s: StreamState, paths: string[]): ReadonlyMap<string, number> => {
      const changed = new Map(s.changed);
      const until = Date.now() + HIGHLIGHT_MS;
      for (const p of paths) changed.set(p, until);
      schedule(changed);
      return changed;
    };

    source.addEventListener("open", () => {
      snapshot = true;
    });
    source.addEventListener("put", (ev: MessageEvent) => {
      const msg = JSON.parse(ev.data) as { path: string; data: Json };
      const first = snapshot;
      snapshot = false;
      setState((s) => ({
        value: applyPut(s.value, msg.path, msg.data),
        loaded: true,
        error: null,
        changed: first ? s.changed : mark(s, [absolute(root, msg.path)]),
      }));
    });
    source.addEventListener("patch", (ev: MessageEvent) => {
      const msg = JSON.parse(ev.data) as { path: string; data: { [k: string]: Json } };
      const paths = Object.keys(msg.data).map((k) => absolute(root, `${msg.path}/${k}`));
      setState((s) => ({ ...s, value: applyPatch(s.value, msg.path, msg.data), changed: mark(s, paths) }));
    });
    const end = (why: string) => () => {
      source.close();
      setState((s) => ({ ...s, loaded: true, error: why }));
    };
    source.addEventListener("cancel", end("The database stopped streaming this location: its rules no longer allow reading it."));
    source.addEventListener("auth_revoked", end("Your session expired: sign in again to see live changes."));
    source.addEventListener("error", () => {
      // a refused stream (401 from the rules, 429 too many streams) is not retried by the browser
      if (source.readyState === EventSource.CLOSED) {
        setState((s) => ({
          ...s,
          loaded: true,
          error: "The database refused to stream this location (its rules deny reading it, or too many streams are open).",
        }));
      }
    });
    return () => {
      source.close();
      if (timer.current !== null) clearTimeout(timer.current);
      timer.current = null;
    };
  }, [root]);

  return state;
}
