/** The last queries run in this browser: click one to put it back in the editor. */
"use client";

import { Empty } from "@/components/ui";
import { count, seconds } from "@/lib/format";

import type { HistoryEntry } from "./history";

import styles from "@/app/sql/sql.module.css";

export function HistoryList({
  entries,
  onPick,
  onClear,
}: {
  entries: HistoryEntry[];
  onPick: (sql: string) => void;
  onClear: () => void;
}) {
  return (
    <section className={`panel ${styles.history}`} aria-labelledby="sql-history">
      <div className={styles.historyHead}>
        <h2 id="sql-history">History</h2>
        <button type="button" onClick={onClear} disabled={!entries.length}>
          Clear history
        </button>
      </div>
      {entries.length ? (
        <ol className={styles.historyList} data-testid="history">
          {entries.map((e) => (
            <li key={`${e.at}-${e.sql.length}`}>
              <button
                type="button"
                className={styles.historyItem}
                onClick={() => onPick(e.sql)}
                title={e.error ? `${e.sql}\n\n${e.error}` : e.sql}
              >
                <code className={styles.historySql}>{e.sql}</code>
                <span className={styles.historyMeta}>
                  <span className={`badge ${e.ok ? "succeeded" : e.error === "cancelled" ? "cancelled" : "failed"}`}>
                    {e.ok ? "ok" : e.error === "cancelled" ? "cancelled" : "error"}
                  </span>
                  <span>{new Date(e.at).toLocaleString()}</span>
                  {e.rows !== null ? <span>{count(e.rows)} rows</span> : null}
                  <span>{seconds(e.seconds)}</span>
                </span>
              </button>
            </li>
          ))}
        </ol>
      ) : (
        <Empty title="No queries yet">The queries you run here are kept in this browser (the last 50).</Empty>
      )}
    </section>
  );
}
