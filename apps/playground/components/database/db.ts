/**
 * Elkyn's Firebase REST routes under the gateway's /db, for the Database page.
 *
 * Not lib/api.ts: Elkyn answers a rules denial with Firebase's 401 "Permission denied", which
 * api() would take for an expired session and sign the user out. Here a 401 is shown where the
 * action happened; the session ends only when the token itself is refused (Shell notices).
 */
"use client";

import type { Json } from "@/lib/live";
import { segments } from "@/lib/live";
import { token } from "@/lib/session";

export class DbError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "DbError";
  }
}

/** "/a/b" from segments; "/" for the root. */
export function joinPath(parts: string[]): string {
  return "/" + parts.join("/");
}

export function childPath(path: string, key: string): string {
  return joinPath([...segments(path), key]);
}

export function parentPath(path: string): string {
  return joinPath(segments(path).slice(0, -1));
}

/** A typed path normalised ("a//b/" -> "/a/b"); keys are checked by the server. */
export function normalisePath(typed: string): string {
  return joinPath(segments(typed.trim()));
}

/** The REST URL of a location (no token: it goes in the Authorization header). */
export function restUrl(path: string, params: Record<string, string> = {}): string {
  const encoded = segments(path).map(encodeURIComponent).join("/");
  const qs = new URLSearchParams(params).toString();
  return `/db/${encoded}.json${qs ? `?${qs}` : ""}`;
}

/** One request to /db; a non-2xx answer throws DbError with Elkyn's own words. */
export async function dbFetch(
  method: "GET" | "PUT" | "POST" | "PATCH" | "DELETE",
  url: string,
  body?: string,
): Promise<{ value: unknown; response: Response }> {
  const headers = new Headers();
  const t = token();
  if (t) headers.set("authorization", `Bearer ${t}`);
  if (body !== undefined) headers.set("content-type", "application/json");
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body });
  } catch (e) {
    throw new DbError(`the gateway did not answer (${(e as Error).message}); is platform up running?`, 0);
  }
  const text = await res.text();
  let value: unknown = null;
  try {
    value = text ? JSON.parse(text) : null;
  } catch {
    value = text;
  }
  if (!res.ok) {
    const v = value as { error?: unknown; details?: unknown } | null;
    let message = typeof v?.error === "string" ? v.error : `${res.status} ${res.statusText}`;
    if (res.status === 401 && message === "Permission denied") {
      message = "Permission denied: the database's rules do not allow this here (401).";
    }
    const details = v?.details && typeof v.details === "object" ? (v.details as Record<string, unknown>) : {};
    throw new DbError(message, res.status, details);
  }
  return { value, response: res };
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Parse what the user typed as a JSON value; the error says where, in JSON's words. */
export function parseValue(text: string): { ok: true; value: Json } | { ok: false; error: string } {
  if (!text.trim()) return { ok: false, error: "Type a JSON value: \"text\" in quotes, 42, true, null or {\"key\": …}." };
  try {
    return { ok: true, value: JSON.parse(text) as Json };
  } catch (e) {
    const why = (e as Error).message;
    return { ok: false, error: `Not valid JSON (${why}). Strings need double quotes: "like this".` };
  }
}

const INTEGER = /^-?(0|[1-9]\d{0,15})$/;

/** Firebase's key order: integer-looking keys first, numerically, then the rest by code unit. */
export function compareKeys(a: string, b: string): number {
  const ai = INTEGER.test(a);
  const bi = INTEGER.test(b);
  if (ai && bi) return Number(a) - Number(b) || (a < b ? -1 : a > b ? 1 : 0);
  if (ai !== bi) return ai ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function isObject(v: Json | undefined): v is { [k: string]: Json } {
  return v !== null && v !== undefined && typeof v === "object" && !Array.isArray(v);
}

/** A short one-line rendering of a value for a row. */
export function preview(v: Json): string {
  if (typeof v === "string") return JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v);
  const s = JSON.stringify(v);
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
