/**
 * The Database page: Elkyn's tree under /db, browsed and edited live, and its rules.
 *
 * The shown location comes from ?path= (a deep link that survives reload). It is first read
 * shallowly (?shallow=true: only its children's keys) to learn how big it is: up to
 * STREAM_LIMIT children it is streamed (one EventSource, see useStream for why one) and
 * browsed as a tree whose objects expand in place; above that, the page lists the keys only
 * (virtualised, with their count) and each one opens as a location of its own, so a key with
 * 100,000 children never ships its whole subtree to the browser.
 */
"use client";

import { useVirtualizer } from "@tanstack/react-virtual";
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";

import styles from "@/components/database/database.module.css";
import { compareKeys, dbFetch, errorMessage, normalisePath, parentPath, restUrl, childPath } from "@/components/database/db";
import { Inspector } from "@/components/database/Inspector";
import { RulesEditor } from "@/components/database/RulesEditor";
import { flatten, Tree } from "@/components/database/Tree";
import { useStream } from "@/components/database/useStream";
import { Tabs, tabPanelProps } from "@/components/Tabs";
import { Busy, Empty, ErrorLine, PageTitle } from "@/components/ui";
import { count } from "@/lib/format";
import { segments, type Json } from "@/lib/live";
import { useSession } from "@/lib/session";

/** Above this many children a location is listed by key (shallow) instead of streamed. */
const STREAM_LIMIT = 10_000;

type Shape =
  | { kind: "loading" }
  | { kind: "error"; error: string }
  | { kind: "live"; size: number }
  | { kind: "big"; keys: string[] };

function href(path: string, tab?: string): string {
  const q = new URLSearchParams({ path });
  if (tab && tab !== "data") q.set("tab", tab);
  return `/database/?${q.toString()}`;
}

function valueAt(root: string, value: Json, path: string): Json | undefined {
  const base = segments(root);
  const parts = segments(path);
  if (parts.slice(0, base.length).join("/") !== base.join("/")) return undefined;
  let v: Json | undefined = value;
  for (const k of parts.slice(base.length)) {
    if (v === null || v === undefined || typeof v !== "object") return null;
    v = (v as { [k: string]: Json })[k] ?? null;
  }
  return v;
}

function PathBar({ path }: { path: string }) {
  const router = useRouter();
  const [typed, setTyped] = useState(path);
  useEffect(() => setTyped(path), [path]);
  const go = (e: FormEvent) => {
    e.preventDefault();
    router.push(href(normalisePath(typed)));
  };
  const parts = segments(path);
  return (
    <>
      <form className={styles.pathbar} onSubmit={go} role="search" aria-label="Go to a location">
        <label>
          Path
          <input value={typed} onChange={(e) => setTyped(e.target.value)} placeholder="/users/ada" spellCheck={false} data-testid="db-path" />
        </label>
        <button type="submit" className="primary">
          Go
        </button>
        {parts.length ? (
          <button type="button" onClick={() => router.push(href(parentPath(path)))}>
            Up
          </button>
        ) : null}
      </form>
      <nav className={styles.crumbs} aria-label="Location">
        <Link href={href("/")}>/</Link>
        {parts.map((p, i) => (
          <span key={i}>
            {i ? "/" : ""}
            <Link href={href("/" + parts.slice(0, i + 1).join("/"))} aria-current={i === parts.length - 1 ? "page" : undefined}>
              {p}
            </Link>
          </span>
        ))}
      </nav>
    </>
  );
}

/** A location too big to stream: its keys, virtualised; each opens as a location. */
function KeyList({ root, keys }: { root: string; keys: string[] }) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({ count: keys.length, getScrollElement: () => scroller.current, estimateSize: () => 30, overscan: 12 });
  return (
    <div ref={scroller} className={styles.tree} data-testid="db-keys" aria-label={`Children of ${root}`} role="list">
      <div style={{ height: virtual.getTotalSize(), position: "relative" }}>
        {virtual.getVirtualItems().map((item) => {
          const key = keys[item.index];
          return (
            <div key={key} role="listitem" className={styles.row} style={{ transform: `translateY(${item.start}px)`, height: 30, paddingLeft: 8 }} data-testid="db-key">
              <Link href={href(childPath(root, key))} className={styles.key}>
                {key}
              </Link>
            </div>
          );
        })}
      </div>
    </div>
  );
}

