/**
 * The SQL editor: CodeMirror 6 with the lake's datasets and columns as the completion schema
 * (`sales.` offers sales' columns), Ctrl/Cmd-Enter to run, and the server's error position
 * marked in the text. Nothing here evaluates code, so it runs under the page's CSP.
 */
"use client";

import { PostgreSQL, sql, type SQLNamespace } from "@codemirror/lang-sql";
import CodeMirror, {
  Decoration,
  EditorView,
  Prec,
  StateEffect,
  StateField,
  keymap,
  type DecorationSet,
  type ReactCodeMirrorRef,
} from "@uiw/react-codemirror";
import { useEffect, useMemo, useRef } from "react";

export interface ErrorSpot {
  line: number;
  column: number;
}

const setError = StateEffect.define<{ from: number; to: number } | null>();
const errorMark = Decoration.mark({ class: "cm-sql-error", attributes: { "data-testid": "sql-error-mark" } });

const errorField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    let next = tr.docChanged ? Decoration.none : deco;
    for (const e of tr.effects) {
      if (e.is(setError)) next = e.value ? Decoration.set([errorMark.range(e.value.from, e.value.to)]) : Decoration.none;
    }
    return next;
  },
  provide: (f) => EditorView.decorations.from(f),
});

const theme = EditorView.theme({
  "&": { fontSize: "14px", border: "1px solid var(--line)", borderRadius: "6px" },
  "&.cm-focused": { outline: "2px solid var(--accent)", outlineOffset: "1px" },
  ".cm-scroller": { fontFamily: "var(--mono)" },
  ".cm-sql-error": { textDecoration: "underline wavy var(--danger)", backgroundColor: "#fee4e2" },
});

/** The span to mark for a 1-based line and column: the word around it, or one character. */
function spot(view: EditorView, at: ErrorSpot): { from: number; to: number } {
  const doc = view.state.doc;
  const line = doc.line(Math.min(Math.max(at.line, 1), doc.lines));
  const pos = line.from + Math.min(Math.max(at.column - 1, 0), line.length);
  const word = (p: number) => /[\w$]/.test(doc.sliceString(p, p + 1));
  let from = pos;
  let to = pos;
  while (from > line.from && word(from - 1) && word(pos)) from--;
  while (to < line.to && word(to)) to++;
  if (to > from) return { from, to };
  return pos < line.to ? { from: pos, to: pos + 1 } : { from: Math.max(line.from, pos - 1), to: pos };
}

export interface SqlEditorProps {
  value: string;
  onChange: (value: string) => void;
  onRun: () => void;
  /** Dataset name → its column names. */
  schema: Record<string, string[]>;
  error: ErrorSpot | null;
}

export function SqlEditor({ value, onChange, onRun, schema, error }: SqlEditorProps) {
  const ref = useRef<ReactCodeMirrorRef>(null);
  const run = useRef(onRun);
  run.current = onRun;

  const extensions = useMemo(
    () => [
      sql({ dialect: PostgreSQL, schema: schema as SQLNamespace, upperCaseKeywords: true }),
      Prec.highest(
        keymap.of([
          {
            key: "Mod-Enter",
            run: () => {
              run.current();
              return true;
            },
          },
        ]),
      ),
      errorField,
      theme,
      EditorView.lineWrapping,
      EditorView.contentAttributes.of({ "aria-label": "SQL query", "aria-describedby": "sql-help" }),
    ],
    [schema],
  );

  useEffect(() => {
    const view = ref.current?.view;
    if (!view) return;
    const range = error ? spot(view, error) : null;
    view.dispatch({
      effects: [setError.of(range), ...(range ? [EditorView.scrollIntoView(range.from, { y: "center" })] : [])],
    });
  }, [error]);

  return (
    <CodeMirror
      ref={ref}
      value={value}
      onChange={onChange}
      extensions={extensions}
      minHeight="140px"
      maxHeight="360px"
      basicSetup={{ foldGutter: false, searchKeymap: true }}
      indentWithTab={false}
    />
  );
}
