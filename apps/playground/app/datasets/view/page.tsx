"use client";

/**
 * One dataset (/datasets/view/?name=x[&version=n]): its facts, schema, versions, chunks and
 * first rows; a link to query it in SQL; delete (with a confirmation naming it).
 */
import Link from "next/link";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useCallback, useEffect, useMemo, useRef, useState } from "react";

import styles from "@/app/datasets/datasets.module.css";
import { DataGrid } from "@/components/DataGrid";
import { DeleteDialog } from "@/components/datasets/DeleteDialog";
import type { Dataset, DatasetDetail } from "@/components/datasets/types";
import { newQueryId, runArrow } from "@/components/sql/query";
import { Busy, Empty, ErrorLine, PageTitle } from "@/components/ui";
import { api, ApiError, errorText } from "@/lib/api";
import { frameFromRows, type Frame } from "@/lib/arrow";
import { bytes, count, seconds, when } from "@/lib/format";
import { useLive } from "@/lib/live";

interface Preview {
  frame: Frame;
  seconds: number;
}

const PREVIEW_ROWS = 100;

function View() {
  const params = useSearchParams();
  const router = useRouter();
  const name = params.get("name") ?? "";
  const versionParam = params.get("version");
  const version = versionParam && /^\d+$/.test(versionParam) ? Number(versionParam) : null;
  const live = useLive(name ? `/datasets/${name}` : null);

  const [detail, setDetail] = useState<DatasetDetail | null>(null);
  const [versions, setVersions] = useState<Dataset[] | null>(null);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [missing, setMissing] = useState(false);
  const [previewError, setPreviewError] = useState<string | null>(null);
  const [deleting, setDeleting] = useState(false);
  // While the delete dialog is open, a live change (the delete itself) does not re-read a
  // dataset that is about to be gone.
  const holding = useRef(false);
  holding.current = deleting;
  // Once deleted, nothing re-reads it: the live change of the delete can arrive after the
  // dialog closed and before the list page is shown (a re-read would answer 404).
  const deleted = useRef(false);

  const load = useCallback(async () => {
    if (!name || holding.current || deleted.current) return;
    const q = encodeURIComponent(name);
    try {
      const [d, v] = await Promise.all([
        api<DatasetDetail>(`/api/lake/datasets/${q}${version ? `?version=${version}` : ""}`),
        api<Dataset[]>(`/api/lake/datasets/${q}/versions`),
      ]);
      setDetail(d);
      setVersions([...v].sort((a, b) => b.version - a.version));
      setError(null);
      setMissing(false);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) setMissing(true);
      setError(errorText(e));
      return;
    }
    try {
      // As Arrow, like the SQL page: JSON would round integers past 2^53 (and write times
      // differently); the name is a checked identifier (letters, digits, _).
      const started = performance.now();
      const sql = `SELECT * FROM "${name}" LIMIT ${PREVIEW_ROWS}`;
      const { frame } = await runArrow(sql, newQueryId(), new AbortController().signal);
      setPreview({ frame, seconds: (performance.now() - started) / 1000 });
      setPreviewError(null);
    } catch (e) {
      setPreviewError(`cannot show the first rows: ${errorText(e)}`);
    }
  }, [name, version]);

  useEffect(() => {
    void load();
  }, [load, live.version]);

  const frame: Frame | null = preview?.frame ?? null;
  const chunks: Frame | null = useMemo(
    () =>
      detail
        ? frameFromRows(
            [
              { name: "chunk (SHA-256)", type: "string" },
              { name: "rows", type: "int64" },
              { name: "bytes", type: "int64" },
            ],
            detail.chunk_list.map((c) => [c.sha256, c.rows, c.bytes]),
          )
        : null,
    [detail],
  );

  if (!name)
    return (
      <>
        <PageTitle title="Dataset" />
        <Empty title="No dataset named">
          Open one from the <Link href="/datasets/">list of datasets</Link>.
        </Empty>
      </>
    );

  const current = versions?.[0]?.version ?? null;
  const sql = `SELECT * FROM ${name} LIMIT 100`;
  return (
    <>
      <PageTitle title={name}>
        <Link className="button" href={`/sql/?q=${encodeURIComponent(sql)}`}>
          Query in SQL
        </Link>
        {detail ? (
          <button type="button" className="danger" onClick={() => setDeleting(true)}>
            Delete…
          </button>
        ) : null}
      </PageTitle>
      <p>
        <Link href="/datasets/">← All datasets</Link>
      </p>
      <ErrorLine error={error} />
      {missing ? (
        <Empty title={`There is no dataset ${name}`}>
          It may have been deleted. See the <Link href="/datasets/">list of datasets</Link>.
        </Empty>
      ) : null}
      {!detail && !error ? <Busy label="Loading the dataset" /> : null}
      {detail ? (
        <>
          <section className="panel" aria-label="Facts">
            {version !== null && version !== current ? (
              <p className="warn" style={{ marginTop: 0 }}>
                Showing version {version}; the current one is {current}.{" "}
                <Link href={`/datasets/view/?name=${encodeURIComponent(name)}`}>Show the current version</Link>
              </p>
            ) : null}
            <dl className={styles.facts} data-testid="facts">
              <div>
                <dt>Version</dt>
                <dd>{detail.version}</dd>
              </div>
              <div>
                <dt>Rows</dt>
                <dd data-testid="fact-rows">{count(detail.rows)}</dd>
              </div>
              <div>
                <dt>Size</dt>
                <dd>{bytes(detail.bytes)}</dd>
              </div>
              <div>
                <dt>Chunks</dt>
                <dd>{count(detail.chunks)}</dd>
              </div>
              <div>
                <dt>Owner</dt>
                <dd>{detail.owner ?? "–"}</dd>
              </div>
              <div>
                <dt>Created</dt>
                <dd>{when(detail.created)}</dd>
              </div>
              <div>
                <dt>Origin</dt>
                <dd>{detail.origin || "–"}</dd>
              </div>
            </dl>
          </section>

          <h2>Schema</h2>
          <div className={styles.tableWrap}>
            <table className="data" data-testid="schema">
              <thead>
                <tr>
                  <th scope="col">Column</th>
                  <th scope="col">Type</th>
                  <th scope="col">Nullable</th>
                </tr>
              </thead>
              <tbody>
                {detail.columns.map((c) => (
                  <tr key={c.name}>
                    <td className={styles.mono}>{c.name}</td>
                    <td className={styles.mono}>{c.type}</td>
                    <td>{c.nullable ? "yes" : "no"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>

          <h2>First rows</h2>
          <ErrorLine error={previewError} testId="preview-error" />
          {frame ? (
            frame.rowCount ? (
              <>
                <DataGrid frame={frame} label={`First rows of ${name}`} height={360} />
                <p className={styles.hint}>
                  The first {count(frame.rowCount)} rows of the current version ({seconds(preview?.seconds)}).
                </p>
              </>
            ) : (
              <Empty title="No rows">This version holds no rows; upload a file with rows to add a version.</Empty>
            )
          ) : !previewError ? (
            <Busy label="Reading the first rows" />
          ) : null}

          <h2>Versions</h2>
          <div className={styles.tableWrap}>
            <table className="data" data-testid="versions">
              <thead>
                <tr>
                  <th scope="col" className="num">Version</th>
                  <th scope="col" className="num">Rows</th>
                  <th scope="col" className="num">Size</th>
                  <th scope="col" className="num">Chunks</th>
                  <th scope="col">Created</th>
                </tr>
              </thead>
              <tbody>
                {(versions ?? []).map((v) => (
                  <tr key={v.version} className={v.version === detail.version ? styles.current : undefined}>
                    <td className="num">
                      <Link
                        href={`/datasets/view/?name=${encodeURIComponent(name)}${v.version === current ? "" : `&version=${v.version}`}`}
                        aria-current={v.version === detail.version ? "true" : undefined}
                      >
                        {v.version}
                      </Link>
                      {v.version === current ? <span className="muted"> (current)</span> : null}
                    </td>
                    <td className="num">{count(v.rows)}</td>
                    <td className="num">{bytes(v.bytes)}</td>
                    <td className="num">{count(v.chunks)}</td>
                    <td>{when(v.created)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>

          <h2>Chunks of version {detail.version}</h2>
          {chunks && chunks.rowCount ? (
            <DataGrid frame={chunks} label={`Chunks of ${name}`} height={240} />
          ) : (
            <Empty title="No chunks">An empty version has no chunks.</Empty>
          )}

          <DeleteDialog
            name={name}
            open={deleting}
            onClose={() => setDeleting(false)}
            onDeleted={() => {
              deleted.current = true;
              setDeleting(false);
              router.push("/datasets/");
            }}
          />
        </>
      ) : null}
    </>
  );
}

export default function DatasetPage() {
  return (
    <Suspense fallback={<Busy />}>
      <View />
    </Suspense>
  );
}