function DataView({ root }: { root: string }) {
  const [shape, setShape] = useState<Shape>({ kind: "loading" });
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(() => new Set([root]));
  const [selected, setSelected] = useState(root);
  const [reloads, setReloads] = useState(0);

  useEffect(() => {
    setExpanded(new Set([root]));
    setSelected(root);
  }, [root]);

  useEffect(() => {
    let cancelled = false;
    setShape({ kind: "loading" });
    dbFetch("GET", restUrl(root, { shallow: "true" }))
      .then(({ value }) => {
        if (cancelled) return;
        const keys = value !== null && typeof value === "object" ? Object.keys(value as object) : [];
        if (keys.length > STREAM_LIMIT) setShape({ kind: "big", keys: keys.sort(compareKeys) });
        else setShape({ kind: "live", size: keys.length });
      })
      .catch((e) => !cancelled && setShape({ kind: "error", error: errorMessage(e) }));
    return () => {
      cancelled = true;
    };
  }, [root, reloads]);

  const live = useStream(shape.kind === "live" ? root : null);
  const rows = useMemo(() => flatten(root, live.value, expanded), [root, live.value, expanded]);
  const toggle = useCallback((path: string) => {
    setExpanded((s) => {
      const next = new Set(s);
      if (next.has(path)) next.delete(path);
      else next.add(path);
      return next;
    });
  }, []);
  const onDeleted = useCallback((path: string) => setSelected(path === root ? root : parentPath(path)), [root]);

  if (shape.kind === "loading") return <Busy label={`Reading ${root}`} />;
  if (shape.kind === "error") return <ErrorLine error={`${root}: ${shape.error}`} testId="db-error" />;

  if (shape.kind === "big") {
    return (
      <div className={styles.layout}>
        <div>
          <p className={styles.status} data-testid="db-count">
            <strong>{count(shape.keys.length)} children</strong>
            <span className="muted">— too many to stream here; open one to browse it live.</span>
          </p>
          <KeyList root={root} keys={shape.keys} />
        </div>
        <Inspector key={root} path={root} value={{}} known onWritten={() => setReloads((n) => n + 1)} onDeleted={() => setReloads((n) => n + 1)} />
      </div>
    );
  }

  const selectedValue = valueAt(root, live.value, selected);
  return (
    <div className={styles.layout}>
      <div>
        <p className={styles.status}>
          {live.error ? null : live.loaded ? (
            <span className={styles.live} data-testid="db-live">
              ● Live
            </span>
          ) : (
            <Busy label="Connecting" />
          )}
          {live.loaded && rows[0]?.container ? (
            <span className="muted" data-testid="db-count">
              {count(rows[0].size)} {rows[0].size === 1 ? "child" : "children"}
            </span>
          ) : null}
        </p>
        <ErrorLine error={live.error} testId="db-stream-error" />
        {live.loaded && live.value === null ? (
          <Empty title={`Nothing is stored at ${root}`}>
            Add a child on the right, or type another path above (a deep link like{" "}
            <code>/database/?path=/users</code> works too).
          </Empty>
        ) : live.loaded ? (
          <Tree rows={rows} changed={live.changed} selected={selected} onToggle={toggle} onSelect={setSelected} />
        ) : null}
      </div>
      {live.loaded ? (
        <Inspector key={selected} path={selected} value={selectedValue === undefined ? null : selectedValue} known onDeleted={onDeleted} />
      ) : null}
    </div>
  );
}

const VIEWS = [
  { id: "data", label: "Data" },
  { id: "rules", label: "Rules" },
] as const;

function DatabasePage() {
  const params = useSearchParams();
  const router = useRouter();
  const session = useSession();
  const path = normalisePath(params.get("path") ?? "/");
  const admin = session?.admin === true;
  const tab = params.get("tab") === "rules" && admin ? "rules" : "data"; // only an admin sees the rules
  return (
    <>
      <PageTitle title="Database" />
      <Tabs
        label="Database views"
        items={admin ? VIEWS : VIEWS.slice(0, 1)}
        current={tab}
        onSelect={(id) => router.push(href(path, id))}
      />
      <div {...tabPanelProps(tab)}>
        {tab === "rules" ? (
          <RulesEditor />
        ) : (
          <>
            <PathBar path={path} />
            <DataView key={path} root={path} />
          </>
        )}
      </div>
    </>
  );
}

export default function Page() {
  return (
    <Suspense>
      <DatabasePage />
    </Suspense>
  );
}
