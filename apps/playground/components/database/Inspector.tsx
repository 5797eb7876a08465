/**
 * What can be done at the selected location: see and edit its value (JSON), add a child (a key
 * of yours or a generated push key), delete it after a confirmation. What the user types is
 * parsed as JSON here first, so invalid JSON is said under the field and never sent; the
 * server's refusals (rules denials included) are shown under the action that caused them.
 */
"use client";

import { useEffect, useId, useRef, useState, type FormEvent } from "react";

import { ErrorLine } from "@/components/ui";
import type { Json } from "@/lib/live";
import { segments } from "@/lib/live";

import { childPath, dbFetch, errorMessage, isObject, parseValue, restUrl } from "./db";
import styles from "./database.module.css";

function JsonField({
  label,
  value,
  onChange,
  error,
  rows = 3,
  testId,
}: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  error: string | null;
  rows?: number;
  testId: string;
}) {
  const id = useId();
  return (
    <label className={styles.field}>
      {label}
      <textarea
        className="mono"
        value={value}
        rows={rows}
        spellCheck={false}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `${id}-err` : undefined}
        onChange={(e) => onChange(e.target.value)}
        data-testid={testId}
      />
      {error ? (
        <span id={`${id}-err`} className={styles.fieldError} role="alert" data-testid={`${testId}-error`}>
          {error}
        </span>
      ) : null}
    </label>
  );
}

