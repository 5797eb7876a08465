"use client";

/**
 * The pipeline builder: a source dataset and steps, checked by the server as you type
 * (POST /api/jobs/validate, debounced; a wrong expression is marked where it is wrong), the
 * pipeline's JSON and Python forms and its plan, then Submit: the job's live progress from
 * Elkyn, Cancel, and its rows when it succeeds.
 */

import Link from "next/link";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";

import { JobProgress } from "@/components/jobs/JobProgress";
import { JobResult, RESULT_ROWS } from "@/components/jobs/JobResult";
import { useJob } from "@/components/jobs/record";
import { type FieldError, fieldOf, KINDS, type Kind, type Located, missing, newStep, pipelineJson, type Step } from "@/components/pipelines/model";
import styles from "@/components/pipelines/pipelines.module.css";
import { StepEditor } from "@/components/pipelines/StepEditor";
import { Tabs, tabPanelProps } from "@/components/Tabs";
import { Busy, Empty, ErrorLine, PageTitle } from "@/components/ui";
import { api, ApiError, errorText } from "@/lib/api";
import { count } from "@/lib/format";

interface Dataset {
  name: string;
  version: number;
  rows: number;
  columns: { name: string; type: string }[];
}

interface Checked {
  text: string;
  python: string;
  logical: string;
  plan: string;
  schema: { name: string; type: string }[];
}

type Check =
  | { state: "idle" }
  | { state: "incomplete"; step: number; needs: string }
  | { state: "checking" }
  | { state: "ok"; result: Checked }
  | { state: "error"; message: string; step: number | null; key: string | null; error: FieldError | null };

const DEBOUNCE_MS = 300;
const TABS = [
  { id: "json", label: "JSON" },
  { id: "python", label: "Python" },
  { id: "plan", label: "Plan" },
  { id: "schema", label: "Output columns" },
] as const;

