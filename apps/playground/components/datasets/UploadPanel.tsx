/**
 * Upload a file into the lake: drop it here or pick it, name the dataset, watch it go.
 * Uploads are resumable: a paused upload, or one cut off by a reload, goes on from the parts
 * the server already has once the same file (same name, size and first part) is chosen again.
 */
"use client";

import { useCallback, useEffect, useId, useState, type DragEvent, type FormEvent } from "react";

import styles from "@/app/datasets/datasets.module.css";
import { ErrorLine } from "@/components/ui";
import { api, errorText } from "@/lib/api";
import { bytes, when } from "@/lib/format";
import {
  DEFAULT_PART_SIZE,
  formatOf,
  MIN_PART_SIZE,
  mismatch,
  NAME_RULE,
  nameFromFile,
  nameProblem,
  UPLOADS,
  type Format,
  type UploadRecord,
  type UploadStatus,
} from "@/lib/upload";

import type { Dataset } from "./types";
import { UploadItem } from "./UploadItem";
import { dismiss, isRunning, startUpload, store, useUploads } from "./uploads";

interface Pending {
  file: File;
  name: string;
  format: Format | "";
  partKiB: string;
  append: boolean;
}

interface Remembered {
  record: UploadRecord;
  status: UploadStatus;
  error: string | null;
  checking: boolean;
}

