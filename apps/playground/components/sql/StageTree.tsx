/**
 * Elytra's plan of a query as a tree: each stage (what it reads, its broadcast joins, where its
 * rows go, its tasks) → the hash exchanges between stages → the gather into the driver's merge.
 * After EXPLAIN ANALYZE each level also shows its rows, bytes and seconds.
 */
"use client";

import { bytes, count, seconds } from "@/lib/format";

import type { StagePlan, StageRun } from "./query";

import styles from "@/app/sql/sql.module.css";

function ran(a: StageRun | undefined): string {
  if (!a) return "";
  const where = a.nodes.length > 1 ? ` on ${a.nodes.length} nodes` : a.workers.length ? ` on ${a.workers.length} ${a.workers.length === 1 ? "worker" : "workers"}` : "";
  return ` · ran ${count(a.tasks)} ${a.tasks === 1 ? "task" : "tasks"}${where}, ${count(a.rows_out)} rows out, read ${bytes(a.bytes_in)}, sent ${bytes(a.bytes_to_exchange)} to exchanges and ${bytes(a.bytes_to_driver)} to the driver, ${seconds(a.task_seconds)} of task time`;
}

export function StageTree({ plan }: { plan: StagePlan }) {
  const a = plan.analyze;
  return (
    <details open data-testid="stage-plan">
      <summary>
        <strong>Elytra stages</strong>{" "}
        <span className="muted">
          {count(plan.stages.length)} {plan.stages.length === 1 ? "stage" : "stages"}
          {plan.exchanges.length ? `, ${count(plan.exchanges.length)} hash ${plan.exchanges.length === 1 ? "exchange" : "exchanges"}` : ""} on the {plan.backend} backend
          {a ? ` · ${count(a.rows_out)} rows · ${bytes(a.bytes_read)} read, ${bytes(a.bytes_between_stages)} between stages, ${bytes(a.bytes_to_driver)} into the driver` : ""}
        </span>
      </summary>
      <ul className={styles.tree}>
        {plan.stages.map((s) => (
          <li key={s.name} data-testid="stage">
            <details open>
              <summary>
                Stage <code data-testid="stage-name">{s.index}</code> ({s.kind}){" "}
                <span className="muted">
                  reads {s.reads} · {count(s.task_count)} {s.task_count === 1 ? "task" : "tasks"} · → {s.output}
                  <span data-testid="stage-run">{ran(s.analyze)}</span>
                </span>
              </summary>
              {s.joins.length ? (
                <ul className={styles.tree}>
                  {s.joins.map((j, i) => (
                    <li key={i} data-testid="stage-join">
                      {j.strategy} {j.how} join on {j.keys[0].join(", ")} = {j.keys[1].join(", ")}: every task reads {j.small_side}
                      {j.small_side_bytes != null ? ` (${bytes(j.small_side_bytes)})` : ""}
                    </li>
                  ))}
                </ul>
              ) : null}
            </details>
          </li>
        ))}
        {plan.exchanges.map((e) => (
          <li key={e.name} data-testid="stage-exchange">
            {e.strategy} <code>{e.name}</code>: {e.how} join of stages {e.left_stage} and {e.right_stage} on {e.keys[0].join(", ")}, {count(e.partitions)} partitions, a join task each
          </li>
        ))}
        {(plan.rounds ?? []).map((r) => (
          <li key={r.stage_index} data-testid="stage-round">
            Round {r.stage_index}: {r.what}
            <span className="muted">{ran(r)}</span>
          </li>
        ))}
        <li data-testid="stage-merge">
          <details>
            <summary>
              {plan.merge.strategy} into {plan.merge.where}
              {a && a.seconds.merge != null ? <span className="muted"> · merge {seconds(a.seconds.merge)}</span> : null}
            </summary>
            <pre className={styles.planSql}>{plan.merge.plan.join("\n")}</pre>
          </details>
        </li>
      </ul>
    </details>
  );
}