export default function Page() {
  const [datasets, setDatasets] = useState<Dataset[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [source, setSource] = useState("");
  const [steps, setSteps] = useState<Step[]>([]);
  const [check, setCheck] = useState<Check>({ state: "idle" });
  const [last, setLast] = useState<Checked | null>(null);
  const [tab, setTab] = useState<(typeof TABS)[number]["id"]>("json");
  const [addKind, setAddKind] = useState<Kind>("filter");
  const [jobId, setJobId] = useState<string | null>(null);
  const [submitting, setSubmitting] = useState(false);
  const [submitError, setSubmitError] = useState<string | null>(null);

  useEffect(() => {
    api<Dataset[]>("/api/lake/datasets")
      .then((d) => {
        setDatasets(d);
        if (d.length) setSource((s) => s || d[0].name);
      })
      .catch((e) => setLoadError(errorText(e)));
  }, []);

  const columns = useMemo(() => datasets?.find((d) => d.name === source)?.columns ?? [], [datasets, source]);

  // Check as the user types: wait for a pause, then ask the server; a newer edit aborts the
  // request in flight, so answers never arrive out of order.
  const inflight = useRef<AbortController | null>(null);
  useEffect(() => {
    inflight.current?.abort();
    if (!source) {
      setCheck({ state: "idle" });
      return;
    }
    const gap = steps.findIndex((s) => missing(s) !== null);
    if (gap >= 0) {
      setCheck({ state: "incomplete", step: gap, needs: missing(steps[gap])! });
      return;
    }
    setCheck({ state: "checking" });
    const ctl = new AbortController();
    inflight.current = ctl;
    const timer = window.setTimeout(async () => {
      try {
        const result = await api<Checked>("/api/jobs/validate", {
          method: "POST",
          body: { pipeline: pipelineJson(source, steps) },
          signal: ctl.signal,
        });
        if (ctl.signal.aborted) return;
        setCheck({ state: "ok", result });
        setLast(result);
      } catch (e) {
        if (ctl.signal.aborted || (e as Error).name === "AbortError") return;
        const message = errorText(e);
        if (e instanceof ApiError && e.status === 400) {
          const d = e.details as Located;
          const at = typeof d.step === "number" && d.step < steps.length ? d.step : null;
          if (at !== null) {
            const { key, error } = fieldOf(steps[at], d, message);
            setCheck({ state: "error", message, step: at, key, error });
            return;
          }
        }
        setCheck({ state: "error", message, step: null, key: null, error: null });
      }
    }, DEBOUNCE_MS);
    return () => {
      window.clearTimeout(timer);
      ctl.abort();
    };
  }, [source, steps]);

  const update = useCallback((i: number, s: Step) => setSteps((all) => all.map((x, j) => (j === i ? s : x))), []);
  const move = useCallback(
    (i: number, delta: -1 | 1) =>
      setSteps((all) => {
        const j = i + delta;
        if (j < 0 || j >= all.length) return all;
        const next = [...all];
        [next[i], next[j]] = [next[j], next[i]];
        return next;
      }),
    [],
  );

  async function submit() {
    setSubmitting(true);
    setSubmitError(null);
    try {
      const job = await api<{ id: string }>("/api/jobs", { method: "POST", body: { pipeline: pipelineJson(source, steps) } });
      setJobId(job.id);
    } catch (e) {
      setSubmitError(errorText(e));
    } finally {
      setSubmitting(false);
    }
  }

  const shown = check.state === "ok" ? check.result : last;
  const errorsOf = (i: number): Record<string, FieldError> =>
    check.state === "error" && check.step === i && check.key && check.error ? { [check.key]: check.error } : {};

  if (loadError) {
    return (
      <>
        <PageTitle title="Pipelines" />
        <ErrorLine error={loadError} />
      </>
    );
  }
  if (datasets === null) {
    return (
      <>
        <PageTitle title="Pipelines" />
        <Busy label="Loading datasets" />
      </>
    );
  }
  if (!datasets.length) {
    return (
      <>
        <PageTitle title="Pipelines" />
        <Empty title="No datasets to build a pipeline over">
          Upload a file on the <Link href="/datasets/">Datasets</Link> page (or run <code>platform demo-data --upload</code>), then come back.
        </Empty>
      </>
    );
  }

  return (
    <>
      <PageTitle title="Pipelines">
        <Link href="/jobs/">All jobs</Link>
      </PageTitle>
      <datalist id="pipeline-columns">
        {columns.map((c) => (
          <option key={c.name} value={c.name} />
        ))}
      </datalist>
      <div className={styles.layout}>
        <div>
          <section className="panel" aria-label="Source">
            <div className={styles.source}>
              <label>
                Source dataset
                <select value={source} onChange={(e) => setSource(e.target.value)}>
                  {datasets.map((d) => (
                    <option key={d.name} value={d.name}>
                      {d.name} (v{d.version}, {count(d.rows)} rows)
                    </option>
                  ))}
                </select>
              </label>
            </div>
            <div className={styles.columns} aria-label="Columns of the source" role="list">
              {columns.map((c) => (
                <span className={styles.column} key={c.name} role="listitem">
                  {c.name}
                  <small>{c.type}</small>
                </span>
              ))}
            </div>
          </section>

          <section className="panel" aria-label="Steps">
            {steps.length ? (
              <ol className={styles.steps}>
                {steps.map((s, i) => (
                  <StepEditor
                    key={s.id}
                    step={s}
                    index={i}
                    count={steps.length}
                    datasets={datasets.map((d) => d.name)}
                    errors={errorsOf(i)}
                    needs={missing(s)}
                    columnsList="pipeline-columns"
                    onChange={(x) => update(i, x)}
                    onMove={(d) => move(i, d)}
                    onRemove={() => setSteps((all) => all.filter((_, j) => j !== i))}
                  />
                ))}
              </ol>
            ) : (
              <Empty title="No steps yet: the pipeline reads the whole dataset">
                Add a filter, a computed column, a group-by, a join, a sort or a limit below.
              </Empty>
            )}
            <div className={styles.add}>
              <label htmlFor="add-step-kind">Step type</label>
              <select id="add-step-kind" value={addKind} onChange={(e) => setAddKind(e.target.value as Kind)}>
                  {KINDS.map((k) => (
                    <option key={k.kind} value={k.kind}>
                      {k.label}
                    </option>
                ))}
              </select>
              <button type="button" onClick={() => setSteps((all) => [...all, newStep(addKind)])}>
                Add step
              </button>
            </div>
          </section>
        </div>

        <div>
          <section className="panel" aria-label="Pipeline">
            <div className={styles.status} aria-live="polite" data-testid="check-status">
              {check.state === "checking" ? <Busy label="Checking" /> : null}
              {check.state === "ok" ? <span className="ok">Valid: {check.result.schema.length} output columns.</span> : null}
              {check.state === "incomplete" ? (
                <span className="muted">
                  Step {check.step + 1} needs {check.needs}.
                </span>
              ) : null}
              {check.state === "error" && check.step !== null ? (
                <span className="error" data-testid="check-error">
                  Step {check.step + 1}: {check.message}
                </span>
              ) : null}
            </div>
            {check.state === "error" && check.step === null ? <ErrorLine error={check.message} testId="check-error" /> : null}
            <Tabs label="Views of the pipeline" items={TABS} current={tab} onSelect={setTab} />
            <div {...tabPanelProps(tab)}>
              {shown ? (
                tab === "schema" ? (
                  <table className="data">
                    <thead>
                      <tr>
                        <th>Column</th>
                        <th>Type</th>
                      </tr>
                    </thead>
                    <tbody>
                      {shown.schema.map((c) => (
                        <tr key={c.name}>
                          <td>{c.name}</td>
                          <td className="mono">{c.type}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                ) : (
                  <pre className={styles.pre} data-testid={`view-${tab}`}>
                    {tab === "json" ? shown.text : tab === "python" ? shown.python : `${shown.plan}\n\nlogical plan:\n${shown.logical}`}
                  </pre>
                )
              ) : (
                <p className="muted">The pipeline appears here once it checks out.</p>
              )}
            </div>
            <div className={styles.submitRow}>
              <button type="button" className="primary" onClick={submit} disabled={check.state !== "ok" || submitting}>
                {submitting ? "Submitting…" : "Submit job"}
              </button>
              {check.state !== "ok" && check.state !== "checking" ? <span className="muted">Fix the pipeline to submit it.</span> : null}
            </div>
            <ErrorLine error={submitError} testId="submit-error" />
          </section>
        </div>
      </div>
      {jobId ? <SubmittedJob id={jobId} /> : null}
    </>
  );
}

function SubmittedJob({ id }: { id: string }) {
  const { job, error, setJob } = useJob(id);
  return (
    <section className="panel" aria-label="Submitted job" data-testid="submitted-job">
      <h2 style={{ marginTop: 0 }}>
        Job <Link href={`/jobs/view/?id=${encodeURIComponent(id)}`}>{id}</Link>
      </h2>
      <ErrorLine error={error} />
      {job ? <JobProgress job={job} onChange={setJob} /> : <Busy label="Waiting for the job's record" />}
      {job?.state === "succeeded" ? (
        <>
          <h2>Result</h2>
          <JobResult id={id} rows={job.result?.rows} />
        </>
      ) : null}
      {job?.state !== "succeeded" ? <p className="muted">When it succeeds, its rows show here (in pages of {count(RESULT_ROWS)}).</p> : null}
    </section>
  );
}
