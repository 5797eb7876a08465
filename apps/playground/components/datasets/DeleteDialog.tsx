/** Delete a dataset after the user types its name: a real modal <dialog> (focus stays in it, Esc closes). */
"use client";

import { useEffect, useId, useRef, useState, type FormEvent } from "react";

import styles from "@/app/datasets/datasets.module.css";
import { ErrorLine } from "@/components/ui";
import { api, errorText } from "@/lib/api";

export function DeleteDialog({ name, open, onClose, onDeleted }: { name: string; open: boolean; onClose: () => void; onDeleted: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const id = useId();

  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      setTyped("");
      setError(null);
      d.showModal();
    } else if (!open && d.open) d.close();
  }, [open]);

  async function submit(ev: FormEvent) {
    ev.preventDefault();
    if (typed !== name) return;
    setBusy(true);
    try {
      await api(`/api/lake/datasets/${encodeURIComponent(name)}`, { method: "DELETE" });
      onDeleted();
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }

  return (
    <dialog ref={ref} className={styles.dialog} aria-labelledby={`${id}-t`} onClose={onClose} data-testid="delete-dialog">
      <form onSubmit={submit}>
        <h2 id={`${id}-t`}>Delete {name}?</h2>
        <p>
          The dataset <strong className={styles.name}>{name}</strong> and all its versions leave the catalog now; queries no longer see it. Its
          chunks are collected after the retention period.
        </p>
        <label>
          Type {name} to confirm
          <input value={typed} onChange={(ev) => setTyped(ev.target.value)} autoComplete="off" spellCheck={false} autoFocus />
        </label>
        <ErrorLine error={error} testId="delete-error" />
        <div className="row">
          <button type="submit" className="danger" disabled={typed !== name || busy}>
            {busy ? "Deleting…" : `Delete ${name}`}
          </button>
          <button type="button" onClick={onClose}>
            Keep it
          </button>
        </div>
      </form>
    </dialog>
  );
}
