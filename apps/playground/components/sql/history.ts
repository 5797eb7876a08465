/**
 * The SQL page's history: the last HISTORY_MAX statements the signed-in user ran in this
 * browser (localStorage, one list per user: on a shared browser the next user to sign in does
 * not read the statements, and the literals in them, of the one before).
 */
"use client";

import { session } from "@/lib/session";

export const HISTORY_MAX = 50;
const LEGACY_KEY = "playground.sql.history"; // one list for every user, before lists were per user

function key(): string | null {
  const user = session()?.user;
  return user ? `playground.sql.history.${encodeURIComponent(user)}` : null;
}

export interface HistoryEntry {
  sql: string;
  /** Unix milliseconds when it ran. */
  at: number;
  ok: boolean;
  rows: number | null;
  seconds: number;
  /** The error or "cancelled", when not ok. */
  error?: string;
}

function valid(e: unknown): e is HistoryEntry {
  const x = e as HistoryEntry;
  return !!x && typeof x.sql === "string" && typeof x.at === "number" && typeof x.ok === "boolean";
}

export function loadHistory(): HistoryEntry[] {
  try {
    localStorage.removeItem(LEGACY_KEY);
    const k = key();
    const parsed = JSON.parse((k && localStorage.getItem(k)) || "[]");
    return Array.isArray(parsed) ? parsed.filter(valid).slice(0, HISTORY_MAX) : [];
  } catch {
    return [];
  }
}

/** Newest first; the oldest fall off past HISTORY_MAX. */
export function addHistory(list: HistoryEntry[], entry: HistoryEntry): HistoryEntry[] {
  const next = [entry, ...list].slice(0, HISTORY_MAX);
  saveHistory(next);
  return next;
}

export function saveHistory(list: HistoryEntry[]): void {
  try {
    const k = key();
    if (!k) return;
    if (list.length) localStorage.setItem(k, JSON.stringify(list));
    else localStorage.removeItem(k);
  } catch {
    /* storage full or disabled: the history lives in memory only */
  }
}