export function UploadPanel({ datasets, user }: { datasets: Dataset[]; user: string }) {
  const running = useUploads();
  const [over, setOver] = useState(false);
  const [pending, setPending] = useState<Pending | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [remembered, setRemembered] = useState<Remembered[]>([]);
  const [rememberedError, setRememberedError] = useState<string | null>(null);
  const ids = useId();

  /** The unfinished uploads this browser remembers for this user, as the server has them. */
  const loadRemembered = useCallback(async () => {
    const mine = store.list().filter((r) => r.user === user && !isRunning(r.id));
    if (mine.length === 0) {
      setRemembered([]);
      return;
    }
    try {
      const server = await api<UploadStatus[]>(UPLOADS);
      const byId = new Map(server.map((s) => [s.id, s]));
      const open: Remembered[] = [];
      for (const r of mine) {
        const s = byId.get(r.id);
        // Gone (aborted, expired, another node), converting or finished: nothing to resume.
        if (!s || s.state !== "open") store.forget(r.id);
        else open.push({ record: r, status: s, error: null, checking: false });
      }
      setRemembered(open);
      setRememberedError(null);
    } catch (e) {
      setRememberedError(`cannot list your unfinished uploads: ${errorText(e)}`);
    }
  }, [user]);

  useEffect(() => {
    void loadRemembered();
  }, [loadRemembered]);

  const patchRemembered = (id: string, patch: Partial<Remembered>) =>
    setRemembered((list) => list.map((r) => (r.record.id === id ? { ...r, ...patch } : r)));

  function resume(r: UploadRecord, file: File) {
    setRemembered((list) => list.filter((x) => x.record.id !== r.id));
    startUpload(file, { name: r.name, user, resume: r });
  }

  /** A file was chosen or dropped: resume the unfinished upload it matches, else ask for a name. */
  async function choose(files: FileList | null) {
    setError(null);
    setNote(null);
    const file = files?.[0];
    if (!file) return;
    if (file.size === 0) {
      setError(`${file.name} is empty (0 bytes): there is nothing to upload.`);
      return;
    }
    if (files.length > 1) setNote(`${files.length} files were given; uploading ${file.name} (one at a time).`);
    for (const r of remembered) {
      if (r.record.fileName === file.name && r.record.size === file.size && (await mismatch(r.record, file, r.status)) === null) {
        setNote(`${file.name} is the file of an unfinished upload to ${r.record.name}: resuming it, sending only the parts the server lacks.`);
        resume(r.record, file);
        return;
      }
    }
    setPending({ file, name: nameFromFile(file.name), format: formatOf(file.name) ?? "", partKiB: String(DEFAULT_PART_SIZE / 1024), append: false });
  }

  /** A file chosen for one remembered upload: it must be the same file. */
  async function chooseFor(r: Remembered, files: FileList | null) {
    const file = files?.[0];
    if (!file) return;
    patchRemembered(r.record.id, { checking: true, error: null });
    const why = await mismatch(r.record, file, r.status);
    if (why) patchRemembered(r.record.id, { checking: false, error: `Cannot resume with this file: ${why}.` });
    else resume(r.record, file);
  }

  async function discard(r: Remembered) {
    try {
      await api(`${UPLOADS}/${r.record.id}`, { method: "DELETE" });
    } catch (e) {
      patchRemembered(r.record.id, { error: errorText(e) });
      return;
    }
    store.forget(r.record.id);
    setRemembered((list) => list.filter((x) => x.record.id !== r.record.id));
  }

  const nameError = pending ? nameProblem(pending.name) : null;
  const partBytes = pending ? Math.round(Number(pending.partKiB) * 1024) : 0;
  const partError =
    pending && (!Number.isFinite(partBytes) || partBytes < MIN_PART_SIZE) ? `a part has at least ${MIN_PART_SIZE / 1024} KiB` : null;
  const existing = pending ? datasets.find((d) => d.name === pending.name) : undefined;

  function submit(ev: FormEvent) {
    ev.preventDefault();
    if (!pending || nameError || partError || !pending.format) return;
    startUpload(pending.file, {
      name: pending.name,
      user,
      format: pending.format,
      partSize: partBytes,
      append: pending.append && existing !== undefined,
    });
    setPending(null);
  }

  const onDrop = (ev: DragEvent) => {
    ev.preventDefault();
    setOver(false);
    void choose(ev.dataTransfer.files);
  };

  return (
    <section className="panel" aria-labelledby={`${ids}-h`}>
      <h2 id={`${ids}-h`} style={{ marginTop: 0 }}>
        Upload
      </h2>
      <div
        className={`${styles.drop} ${over ? styles.over : ""}`}
        data-testid="dropzone"
        onDragOver={(ev) => {
          ev.preventDefault();
          ev.dataTransfer.dropEffect = "copy";
          setOver(true);
        }}
        onDragLeave={(ev) => {
          // Moving onto a child (the picker) is not leaving the zone.
          if (!ev.currentTarget.contains(ev.relatedTarget as Node | null)) setOver(false);
        }}
        onDrop={onDrop}
      >
        <span>Drop a CSV, JSON lines or Parquet file here, or</span>
        <label className={styles.picker}>
          <span>Choose a file to upload</span>
          <input
            type="file"
            accept=".csv,.jsonl,.ndjson,.json,.parquet,.pq"
            onChange={(ev) => {
              void choose(ev.target.files);
              ev.target.value = "";
            }}
          />
        </label>
        <span className={styles.hint}>Large files are sent in parts; a paused or interrupted upload resumes where it stopped.</span>
      </div>
      {note ? (
        <p className="muted" role="status">
          {note}
        </p>
      ) : null}
      <ErrorLine error={error} testId="upload-choose-error" />

      {pending ? (
        <form className={styles.form} onSubmit={submit} aria-label="New upload" noValidate>
          <p className={`${styles.wide} muted`} style={{ margin: 0 }}>
            <strong>{pending.file.name}</strong> · {bytes(pending.file.size)}
          </p>
          <label>
            Dataset name
            <input
              value={pending.name}
              onChange={(ev) => setPending({ ...pending, name: ev.target.value })}
              aria-invalid={nameError ? true : undefined}
              aria-describedby={`${ids}-rule`}
              className={nameError ? styles.invalid : undefined}
              autoComplete="off"
              spellCheck={false}
              required
            />
            <span id={`${ids}-rule`} className={nameError ? "warn" : styles.hint} data-testid="name-rule">
              {nameError ? `${nameError}: ${NAME_RULE}` : NAME_RULE}
            </span>
          </label>
          <label>
            Format
            <select value={pending.format} onChange={(ev) => setPending({ ...pending, format: ev.target.value as Format | "" })} required>
              <option value="" disabled>
                choose (the suffix does not say)
              </option>
              <option value="csv">CSV</option>
              <option value="jsonl">JSON lines</option>
              <option value="parquet">Parquet</option>
            </select>
            <span className={styles.hint}>{formatOf(pending.file.name) ? "from the file's suffix" : "the lake reads .csv, .jsonl/.ndjson/.json, .parquet/.pq"}</span>
          </label>
          <details className={styles.wide}>
            <summary>Part size</summary>
            <label style={{ maxWidth: 260, marginTop: "0.4rem" }}>
              Part size (KiB)
              <input
                type="number"
                min={MIN_PART_SIZE / 1024}
                step={1}
                value={pending.partKiB}
                onChange={(ev) => setPending({ ...pending, partKiB: ev.target.value })}
                aria-invalid={partError ? true : undefined}
              />
              <span className={partError ? "warn" : styles.hint}>
                {partError ?? "one part is in flight at a time; a smaller part loses less when interrupted"}
              </span>
            </label>
          </details>
          {existing ? (
            <div className={styles.wide}>
              <p className="warn" style={{ margin: "0 0 0.3rem" }} data-testid="name-exists">
                {existing.name} exists (version {existing.version}, {existing.rows.toLocaleString("en-US")} rows): this upload makes version{" "}
                {existing.version + 1}.
              </p>
              <label className="inline">
                <input type="checkbox" checked={pending.append} onChange={(ev) => setPending({ ...pending, append: ev.target.checked })} />
                Append the rows to the current version instead of replacing them
              </label>
            </div>
          ) : null}
          <div className={`${styles.wide} row`}>
            <button type="submit" className="primary" disabled={Boolean(nameError || partError || !pending.format)}>
              Upload
            </button>
            <button type="button" onClick={() => setPending(null)}>
              Clear
            </button>
          </div>
        </form>
      ) : null}

      {running.length ? (
        <>
          <h3>Uploads</h3>
          <ul className={styles.uploads}>
            {running.map((r) => (
              <UploadItem
                key={r.key}
                snap={r.snap}
                onPause={() => r.upload.pause()}
                onResume={() => void r.upload.run()}
                onCancel={() => void r.upload.cancel()}
                onDismiss={() => dismiss(r.key)}
              />
            ))}
          </ul>
        </>
      ) : null}

      <ErrorLine error={rememberedError} />
      {remembered.length ? (
        <>
          <h3>Unfinished uploads</h3>
          <p className={styles.hint}>Choose the same file again to send only the parts the server does not have yet.</p>
          <ul className={styles.uploads}>
            {remembered.map((r) => (
              <li key={r.record.id} className={styles.upload} data-testid="unfinished" data-name={r.record.name}>
                <header>
                  <strong className={styles.name}>{r.record.name}</strong>
                  <span className="muted">
                    from {r.record.fileName} · started {when(r.record.created / 1000)}
                  </span>
                  <span className="badge queued">paused</span>
                </header>
                <progress value={r.status.received_bytes} max={r.status.size} aria-label={`Unfinished upload of ${r.record.fileName} to ${r.record.name}`} />
                <div className={styles.numbers}>
                  {bytes(r.status.received_bytes)} of {bytes(r.status.size)} on the server · {r.status.received.length} of {r.status.parts} parts
                </div>
                <ErrorLine error={r.error} testId="unfinished-error" />
                <div className="row">
                  <label className={styles.picker}>
                    <span>
                      Choose {r.record.fileName} again to resume its upload to {r.record.name}
                    </span>
                    <input
                      type="file"
                      disabled={r.checking}
                      onChange={(ev) => {
                        void chooseFor(r, ev.target.files);
                        ev.target.value = "";
                      }}
                    />
                  </label>
                  <button type="button" className="danger" onClick={() => void discard(r)}>
                    Discard
                  </button>
                </div>
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </section>
  );
}
