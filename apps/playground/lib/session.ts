/**
 * The signed-in session: the gateway's token, kept in memory and in sessionStorage (so a
 * reload keeps the tab signed in, and closing the tab signs it out). Components subscribe
 * with useSession(); everything else reads token() at call time.
 */
"use client";

import { useSyncExternalStore } from "react";

const KEY = "platform.session";

export interface Session {
  token: string;
  user: string;
  admin: boolean;
  expires: number; // epoch ms
}

let current: Session | null = null;
let loaded = false;
const listeners = new Set<() => void>();

function load(): void {
  if (loaded || typeof window === "undefined") return;
  loaded = true;
  try {
    const raw = window.sessionStorage.getItem(KEY);
    const s = raw ? (JSON.parse(raw) as Session) : null;
    current = s && s.expires > Date.now() ? s : null;
  } catch {
    current = null;
  }
}

/** The claims of a JWT, for display only (the gateway checks the signature). */
function claims(token: string): Record<string, unknown> {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

export function signIn(token: string, expiresIn: number): Session {
  const c = claims(token);
  const s: Session = {
    token,
    user: typeof c.sub === "string" ? c.sub : "user",
    admin: c.admin === true,
    expires: Date.now() + expiresIn * 1000,
  };
  current = s;
  window.sessionStorage.setItem(KEY, JSON.stringify(s));
  listeners.forEach((l) => l());
  return s;
}

export function signOut(): void {
  current = null;
  if (typeof window !== "undefined") window.sessionStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

export function session(): Session | null {
  load();
  if (current && current.expires <= Date.now()) signOut();
  return current;
}

export function token(): string | null {
  return session()?.token ?? null;
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The session, re-rendering on sign in and out; undefined until read in the browser. */
export function useSession(): Session | null | undefined {
  return useSyncExternalStore(subscribe, session, () => undefined);
}
