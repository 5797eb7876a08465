/** The lake's members: state badge, addresses, chunks, bytes, last heard from. */
"use client";

import { useEffect, useState } from "react";

import { bytes, count } from "@/lib/format";

import styles from "./cluster.module.css";
import type { LakeNode } from "./types";

/** "3 s ago" from epoch seconds and the current time (a clock the parent ticks). */
function ago(lastSeen: number | null, now: number): string {
  if (lastSeen === null) return "never";
  const s = Math.max(0, Math.round(now - lastSeen));
  if (s < 2) return "just now";
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return new Date(lastSeen * 1000).toLocaleString();
}

/** The wall clock in seconds, moving once a second (for "x s ago"; no server call). */
function useNow(): number {
  const [now, setNow] = useState(() => Date.now() / 1000);
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now() / 1000), 1000);
    return () => window.clearInterval(t);
  }, []);
  return now;
}

export function NodesTable({ nodes }: { nodes: LakeNode[] }) {
  const now = useNow();
  return (
    <div className="scroll">
      <table className="data" aria-label="Lake nodes">
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">State</th>
            <th scope="col" className="num">
              Chunks
            </th>
            <th scope="col" className="num">
              Bytes
            </th>
            <th scope="col">Last seen</th>
            <th scope="col" className={styles.wide}>
              HTTP
            </th>
            <th scope="col" className={styles.wide}>
              Flight
            </th>
            <th scope="col" className={`num ${styles.wide}`}>
              Incarnation
            </th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((n) => (
            <tr key={n.id} data-testid="node-row" data-node-id={n.id} data-state={n.state}>
              <th scope="row" className="mono">
                {n.id}
              </th>
              <td>
                <span className={`badge ${n.state}`} data-testid="node-state">
                  {n.state}
                </span>
              </td>
              <td className="num">{count(n.chunks)}</td>
              <td className="num">{bytes(n.bytes)}</td>
              <td title={n.last_seen ? new Date(n.last_seen * 1000).toLocaleString() : undefined}>
                {ago(n.last_seen, now)}
              </td>
              <td className={`mono ${styles.wide}`}>{n.http || "–"}</td>
              <td className={`mono ${styles.wide}`}>{n.flight || "–"}</td>
              <td className={`num ${styles.wide}`}>{n.incarnation}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
