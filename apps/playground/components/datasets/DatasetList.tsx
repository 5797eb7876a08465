/** The datasets table: one row per dataset, linking to its page. */
"use client";

import Link from "next/link";

import styles from "@/app/datasets/datasets.module.css";
import { bytes, count, when } from "@/lib/format";

import type { Dataset } from "./types";

export function DatasetList({ datasets, replicasOf }: { datasets: Dataset[]; replicasOf: (name: string) => number | null }) {
  return (
    <div className={styles.tableWrap}>
      <table className="data" data-testid="datasets">
        <caption className="muted" style={{ textAlign: "left", padding: "0 0 0.4rem" }}>
          {datasets.length} {datasets.length === 1 ? "dataset" : "datasets"}
        </caption>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col" className="num">Version</th>
            <th scope="col" className="num">Rows</th>
            <th scope="col" className="num">Size</th>
            <th scope="col" className="num">Chunks</th>
            <th scope="col" className="num" title="Copies of each chunk the cluster keeps">Replicas</th>
            <th scope="col" className={styles.optional}>Owner</th>
            <th scope="col" className={styles.optional}>Created</th>
          </tr>
        </thead>
        <tbody>
          {datasets.map((d) => (
            <tr key={d.name} data-name={d.name}>
              <td>
                <Link className={styles.name} href={`/datasets/view/?name=${encodeURIComponent(d.name)}`}>
                  {d.name}
                </Link>
              </td>
              <td className="num">{d.version}</td>
              <td className="num" data-testid="rows">{count(d.rows)}</td>
              <td className="num">{bytes(d.bytes)}</td>
              <td className="num">{count(d.chunks)}</td>
              <td className="num">{count(replicasOf(d.name))}</td>
              <td className={styles.optional}>{d.owner ?? "–"}</td>
              <td className={styles.optional}>{when(d.created)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
