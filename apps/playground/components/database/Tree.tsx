/**
 * The tree of the shown location as one virtualised list of rows: only the rows on screen are
 * in the DOM, so an expanded object with 100,000 children scrolls like one with ten. Each
 * object's keys are sorted once per object identity (WeakMap): the stream's structural sharing
 * keeps unchanged objects identical, so a change re-sorts only the objects on its path.
 */
"use client";

import { useVirtualizer } from "@tanstack/react-virtual";
import { useMemo, useRef, type KeyboardEvent } from "react";

import type { Json } from "@/lib/live";
import { count } from "@/lib/format";

import { childPath, compareKeys, isObject, parentPath, preview } from "./db";
import styles from "./database.module.css";

export interface Row {
  path: string;
  key: string;
  depth: number;
  value: Json;
  container: boolean;
  size: number;
  expanded: boolean;
}

const sortedKeys = new WeakMap<object, string[]>();

export function keysOf(v: { [k: string]: Json }): string[] {
  let keys = sortedKeys.get(v);
  if (!keys) {
    keys = Object.keys(v).sort(compareKeys);
    sortedKeys.set(v, keys);
  }
  return keys;
}

/** The visible rows: the root, then the children of every expanded object, depth first. */
export function flatten(root: string, value: Json, expanded: ReadonlySet<string>): Row[] {
  const out: Row[] = [];
  const walk = (path: string, key: string, v: Json, depth: number) => {
    const container = isObject(v) || Array.isArray(v);
    const obj = v as { [k: string]: Json };
    const keys = container ? keysOf(obj) : [];
    const open = container && expanded.has(path);
    out.push({ path, key, depth, value: v, container, size: keys.length, expanded: open });
    if (open) for (const k of keys) walk(childPath(path, k), k, obj[k], depth + 1);
  };
  const segs = root.split("/").filter(Boolean);
  walk(root, segs.length ? segs[segs.length - 1] : "/", value, 0);
  return out;
}

const ROW_HEIGHT = 30;

export function Tree({
  rows,
  changed,
  selected,
  onToggle,
  onSelect,
}: {
  rows: Row[];
  changed: ReadonlyMap<string, number>;
  selected: string;
  onToggle: (path: string) => void;
  onSelect: (path: string) => void;
}) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
  });

  // a changed location lights up its own row, the rows inside it, and — when it is hidden
  // in a collapsed object — the nearest row above it that is shown
  const lit = useMemo(() => {
    const out = new Set<string>();
    if (changed.size === 0) return out;
    const shown = new Set(rows.map((r) => r.path));
    for (const p of changed.keys()) {
      let at = p;
      while (!shown.has(at) && at !== "/") at = parentPath(at);
      out.add(at);
    }
    return out;
  }, [changed, rows]);
  const isLit = (path: string) => {
    if (lit.has(path)) return true;
    for (const p of changed.keys()) if (path.startsWith(p === "/" ? "/" : `${p}/`)) return true;
    return false;
  };

  const onKey = (e: KeyboardEvent<HTMLDivElement>, i: number) => {
    const row = rows[i];
    const focusRow = (j: number) => {
      if (j < 0 || j >= rows.length) return;
      e.preventDefault();
      virtual.scrollToIndex(j);
      onSelect(rows[j].path);
      requestAnimationFrame(() =>
        scroller.current?.querySelector<HTMLButtonElement>(`[data-index="${j}"] button[data-key]`)?.focus(),
      );
    };
    if (e.key === "ArrowDown") focusRow(i + 1);
    else if (e.key === "ArrowUp") focusRow(i - 1);
    else if (e.key === "ArrowRight" && row.container && !row.expanded) {
      e.preventDefault();
      onToggle(row.path);
    } else if (e.key === "ArrowLeft") {
      e.preventDefault();
      if (row.container && row.expanded) onToggle(row.path);
      else focusRow(rows.findIndex((r) => r.path === parentPath(row.path)));
    }
  };

  return (
    <div ref={scroller} className={styles.tree} role="tree" aria-label="Database tree" data-testid="db-tree">
      <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
        {virtual.getVirtualItems().map((item) => {
          const row = rows[item.index];
          const on = isLit(row.path);
          return (
            <div
              key={row.path}
              data-index={item.index}
              role="treeitem"
              aria-level={row.depth + 1}
              aria-expanded={row.container ? row.expanded : undefined}
              aria-selected={row.path === selected}
              className={`${styles.row} ${on ? styles.changed : ""} ${row.path === selected ? styles.selected : ""}`}
              data-testid="db-row"
              data-path={row.path}
              data-changed={on ? "true" : "false"}
              style={{ transform: `translateY(${item.start}px)`, height: ROW_HEIGHT, paddingLeft: 6 + row.depth * 16 }}
              onKeyDown={(e) => onKey(e, item.index)}
            >
              {row.container ? (
                <button
                  type="button"
                  className={styles.caret}
                  aria-label={`${row.expanded ? "Collapse" : "Expand"} ${row.path}`}
                  onClick={() => onToggle(row.path)}
                  tabIndex={-1}
                >
                  {row.expanded ? "▾" : "▸"}
                </button>
              ) : (
                <span className={styles.caret} aria-hidden="true" />
              )}
              <button
                type="button"
                data-key
                // roving focus: one row in the tab order (the selected one), arrows move it
                tabIndex={row.path === selected ? 0 : -1}
                className={styles.key}
                onClick={() => onSelect(row.path)}
                onDoubleClick={() => row.container && onToggle(row.path)}
                title={row.path}
              >
                {row.key}
              </button>
              {row.container ? (
                <span className={styles.size}>
                  {count(row.size)} {row.size === 1 ? "child" : "children"}
                </span>
              ) : (
                <span className={`${styles.value} ${styles[typeof row.value] ?? ""}`} data-testid="db-value">
                  {row.value === null ? "null" : preview(row.value)}
                </span>
              )}
            </div>
          );
        })}
      </div>
    </div>
  );
}