export function Inspector({
  path,
  value,
  known,
  onWritten,
  onDeleted,
}: {
  path: string;
  /** the value at path (undefined: not loaded, e.g. a location too big to stream) */
  value: Json | undefined;
  known: boolean;
  onWritten?: () => void;
  onDeleted: (path: string) => void;
}) {
  const container = isObject(value) || Array.isArray(value);
  const current = known && !container && value !== undefined ? JSON.stringify(value) : "";
  // Mounted anew for each selection (the page keys it by path), so the field starts with the
  // selection's value at once: refilled by an effect after a new selection, text typed in the
  // frame before the effect ran was overwritten, and its save never went out (a CI run).
  const [text, setText] = useState(current);
  const [textError, setTextError] = useState<string | null>(null);
  const [saveError, setSaveError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);

  const [key, setKey] = useState("");
  const [childText, setChildText] = useState("");
  const [childError, setChildError] = useState<string | null>(null);
  const [addError, setAddError] = useState<string | null>(null);
  const [added, setAdded] = useState<string | null>(null);

  const [confirming, setConfirming] = useState(false);
  const [deleteError, setDeleteError] = useState<string | null>(null);

  // a new value arriving live refills the field while it is untouched (a value being typed is
  // never overwritten by a live change: only an untouched field follows)
  const [base, setBase] = useState<string | null>(current);
  const untouched = useRef(true);
  const applied = useRef(current);
  useEffect(() => {
    if (current === applied.current) return;
    applied.current = current;
    if (!untouched.current) return;
    setText(current);
    setBase(current);
    setTextError(null);
  }, [current]);

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    setSaveError(null);
    const parsed = parseValue(text);
    if (!parsed.ok) {
      setTextError(parsed.error);
      return;
    }
    setTextError(null);
    setSaving(true);
    try {
      const sent = JSON.stringify(parsed.value);
      await dbFetch("PUT", restUrl(path), sent);
      untouched.current = true; // follow the live value again
      setText(sent);
      setBase(sent);
      setSaved(true);
      onWritten?.();
    } catch (err) {
      setSaveError(errorMessage(err));
    } finally {
      setSaving(false);
    }
  };

  const add = async (push: boolean) => {
    setAddError(null);
    setAdded(null);
    const parsed = parseValue(childText);
    if (!parsed.ok) {
      setChildError(parsed.error);
      return;
    }
    setChildError(null);
    if (!push && !key.trim()) {
      setAddError("Type a key for the new child, or use Push to have the database generate one.");
      return;
    }
    try {
      if (push) {
        const { value: answer } = await dbFetch("POST", restUrl(path), JSON.stringify(parsed.value));
        const name = (answer as { name?: string } | null)?.name ?? "";
        setAdded(childPath(path, name));
      } else {
        await dbFetch("PUT", restUrl(childPath(path, key.trim())), JSON.stringify(parsed.value));
        setAdded(childPath(path, key.trim()));
        setKey("");
      }
      setChildText("");
      onWritten?.();
    } catch (err) {
      setAddError(errorMessage(err));
    }
  };

  const remove = async () => {
    setDeleteError(null);
    try {
      await dbFetch("DELETE", restUrl(path));
      setConfirming(false);
      onDeleted(path);
      onWritten?.();
    } catch (err) {
      setDeleteError(errorMessage(err));
    }
  };

  const canEdit = known && !container;
  const dirty = base !== null && text !== base;

  return (
    <section className={`panel ${styles.inspector}`} aria-label="Selected location" data-testid="db-inspector">
      <h2 className={styles.inspectorTitle}>
        <code data-testid="db-selected">{path}</code>
      </h2>
      {!known ? <p className="muted">This location is not streamed here; open it to see and edit its value.</p> : null}
      {known && value === null ? <p className="muted">Nothing is stored here yet: set a value or add a child.</p> : null}

      {canEdit ? (
        <form onSubmit={save} className={styles.form} aria-label="Edit value">
          <JsonField
            label="Value (JSON)"
            value={text}
            onChange={(v) => {
              setText(v);
              setSaved(false);
              untouched.current = v === base;
            }} error={textError} testId="db-edit-value" rows={Math.min(8, Math.max(2, text.split("\n").length))} />
          <div className="row">
            <button type="submit" className="primary" disabled={saving || !dirty}>
              {saving ? "Saving…" : "Save value"}
            </button>
            {dirty ? (
              <button
                type="button"
                onClick={() => {
                  untouched.current = true;
                  setText(base ?? "");
                }}
              >
                Revert
              </button>
            ) : null}
            {saved && !dirty ? <span className="ok">Saved.</span> : null}
          </div>
          <ErrorLine error={saveError} testId="db-save-error" />
        </form>
      ) : null}

      {known && (container || value === null) ? (
        <form
          className={styles.form}
          aria-label="Add a child"
          onSubmit={(e) => {
            e.preventDefault();
            void add(false);
          }}
        >
          <h3 className={styles.formTitle}>Add a child</h3>
          <label className={styles.field}>
            Key
            <input value={key} onChange={(e) => setKey(e.target.value)} placeholder="e.g. settings" data-testid="db-child-key" />
          </label>
          <JsonField label="Child value (JSON)" value={childText} onChange={setChildText} error={childError} testId="db-child-value" />
          <div className="row">
            <button type="submit" className="primary">
              Add child
            </button>
            <button type="button" onClick={() => void add(true)} title="POST: the database generates a chronological key">
              Push (generated key)
            </button>
            {added ? (
              <span className="ok" data-testid="db-added">
                Added <code>{added}</code>
              </span>
            ) : null}
          </div>
          <ErrorLine error={addError} testId="db-add-error" />
        </form>
      ) : null}

      {known && value !== null && value !== undefined ? (
        <div className={styles.form}>
          {confirming ? (
            <div className="row" role="group" aria-label="Confirm delete">
              <span>
                Delete <code>{path}</code>
                {container ? " and everything under it" : ""}?
              </span>
              <button type="button" className="danger" onClick={() => void remove()} autoFocus>
                Yes, delete
              </button>
              <button type="button" onClick={() => setConfirming(false)}>
                Cancel
              </button>
            </div>
          ) : (
            <div className="row">
              <button type="button" className="danger" onClick={() => setConfirming(true)}>
                Delete…
              </button>
              {segments(path).length === 0 ? <span className="muted">(deletes the whole database you can write)</span> : null}
            </div>
          )}
          <ErrorLine error={deleteError} testId="db-delete-error" />
        </div>
      ) : null}
    </section>
  );
}
