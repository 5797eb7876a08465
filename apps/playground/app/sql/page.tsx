"use client";

/**
 * The SQL page: write a statement (completion of datasets and columns), run it as an Arrow
 * stream into a virtualised grid (at most ROW_CAP rows kept), chart it, EXPLAIN where it
 * reads, download the whole result as CSV or Parquet, and get back to earlier queries.
 */
import { useSearchParams } from "next/navigation";
import { Suspense, useCallback, useEffect, useRef, useState } from "react";

import { DataGrid } from "@/components/DataGrid";
import { ExplainTree } from "@/components/sql/ExplainTree";
import { HistoryList } from "@/components/sql/HistoryList";
import { ResultChart } from "@/components/sql/ResultChart";
import { SqlEditor, type ErrorSpot } from "@/components/sql/SqlEditor";
import { addHistory, loadHistory, saveHistory, type HistoryEntry } from "@/components/sql/history";
import {
  DOWNLOAD_CAP,
  ROW_CAP,
  cancelQuery,
  download,
  explain,
  newQueryId,
  runArrow,
  saveBlob,
  type DownloadFormat,
  type Plan,
} from "@/components/sql/query";
import { Tabs, tabPanelProps } from "@/components/Tabs";
import { Busy, Empty, ErrorLine, PageTitle } from "@/components/ui";
import { ApiError, api, errorText } from "@/lib/api";
import type { Frame } from "@/lib/arrow";
import { count, seconds } from "@/lib/format";

import styles from "./sql.module.css";

interface DatasetInfo {
  name: string;
  columns: { name: string }[];
}

const TABS = [
  { id: "results", label: "Results" },
  { id: "chart", label: "Chart" },
  { id: "plan", label: "Plan" },
] as const;
type Tab = (typeof TABS)[number]["id"];

interface Running {
  what: "query" | "explain";
  id: string;
  sql: string;
  started: number;
  ctrl: AbortController;
  cancelled: boolean;
}

interface Result {
  frame: Frame;
  cut: boolean;
  seconds: number;
  sql: string;
}

function spotOf(e: unknown): ErrorSpot | null {
  if (!(e instanceof ApiError)) return null;
  const { line, column } = e.details as { line?: unknown; column?: unknown };
  return typeof line === "number" && typeof column === "number" ? { line, column } : null;
}

