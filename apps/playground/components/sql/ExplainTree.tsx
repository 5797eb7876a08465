/**
 * EXPLAIN as a tree: the statement → each node that ran a part → the datasets it read → their
 * chunks with rows and bytes; across nodes, also the bytes each node sent to the coordinator.
 * Native <details> make every level keyboard-operable without scripts of our own.
 */
"use client";

import { Empty } from "@/components/ui";
import { bytes, count, seconds } from "@/lib/format";

import type { Plan, PlanRead } from "./query";
import { StageTree } from "./StageTree";

import styles from "@/app/sql/sql.module.css";

interface NodePart {
  node: string;
  datasets: Map<string, PlanRead[]>;
  moved: PlanRead[];
  rows: number;
  bytes: number;
}

function exact(n: number): string {
  return `${count(n)} B`;
}

function group(plan: Plan): NodePart[] {
  const nodes = new Map<string, NodePart>();
  for (const r of plan.reads) {
    let n = nodes.get(r.node);
    if (!n) {
      n = { node: r.node, datasets: new Map(), moved: [], rows: 0, bytes: 0 };
      nodes.set(r.node, n);
    }
    if (r.kind === "moved") {
      n.moved.push(r);
      continue;
    }
    n.rows += r.rows;
    n.bytes += r.bytes;
    const list = n.datasets.get(r.dataset) ?? [];
    list.push(r);
    n.datasets.set(r.dataset, list);
  }
  return [...nodes.values()];
}

export function ExplainTree({ plan, sql }: { plan: Plan; sql: string }) {
  const nodes = group(plan);
  const reads = plan.reads.filter((r) => r.kind === "read");
  const moved = plan.reads.filter((r) => r.kind === "moved");
  const how = /^explain \((.*)\)$/.exec(plan.kind)?.[1];
  const totalBytes = reads.reduce((s, r) => s + r.bytes, 0);
  const totalRows = reads.reduce((s, r) => s + r.rows, 0);
  const movedBytes = moved.reduce((s, r) => s + r.bytes, 0);
  const engine = (
    <p className="muted" data-testid="plan-engine">
      {plan.engine === "elytra" ? "Planned and run on Elytra's stages." : `Run by the lake's planner${plan.why ? `: ${plan.why}` : "."}`}
    </p>
  );
  if (!plan.reads.length && !plan.stages)
    return (
      <Empty title="The statement reads no chunks">
        It reads no dataset, or only empty ones, so there is nothing to plan.
      </Empty>
    );
  return (
    <div className={styles.plan} data-testid="plan">
      {engine}
      {plan.stages ? <StageTree plan={plan.stages} /> : null}
      <details open>
        <summary>
          <strong>Statement</strong>{" "}
          <span className="muted">
            {how ? `runs across ${nodes.length} nodes (${how})` : `runs on ${nodes.length === 1 ? "one node" : `${nodes.length} nodes`}`} · reads{" "}
            {count(reads.length)} {reads.length === 1 ? "chunk" : "chunks"}, {count(totalRows)} rows, {bytes(totalBytes)}
            {moved.length ? ` · moves ${bytes(movedBytes)} between nodes` : ""} · planned in {seconds(plan.seconds)}
          </span>
        </summary>
        <pre className={styles.planSql}>{sql}</pre>
        {Object.keys(plan.fragments).length ? (
          <dl className={styles.fragments} data-testid="plan-fragments">
            {Object.entries(plan.fragments).map(([name, frag]) => (
              <div key={name}>
                <dt>
                  Each node ran over its chunks of <code>{name}</code>
                </dt>
                <dd>
                  <pre className={styles.planSql}>{frag}</pre>
                </dd>
              </div>
            ))}
            {plan.final ? (
              <div>
                <dt>The coordinator finished with</dt>
                <dd>
                  <pre className={styles.planSql}>{plan.final}</pre>
                </dd>
              </div>
            ) : null}
          </dl>
        ) : null}
        <ul className={styles.tree}>
          {nodes.map((n) => (
            <li key={n.node} data-testid="plan-node">
              <details open>
                <summary>
                  Node <code data-testid="plan-node-id">{n.node}</code>{" "}
                  <span className="muted">
                    {count(n.rows)} rows, {bytes(n.bytes)} read
                    {n.moved.length ? ` · sent ${exact(n.moved.reduce((s, m) => s + m.bytes, 0))} (${count(n.moved.reduce((s, m) => s + m.rows, 0))} rows) to the coordinator` : ""}
                  </span>
                </summary>
                <ul className={styles.tree}>
                  {[...n.datasets].map(([name, chunks]) => (
                    <li key={name}>
                      <details open={chunks.length <= 50}>
                        <summary>
                          Dataset <code>{name}</code>{" "}
                          <span className="muted">
                            {count(chunks.length)} {chunks.length === 1 ? "chunk" : "chunks"}
                          </span>
                        </summary>
                        <table className={`data ${styles.chunks}`}>
                          <caption className={styles.srOnly}>Chunks of {name} read on {n.node}</caption>
                          <thead>
                            <tr>
                              <th scope="col">Chunk</th>
                              <th scope="col" className="num">
                                Rows
                              </th>
                              <th scope="col" className="num">
                                Bytes
                              </th>
                              {chunks.some((c) => c.attempt !== null) ? <th scope="col">Attempt</th> : null}
                            </tr>
                          </thead>
                          <tbody>
                            {chunks.map((c, i) => (
                              <tr key={`${c.chunk}-${i}`} data-testid="plan-chunk">
                                <td>
                                  <code title={c.chunk ?? ""}>{c.chunk ? c.chunk.slice(0, 16) : "–"}</code>
                                </td>
                                <td className="num">{count(c.rows)}</td>
                                <td className="num" title={bytes(c.bytes)}>
                                  {exact(c.bytes)}
                                </td>
                                {chunks.some((x) => x.attempt !== null) ? <td>{c.attempt ?? ""}</td> : null}
                              </tr>
                            ))}
                          </tbody>
                        </table>
                      </details>
                    </li>
                  ))}
                </ul>
              </details>
            </li>
          ))}
        </ul>
      </details>
    </div>
  );
}
