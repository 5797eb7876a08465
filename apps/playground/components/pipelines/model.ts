/**
 * The builder's steps and their translation into Elytra's JSON form (packages/elytra spec.py:
 * `{"source": {"dataset": ...}, "steps": [...]}`, what POST /api/jobs takes), one builder
 * step to one JSON step so the server's `details.step` names the builder's step too.
 */

export type Step =
  | { id: number; kind: "filter"; expr: string }
  | { id: number; kind: "compute"; name: string; expr: string }
  | { id: number; kind: "group_by"; keys: string; aggs: string[] }
  | { id: number; kind: "join"; dataset: string; on: string; how: JoinHow }
  | { id: number; kind: "sort"; keys: string }
  | { id: number; kind: "limit"; n: string }
  | { id: number; kind: "top_k"; n: string; keys: string; per: string };

export type Kind = Step["kind"];
export const JOIN_HOWS = ["inner", "left", "right", "full", "semi", "anti"] as const;
export type JoinHow = (typeof JOIN_HOWS)[number];

export const KINDS: { kind: Kind; label: string }[] = [
  { kind: "filter", label: "Filter" },
  { kind: "compute", label: "Computed column" },
  { kind: "group_by", label: "Group and aggregate" },
  { kind: "join", label: "Join" },
  { kind: "sort", label: "Sort" },
  { kind: "limit", label: "Limit" },
  { kind: "top_k", label: "Top rows" },
];

let nextId = 1;

export function newStep(kind: Kind): Step {
  const id = nextId++;
  switch (kind) {
    case "filter":
      return { id, kind, expr: "" };
    case "compute":
      return { id, kind, name: "", expr: "" };
    case "group_by":
      return { id, kind, keys: "", aggs: ["count(*) AS n"] };
    case "join":
      return { id, kind, dataset: "", on: "", how: "inner" };
    case "sort":
      return { id, kind, keys: "" };
    case "limit":
      return { id, kind, n: "100" };
    case "top_k":
      return { id, kind, n: "10", keys: "", per: "" };
  }
}

/** A comma-separated list as its items, each with its offset in the text (for error marks). */
export function splitList(text: string): { value: string; at: number }[] {
  const out: { value: string; at: number }[] = [];
  let at = 0;
  for (const part of text.split(",")) {
    const lead = part.length - part.trimStart().length;
    if (part.trim()) out.push({ value: part.trim(), at: at + lead });
    at += part.length + 1;
  }
  return out;
}

/** What a step still needs before it can be checked, or null when it is complete. */
export function missing(step: Step): string | null {
  switch (step.kind) {
    case "filter":
      return step.expr.trim() ? null : "a condition";
    case "compute":
      if (!step.name.trim()) return "a column name";
      return step.expr.trim() ? null : "an expression";
    case "group_by":
      return step.aggs.some((a) => a.trim()) ? null : "at least one aggregate";
    case "join":
      if (!step.dataset) return "a dataset to join";
      return splitList(step.on).length ? null : "the key columns";
    case "sort":
      return splitList(step.keys).length ? null : "a sort key";
    case "limit":
      return /^\d+$/.test(step.n.trim()) ? null : "a whole number of rows";
    case "top_k":
      if (!/^\d+$/.test(step.n.trim())) return "a whole number of rows";
      return splitList(step.keys).length ? null : "the columns to rank by";
  }
}

export type JsonStep = Record<string, unknown>;

export function toJson(step: Step): JsonStep {
  switch (step.kind) {
    case "filter":
      return { filter: step.expr };
    case "compute":
      return { with_columns: { [step.name.trim()]: step.expr } };
    case "group_by": {
      const keys = splitList(step.keys).map((k) => k.value);
      const aggs = step.aggs.filter((a) => a.trim());
      return keys.length ? { group_by: keys, agg: aggs } : { agg: aggs };
    }
    case "join":
      return {
        join: { source: { dataset: step.dataset }, steps: [] },
        on: splitList(step.on).map((k) => k.value),
        how: step.how,
      };
    case "sort":
      return { sort: splitList(step.keys).map((k) => k.value) };
    case "limit":
      return { limit: Number(step.n.trim()) };
    case "top_k": {
      const per = splitList(step.per).map((k) => k.value);
      const out: JsonStep = { top_k: Number(step.n.trim()), by: splitList(step.keys).map((k) => k.value) };
      return per.length ? { ...out, per } : out;
    }
  }
}

export interface PipelineJson {
  source: { dataset: string };
  steps: JsonStep[];
}

export function pipelineJson(dataset: string, steps: Step[]): PipelineJson {
  return { source: { dataset }, steps: steps.map(toJson) };
}

/** The server's 400 details for a pipeline (packages/elytra validate.py). */
export interface Located {
  step?: number | null;
  field?: string;
  start?: number;
  end?: number;
  reason?: string;
}

/** One input's error: the message and, when known, the marked range of its text. */
export interface FieldError {
  message: string;
  start?: number;
  end?: number;
}

/**
 * Which input of the builder a server error belongs to: a key such as `expr`, `name`,
 * `agg.1`, `keys`, `on`, with the range moved into that input's own text (a list typed as
 * "a, b" is one input holding several JSON items).
 */
export function fieldOf(step: Step, d: Located, message: string): { key: string; error: FieldError } {
  const field = d.field ?? "";
  const range = { start: d.start, end: d.end };
  const text = d.reason ?? message;
  const [head, rest] = [field.split(".")[0], field.split(".").slice(1).join(".")];
  if (head === "filter" || head === "with_columns") return { key: "expr", error: { message: text, ...range } };
  if (head === "agg") {
    const kept = step.kind === "group_by" ? step.aggs.map((a, i) => [a, i] as const).filter(([a]) => a.trim()) : [];
    const ui = kept[Number(rest)]?.[1] ?? 0;
    return { key: `agg.${ui}`, error: { message: text, ...range } };
  }
  const lists: Record<string, string> = { group_by: "keys", sort: "keys", by: "keys", per: "per" };
  if (head in lists && (step.kind === "group_by" || step.kind === "sort" || step.kind === "top_k")) {
    const key = lists[head];
    const source = key === "per" && step.kind === "top_k" ? step.per : step.keys;
    const item = splitList(source)[Number(rest)];
    if (item && d.start !== undefined && d.end !== undefined) {
      return { key, error: { message: text, start: item.at + d.start, end: item.at + d.end } };
    }
    return { key, error: { message: text } };
  }
  return { key: "step", error: { message } };
}