function SqlPage() {
  const params = useSearchParams();
  const [text, setText] = useState(() => params.get("q") ?? "");
  const [schema, setSchema] = useState<Record<string, string[]>>({});
  const [schemaError, setSchemaError] = useState<string | null>(null);
  const [running, setRunning] = useState<Running | null>(null);
  const runningRef = useRef<Running | null>(null);
  const [elapsed, setElapsed] = useState(0);
  const [result, setResult] = useState<Result | null>(null);
  const [plan, setPlan] = useState<{ plan: Plan; sql: string } | null>(null);
  const [error, setError] = useState<{ message: string; spot: ErrorSpot | null } | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [tab, setTab] = useState<Tab>("results");
  const [history, setHistory] = useState<HistoryEntry[]>([]);
  const [saving, setSaving] = useState<DownloadFormat | null>(null);
  const [saveError, setSaveError] = useState<string | null>(null);
  const saveCtrl = useRef<AbortController | null>(null);

  useEffect(() => {
    setHistory(loadHistory());
    const ctrl = new AbortController();
    api<DatasetInfo[]>("/api/lake/datasets", { signal: ctrl.signal })
      .then((ds) => setSchema(Object.fromEntries(ds.map((d) => [d.name, d.columns.map((c) => c.name)]))))
      .catch((e) => {
        if ((e as Error).name !== "AbortError") setSchemaError(`Completion has no datasets: ${errorText(e)}`);
      });
    return () => {
      ctrl.abort();
      runningRef.current?.ctrl.abort();
      saveCtrl.current?.abort();
    };
  }, []);

  useEffect(() => {
    if (!running) return;
    const tick = () => setElapsed((performance.now() - running.started) / 1000);
    tick();
    const t = setInterval(tick, 100);
    return () => clearInterval(t);
  }, [running]);

  const begin = (what: Running["what"], sql: string): Running => {
    const r: Running = { what, id: newQueryId(), sql, started: performance.now(), ctrl: new AbortController(), cancelled: false };
    runningRef.current = r;
    setRunning(r);
    setError(null);
    setNotice(null);
    return r;
  };

  const end = (r: Running) => {
    if (runningRef.current === r) {
      runningRef.current = null;
      setRunning(null);
    }
  };

  const record = (entry: Omit<HistoryEntry, "at">) =>
    setHistory((h) => addHistory(h, { ...entry, at: Date.now() }));

  const statement = (): string | null => {
    const sql = text.trim().replace(/;\s*$/, "");
    if (!sql) {
      setError({ message: "Write a statement first, e.g. SELECT * FROM <dataset> LIMIT 10.", spot: null });
      return null;
    }
    return sql;
  };

  const runQuery = useCallback(async () => {
    if (runningRef.current) return;
    const sql = statement();
    if (!sql) return;
    const r = begin("query", sql);
    try {
      const out = await runArrow(sql, r.id, r.ctrl.signal);
      const secs = (performance.now() - r.started) / 1000;
      if (out.cut) r.ctrl.abort(); // the rest is not needed: the lake stops the query
      setResult({ frame: out.frame, cut: out.cut, seconds: secs, sql });
      setTab((t) => (t === "plan" ? "results" : t));
      record({ sql, ok: true, rows: out.frame.rowCount, seconds: secs });
    } catch (e) {
      const secs = (performance.now() - r.started) / 1000;
      if (r.cancelled) {
        setNotice(`Cancelled after ${seconds(secs)}.`);
        record({ sql, ok: false, rows: null, seconds: secs, error: "cancelled" });
      } else {
        const message = errorText(e);
        setError({ message, spot: spotOf(e) });
        record({ sql, ok: false, rows: null, seconds: secs, error: message });
      }
    } finally {
      end(r);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [text]);

  const runExplain = async (analyze = false) => {
    if (runningRef.current) return;
    const sql = statement();
    if (!sql) return;
    const r = begin("explain", sql);
    try {
      const p = await explain(sql, r.id, r.ctrl.signal, analyze);
      setPlan({ plan: p, sql });
      setTab("plan");
    } catch (e) {
      if (r.cancelled) setNotice("EXPLAIN cancelled.");
      else setError({ message: errorText(e), spot: spotOf(e) });
    } finally {
      end(r);
    }
  };

  const cancel = async () => {
    const r = runningRef.current;
    if (!r) return;
    r.cancelled = true;
    r.ctrl.abort();
    try {
      await cancelQuery(r.id);
    } catch (e) {
      setError({ message: `Cancelling failed: ${errorText(e)}`, spot: null });
    }
  };

  const save = async (format: DownloadFormat) => {
    const sql = result?.sql ?? statement();
    if (!sql || saving) return;
    const ctrl = new AbortController();
    saveCtrl.current = ctrl;
    setSaving(format);
    setSaveError(null);
    try {
      const blob = await download(sql, format, ctrl.signal);
      saveBlob(blob, `result.${format}`);
    } catch (e) {
      if ((e as Error).name !== "AbortError") setSaveError(`The ${format.toUpperCase()} download failed: ${errorText(e)}`);
    } finally {
      setSaving(null);
      saveCtrl.current = null;
    }
  };

  const clearHistory = () => {
    saveHistory([]);
    setHistory([]);
  };

  const datasetCount = Object.keys(schema).length;

  return (
    <>
      <PageTitle title="SQL" />
      <div className={styles.layout}>
        <div className={styles.main}>
          <section className="panel" aria-label="Query">
            <SqlEditor value={text} onChange={setText} onRun={runQuery} schema={schema} error={error?.spot ?? null} />
            <p id="sql-help" className={`muted ${styles.help}`}>
              Ctrl+Enter (⌘+Enter) runs. Type a dataset name and a dot to complete its columns
              {datasetCount ? ` (${datasetCount} ${datasetCount === 1 ? "dataset" : "datasets"})` : ""}.
            </p>
            <ErrorLine error={schemaError} testId="schema-error" />
            <div className={styles.toolbar}>
              <button type="button" className="primary" onClick={runQuery} disabled={!!running}>
                Run
              </button>
              <button type="button" onClick={() => runExplain(false)} disabled={!!running}>
                Explain
              </button>
              <button
                type="button"
                onClick={() => runExplain(true)}
                disabled={!!running}
                title="Run the query and show what each stage moved and how long it took"
              >
                Analyze
              </button>
              <button type="button" className="danger" onClick={cancel} disabled={!running}>
                Cancel
              </button>
              <span className={styles.status} role="status" aria-live="polite" data-testid="status">
                {running
                  ? `${running.what === "explain" ? "Explaining" : "Running"}… ${elapsed.toFixed(1)} s`
                  : notice
                    ? notice
                    : result
                      ? `${count(result.frame.rowCount)} ${result.frame.rowCount === 1 ? "row" : "rows"}${result.cut ? " (cut)" : ""} in ${seconds(result.seconds)}`
                      : ""}
              </span>
              <span className={styles.spacer} />
              <button
                type="button"
                onClick={() => save("csv")}
                disabled={!!saving || (!result && !text.trim())}
                title="The whole result of the last run (or of the editor's query before any run)"
              >
                {saving === "csv" ? "Preparing CSV…" : "Download CSV"}
              </button>
              <button
                type="button"
                onClick={() => save("parquet")}
                disabled={!!saving || (!result && !text.trim())}
                title="The whole result of the last run (or of the editor's query before any run)"
              >
                {saving === "parquet" ? "Preparing Parquet…" : "Download Parquet"}
              </button>
            </div>
            <ErrorLine error={error?.message} testId="query-error" />
            <ErrorLine error={saveError} testId="download-error" />
          </section>

          <Tabs label="Result views" items={TABS} current={tab} onSelect={setTab} />
          <div {...tabPanelProps(tab)} className={styles.panel}>
            {tab === "results" ? (
              result ? (
                <>
                  {result.cut ? (
                    <p className="warn" data-testid="cut">
                      The result has more than {count(ROW_CAP)} rows; the grid shows the first {count(ROW_CAP)}. Download CSV
                      or Parquet for the whole result (up to {DOWNLOAD_CAP / 1024 / 1024} MiB here).
                    </p>
                  ) : null}
                  {result.frame.columns.length ? (
                    <DataGrid frame={result.frame} label="Query results" />
                  ) : (
                    <Empty title="The statement returned no columns" />
                  )}
                </>
              ) : running?.what === "query" ? (
                <Busy label="Running" />
              ) : (
                <Empty title="No result yet">Write a query above and press Run (or Ctrl+Enter).</Empty>
              )
            ) : null}
            {tab === "chart" ? (
              result ? (
                <ResultChart frame={result.frame} />
              ) : (
                <Empty title="Nothing to chart yet">Run a query; its result can be drawn here.</Empty>
              )
            ) : null}
            {tab === "plan" ? (
              plan ? (
                <ExplainTree plan={plan.plan} sql={plan.sql} />
              ) : running?.what === "explain" ? (
                <Busy label="Explaining" />
              ) : (
                <Empty title="No plan yet">Press Explain to see which nodes read which chunks for the query.</Empty>
              )
            ) : null}
          </div>
        </div>
        <HistoryList entries={history} onPick={(sql) => setText(sql)} onClear={clearHistory} />
      </div>
    </>
  );
}

export default function Page() {
  return (
    <Suspense>
      <SqlPage />
    </Suspense>
  );
}
