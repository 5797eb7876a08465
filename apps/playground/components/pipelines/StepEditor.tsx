/** One step of the builder: its inputs (each with its own error mark), move and remove. */
"use client";

import { ErrorLine } from "@/components/ui";

import { MarkedInput } from "./MarkedInput";
import { JOIN_HOWS, KINDS, type FieldError, type JoinHow, type Step } from "./model";
import styles from "./pipelines.module.css";

export interface StepEditorProps {
  step: Step;
  index: number;
  count: number;
  datasets: string[];
  /** Errors of this step by input key (`expr`, `name`, `agg.1`, `keys`, `on`, `step`). */
  errors: Record<string, FieldError>;
  /** What the step still needs, when it is incomplete. */
  needs: string | null;
  columnsList: string;
  onChange: (step: Step) => void;
  onMove: (delta: -1 | 1) => void;
  onRemove: () => void;
}

export function StepEditor({ step, index, count, datasets, errors, needs, columnsList, onChange, onMove, onRemove }: StepEditorProps) {
  const n = index + 1;
  const title = KINDS.find((k) => k.kind === step.kind)?.label ?? step.kind;
  const invalid = Object.keys(errors).length > 0;
  return (
    <li className={styles.step} data-invalid={invalid} data-testid="step" aria-label={`Step ${n}: ${title}`}>
      <div className={styles.stepHead}>
        <h3>
          {n}. {title}
        </h3>
        <button type="button" aria-label={`Move step ${n} up`} disabled={index === 0} onClick={() => onMove(-1)}>
          ↑
        </button>
        <button type="button" aria-label={`Move step ${n} down`} disabled={index === count - 1} onClick={() => onMove(1)}>
          ↓
        </button>
        <button type="button" className="danger" aria-label={`Remove step ${n}`} onClick={onRemove}>
          Remove
        </button>
      </div>
      <div className={styles.stepBody}>{body(step, datasets, errors, columnsList, onChange)}</div>
      {needs ? <span className={styles.hint}>Needs {needs}.</span> : null}
      <ErrorLine error={errors.step?.message} testId="step-error" />
    </li>
  );
}

/** The keys of a step whose value is one line of text. */
type TextKey<S> = { [K in keyof S]: S[K] extends string ? K : never }[keyof S] & string;

function body(
  step: Step,
  datasets: string[],
  errors: Record<string, FieldError>,
  columnsList: string,
  onChange: (s: Step) => void,
) {
  /** The value, error mark and change handler of the text input `key` of `s`. */
  function field<S extends Step, K extends TextKey<S>>(s: S, key: K) {
    return { value: s[key] as string, error: errors[key], onChange: (v: string) => onChange({ ...s, [key]: v }) };
  }
  switch (step.kind) {
    case "filter":
      return (
        <MarkedInput
          label="Condition"
          placeholder="amount > 100 AND country = 'NL'"
          {...field(step, "expr")}
        />
      );
    case "compute":
      return (
        <>
          <MarkedInput
            className={styles.narrow}
            label="Column name"
            placeholder="total"
            {...field(step, "name")}
          />
          <MarkedInput
            label="Expression"
            placeholder="price * quantity"
            {...field(step, "expr")}
          />
        </>
      );
    case "group_by":
      return (
        <>
          <MarkedInput
            label="Group by (columns, comma-separated; empty: one row)"
            placeholder="country, product"
            list={columnsList}
            {...field(step, "keys")}
          />
          <div className={styles.aggs}>
            {step.aggs.map((a, i) => (
              <div className={styles.aggRow} key={i}>
                <MarkedInput
                  label={`Aggregate ${i + 1}`}
                  placeholder="sum(amount) AS total"
                  value={a}
                  error={errors[`agg.${i}`]}
                  onChange={(v) => onChange({ ...step, aggs: step.aggs.map((x, j) => (j === i ? v : x)) })}
                />
                <button
                  type="button"
                  aria-label={`Remove aggregate ${i + 1}`}
                  disabled={step.aggs.length === 1}
                  onClick={() => onChange({ ...step, aggs: step.aggs.filter((_, j) => j !== i) })}
                >
                  ×
                </button>
              </div>
            ))}
            <div>
              <button type="button" onClick={() => onChange({ ...step, aggs: [...step.aggs, ""] })}>
                Add aggregate
              </button>
            </div>
          </div>
        </>
      );
    case "join":
      return (
        <>
          <label>
            Join with dataset
            <select value={step.dataset} onChange={(e) => onChange({ ...step, dataset: e.target.value })}>
              <option value="">Choose…</option>
              {datasets.map((d) => (
                <option key={d} value={d}>
                  {d}
                </option>
              ))}
            </select>
          </label>
          <MarkedInput
            label="On (key columns both sides share)"
            placeholder="customer_id"
            list={columnsList}
            {...field(step, "on")}
          />
          <label className={styles.narrow}>
            How
            <select value={step.how} onChange={(e) => onChange({ ...step, how: e.target.value as JoinHow })}>
              {JOIN_HOWS.map((h) => (
                <option key={h} value={h}>
                  {h}
                </option>
              ))}
            </select>
          </label>
        </>
      );
    case "sort":
      return (
        <MarkedInput
          label="Sort by (comma-separated; add DESC for descending)"
          placeholder="total DESC, country"
          list={columnsList}
          {...field(step, "keys")}
        />
      );
    case "top_k":
      return (
        <>
          <MarkedInput
            className={styles.narrow}
            label="Rows"
            code={false}
            {...field(step, "n")}
          />
          <MarkedInput
            label="Ranked by (comma-separated; DESC for the largest)"
            placeholder="total DESC"
            list={columnsList}
            {...field(step, "keys")}
          />
          <MarkedInput
            label="Per group of (optional)"
            placeholder="country"
            list={columnsList}
            {...field(step, "per")}
          />
        </>
      );
    case "limit":
      return (
        <MarkedInput
          className={styles.narrow}
          label="Rows"
          code={false}
          {...field(step, "n")}
        />
      );
  }
}
