/** The SQL page's history: the last HISTORY_MAX statements run in this browser (localStorage). */
"use client";

export const HISTORY_MAX = 50;
const KEY = "playground.sql.history";

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
    const parsed = JSON.parse(localStorage.getItem(KEY) ?? "[]");
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
    if (list.length) localStorage.setItem(KEY, JSON.stringify(list));
    else localStorage.removeItem(KEY);
  } catch {
    /* storage full or disabled: the history lives in memory only */
  }
}
