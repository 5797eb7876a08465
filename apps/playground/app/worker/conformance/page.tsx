"use client";

/**
 * Worker conformance: does this browser evaluate expression plans exactly as the platform's
 * Python evaluator does? It runs shared test vectors (platform_core.expr.vectors: expression
 * JSON, input columns, the Python result or error kind) through the TypeScript interpreter
 * (lib/expr) over Arrow JS columns and reports pass/fail counts and the first mismatches.
 *
 * Vectors come from a JSON file the user picks (`scripts/expr_vectors.py` writes one), or from
 * a test, which hands them over as data: `window.exprConformance.run(vectors)`. Nothing here
 * turns text into code; the page needs no `unsafe-eval`. A future /worker page runs the same
 * self-check before lending the tab.
 */
import { useEffect, useState } from "react";

import { ErrorLine, PageTitle } from "@/components/ui";
import { runVectors, type Report, type TestVector } from "@/lib/expr/conformance";
import { UNSUPPORTED } from "@/lib/expr/unsupported";

declare global {
  interface Window {
    exprConformance?: {
      run: (vectors: TestVector[], keep?: number) => Report;
      unsupported: typeof UNSUPPORTED;
    };
  }
}

export default function ConformancePage() {
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    window.exprConformance = {
      run: (vectors, keep = 20) => {
        const r = runVectors(vectors, keep);
        setReport(r);
        return r;
      },
      unsupported: UNSUPPORTED,
    };
    document.body.dataset.exprConformance = "ready";
    return () => {
      delete window.exprConformance;
      delete document.body.dataset.exprConformance;
    };
  }, []);

  async function load(file: File) {
    setError(null);
    setBusy(true);
    try {
      const data: unknown = JSON.parse(await file.text());
      const vectors = Array.isArray(data) ? data : (data as { vectors?: unknown }).vectors;
      if (!Array.isArray(vectors)) throw new Error("expected a JSON list of vectors (or {\"vectors\": [...]})");
      setReport(runVectors(vectors as TestVector[]));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }

  const types = Object.keys(UNSUPPORTED.types).filter((t) => t !== "*");
  return (
    <>
      <PageTitle title="Worker conformance" />
      <p className="muted">
        Checks that this browser evaluates expression plans exactly as the platform does: each test vector is an
        expression, input columns and the result the Python evaluator gave. Write a file of vectors with{" "}
        <code>.venv/bin/python scripts/expr_vectors.py --out vectors.json</code> and choose it here.
      </p>
      <p>
        <label>
          Test vectors (JSON){" "}
          <input
            type="file"
            accept="application/json,.json"
            disabled={busy}
            onChange={(e) => {
              const file = e.target.files?.[0];
              if (file) void load(file);
            }}
          />
        </label>
      </p>
      <ErrorLine error={error} testId="conformance-error" />
      <section aria-label="Result" role="status" aria-live="polite">
        {busy ? (
          <p>Running…</p>
        ) : report === null ? (
          <p className="muted">No vectors run yet.</p>
        ) : (
          <>
            <p data-testid="conformance-summary" className={report.failed ? "warn" : undefined}>
              <strong data-testid="conformance-passed">{report.passed}</strong> of{" "}
              <span data-testid="conformance-total">{report.total}</span> passed,{" "}
              <strong data-testid="conformance-failed">{report.failed}</strong> failed
            </p>
            {report.mismatches.length > 0 && (
              <table data-testid="conformance-mismatches">
                <caption>First mismatches</caption>
                <thead>
                  <tr>
                    <th scope="col">vector</th>
                    <th scope="col">what differs</th>
                  </tr>
                </thead>
                <tbody>
                  {report.mismatches.map((m) => (
                    <tr key={m.id}>
                      <td>{m.id}</td>
                      <td>{m.reason}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </>
        )}
      </section>
      <h2>Not evaluated in a browser</h2>
      <p className="muted">
        Tasks using these are never sent to a browser (the interpreter refuses them rather than compute them
        differently): types {types.join(", ")}; aggregates (executed by emsqrt and lake).
      </p>
    </>
  );
}
