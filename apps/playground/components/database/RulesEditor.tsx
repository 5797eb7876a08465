/**
 * The rules at /.settings/rules.json (admin only): load, edit in CodeMirror (JSON, with the
 * `//` comments Elkyn accepts), save. A refused document is marked where the server says the
 * problem is (details.line/column: JSON syntax errors and rule errors alike) with a lint
 * diagnostic in the editor, and the server's words under it.
 *
 * Reserved subtrees (x-elkyn-reserved, e.g. `jobs`): the platform owns their rules; whatever
 * the document says there is replaced when it is saved, so the editor says so up front.
 */
"use client";

import { json } from "@codemirror/lang-json";
import { linter, lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import CodeMirror, { EditorView, type ReactCodeMirrorRef } from "@uiw/react-codemirror";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";

import { Busy, ErrorLine } from "@/components/ui";

import { DbError, dbFetch, errorMessage } from "./db";
import styles from "./database.module.css";

const RULES = "/db/.settings/rules.json";
// stable props: @uiw/react-codemirror reconfigures the editor whenever these change identity
const BASIC_SETUP = { lineNumbers: true, foldGutter: true };

export function RulesEditor() {
  const [text, setText] = useState("");
  const [loadedText, setLoadedText] = useState<string | null>(null);
  const [reserved, setReserved] = useState<string[]>([]);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [saveError, setSaveError] = useState<string | null>(null);
  const [position, setPosition] = useState<{ line: number; column: number } | null>(null);
  const [saving, setSaving] = useState(false);
  const [saved, setSaved] = useState(false);
  const editor = useRef<ReactCodeMirrorRef>(null);
  const extensions = useMemo(
    // linter(null): the lint state with no source of its own; the server's error is put in it
    () => [json(), linter(null), lintGutter(), EditorView.contentAttributes.of({ "aria-label": "Rules (JSON)" })],
    [],
  );

  const onChange = useCallback((v: string) => {
    setText(v);
    setSaved(false);
  }, []);

  const load = useCallback(async () => {
    setLoadError(null);
    try {
      const { value, response } = await dbFetch("GET", RULES);
      const body = JSON.stringify(value, null, 2);
      setText(body);
      setLoadedText(body);
      const header = response.headers.get("x-elkyn-reserved") ?? "";
      setReserved(header.split(",").filter(Boolean));
    } catch (e) {
      setLoadError(errorMessage(e));
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  const mark = (diagnostics: Diagnostic[]) => {
    const view = editor.current?.view;
    if (view) view.dispatch(setDiagnostics(view.state, diagnostics));
  };

  const save = async () => {
    setSaveError(null);
    setSaved(false);
    setPosition(null);
    mark([]);
    setSaving(true);
    try {
      await dbFetch("PUT", RULES, text);
      setSaved(true);
      await load(); // what is in effect now (reserved subtrees merged in)
    } catch (e) {
      setSaveError(errorMessage(e));
      const d = e instanceof DbError ? e.details : {};
      const line = typeof d.line === "number" ? d.line : null;
      const column = typeof d.column === "number" ? d.column : null;
      const view = editor.current?.view;
      if (line !== null && column !== null && view) {
        const doc = view.state.doc;
        const l = doc.line(Math.min(Math.max(1, line), doc.lines));
        const from = Math.min(l.from + Math.max(0, column - 1), l.to);
        const to = Math.min(from + 1, doc.length);
        mark([{ from, to: Math.max(to, from), severity: "error", message: errorMessage(e) }]);
        view.dispatch({ selection: { anchor: from }, scrollIntoView: true });
        setPosition({ line, column });
      }
    } finally {
      setSaving(false);
    }
  };

  if (loadError) return <ErrorLine error={loadError} testId="rules-load-error" />;
  if (loadedText === null) return <Busy label="Loading the rules" />;
  const dirty = text !== loadedText;

  return (
    <section className="panel" aria-label="Rules">
      <p className={`muted ${styles.rulesIntro}`}>
        Firebase-style rules (<code>.read</code>, <code>.write</code>, <code>.validate</code>, <code>.indexOn</code>;{" "}
        <code>//</code> comments allowed). Admins bypass them; they decide what other users may read and write.
      </p>
      {reserved.length ? (
        <p className="warn" data-testid="rules-reserved">
          The platform owns the rules of {reserved.map((k, i) => (
            <span key={k}>
              {i ? ", " : ""}
              <code>/{k}</code>
            </span>
          ))}
          : what this document says there is replaced by the platform&apos;s rules when you save, and no rule above
          reaches into them.
        </p>
      ) : null}
      <div className={styles.rules} data-testid="rules-editor">
        <CodeMirror
          ref={editor}
          value={text}
          onChange={onChange}
          extensions={extensions}
          basicSetup={BASIC_SETUP}
          minHeight="240px"
          maxHeight="60vh"
        />
      </div>
      <div className="row">
        <button type="button" className="primary" onClick={() => void save()} disabled={saving || !dirty}>
          {saving ? "Saving…" : "Save rules"}
        </button>
        <button type="button" onClick={() => void load()} disabled={saving}>
          Reload
        </button>
        {saved && !dirty ? <span className="ok">Rules saved and in effect.</span> : null}
      </div>
      {saveError ? (
        <div data-testid="rules-error">
          <ErrorLine error={position ? `Line ${position.line}, column ${position.column}: ${saveError}` : saveError} testId="rules-save-error" />
        </div>
      ) : null}
    </section>
  );
}
