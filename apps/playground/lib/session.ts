/**
 * The signed-in session: the gateway's token, kept in memory and in sessionStorage (so a
 * reload keeps the tab signed in, and closing the tab signs it out). Components subscribe
 * with useSession(); everything else reads token() at call time.
 *
 * User tokens live an hour: halfway through, the session renews its token silently at
 * POST /api/login/refresh (which re-checks the user). Signing out revokes the token at the
 * gateway (POST /api/logout), so a copy of it is refused on every platform too.
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
let renewal: ReturnType<typeof setTimeout> | null = null;

/** Renew the token halfway through its remaining life (a refusal ends the session). */
function scheduleRenewal(): void {
  if (renewal !== null) clearTimeout(renewal);
  renewal = null;
  if (!current || typeof window === "undefined") return;
  const wait = Math.max(1_000, (current.expires - Date.now()) / 2);
  renewal = setTimeout(() => void renew(), wait);
}

/** POST /api/login/refresh with the current token; the new one replaces it. */
export async function renew(): Promise<boolean> {
  const s = current;
  if (!s) return false;
  try {
    const res = await fetch("/api/login/refresh", {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}` },
    });
    if (res.status === 401) {
      signOut();
      return false;
    }
    if (!res.ok) {
      scheduleRenewal(); // the gateway is busy or away: try again later
      return false;
    }
    const j = (await res.json()) as { token: string; expires_in: number };
    signIn(j.token, j.expires_in);
    return true;
  } catch {
    scheduleRenewal();
    return false;
  }
}
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
  scheduleRenewal();
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
  scheduleRenewal();
  listeners.forEach((l) => l());
  return s;
}

/** End the session here (the token was refused, or the user signed out). */
export function signOut(): void {
  current = null;
  if (renewal !== null) clearTimeout(renewal);
  renewal = null;
  if (typeof window !== "undefined") window.sessionStorage.removeItem(KEY);
  listeners.forEach((l) => l());
}

/** Sign out: revoke the session's tokens at the gateway (every platform), then end it here. */
export async function logout(): Promise<void> {
  const s = current;
  if (s) {
    try {
      await fetch("/api/logout", { method: "POST", headers: { authorization: `Bearer ${s.token}` } });
    } catch {
      /* the gateway is away: the token still ends here, and expires within the hour */
    }
  }
  signOut();
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
