/**
 * Elytra's worker pool (GET /api/jobs/pool): backend, workers busy and idle, and Ray's nodes
 * and resources when the backend is Ray. Read when the page opens, when the tab becomes
 * visible again, and on Refresh; the pool is not mirrored into Elkyn.
 */
"use client";

import { useCallback, useEffect, useState } from "react";

import { Busy, ErrorLine } from "@/components/ui";
import { api, errorText } from "@/lib/api";
import { bytes, count } from "@/lib/format";

import styles from "./cluster.module.css";
import type { Pool } from "./types";

function resource(name: string, v: number | undefined): string {
  if (v === undefined) return "–";
  return /memory/i.test(name) ? bytes(v) : count(v);
}

export function PoolPanel() {
  const [pool, setPool] = useState<Pool | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);

  const load = useCallback(async () => {
    setLoading(true);
    try {
      setPool(await api<Pool>("/api/jobs/pool"));
      setError(null);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setLoading(false);
    }
  }, []);

  useEffect(() => {
    void load();
    const onVisible = () => {
      if (document.visibilityState === "visible") void load();
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, [load]);

  return (
    <section className="panel" aria-labelledby="pool-title" data-testid="pool">
      <div className={styles.panelHead}>
        <h2 id="pool-title">Worker pool</h2>
        <button type="button" onClick={() => void load()} disabled={loading}>
          {loading ? "Refreshing…" : "Refresh"}
        </button>
      </div>
      <ErrorLine error={error} testId="pool-error" />
      {!pool && !error ? <Busy label="Reading the pool" /> : null}
      {pool ? (
        <>
          <dl className={styles.stats}>
            <div>
              <dt>Backend</dt>
              <dd data-testid="pool-backend">{pool.backend}</dd>
            </div>
            <div>
              <dt>Workers</dt>
              <dd data-testid="pool-workers">{pool.workers === null ? "in-process" : count(pool.workers)}</dd>
            </div>
            <div>
              <dt>Busy</dt>
              <dd data-testid="pool-busy">{count(pool.busy)}</dd>
            </div>
            <div>
              <dt>Idle</dt>
              <dd data-testid="pool-idle">{count(pool.idle)}</dd>
            </div>
            <div>
              <dt>Ray</dt>
              <dd data-testid="ray-status">{pool.ray.attached ? `attached (${pool.ray.detail})` : pool.ray.detail}</dd>
            </div>
          </dl>
          {pool.worker_list.length > 0 ? (
            <ul className={styles.workers} aria-label="Workers">
              {pool.worker_list.map((w) => (
                <li key={w.index} title={w.task ? `task ${w.task}` : undefined}>
                  <span className={`badge ${w.state === "busy" ? "running" : w.state === "idle" ? "ready" : "queued"}`}>
                    {w.state}
                  </span>{" "}
                  <span className="mono">worker {w.index}</span>
                  {w.pid ? <span className="muted"> · pid {w.pid}</span> : null}
                </li>
              ))}
            </ul>
          ) : null}
          {pool.ray.attached ? (
            <div className="scroll">
              <table className="data" aria-label="Ray nodes">
                <thead>
                  <tr>
                    <th scope="col">Ray node</th>
                    <th scope="col">Address</th>
                    <th scope="col">State</th>
                    <th scope="col" className="num">
                      CPU
                    </th>
                    <th scope="col" className="num">
                      Memory
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {pool.ray.nodes.map((n) => (
                    <tr key={n.id}>
                      <th scope="row" className="mono">
                        {n.id.slice(0, 12)}
                      </th>
                      <td className="mono">{n.address}</td>
                      <td>
                        <span className={`badge ${n.alive ? "alive" : "dead"}`}>{n.alive ? "alive" : "dead"}</span>
                      </td>
                      <td className="num">{resource("CPU", n.resources.CPU)}</td>
                      <td className="num">{resource("memory", n.resources.memory)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
              {pool.ray.node_count > pool.ray.nodes.length ? (
                <p className="muted">
                  {pool.ray.nodes.length} of {pool.ray.node_count} Ray nodes shown.
                </p>
              ) : null}
              <p className="muted">
                CPU available {resource("CPU", pool.ray.available.CPU)} of {resource("CPU", pool.ray.resources.CPU)}
              </p>
            </div>
          ) : null}
        </>
      ) : null}
    </section>
  );
}
