"use client";

/** Home: one card per page, each with a live count, so a first visit shows where to start. */
import Link from "next/link";
import { useEffect, useState } from "react";

import { PageTitle } from "@/components/ui";
import { api } from "@/lib/api";

interface Counts {
  datasets?: number;
  jobs?: number;
  nodes?: number;
}

const CARDS = [
  { href: "/datasets/", title: "Datasets", key: "datasets", text: "Upload CSV, JSON lines or Parquet; see schemas and rows." },
  { href: "/sql/", title: "SQL", key: null, text: "Query datasets across the cluster; chart and download results." },
  { href: "/pipelines/", title: "Pipelines", key: null, text: "Build an Elytra pipeline step by step and run it." },
  { href: "/jobs/", title: "Jobs", key: "jobs", text: "Pipelines that ran or are running, with their tasks." },
  { href: "/database/", title: "Database", key: null, text: "Browse and edit Elkyn's tree live; edit its rules." },
  { href: "/cluster/", title: "Cluster", key: "nodes", text: "Lake nodes, their state, chunks and replication." },
] as const;

export default function Home() {
  const [counts, setCounts] = useState<Counts>({});
  useEffect(() => {
    api<unknown[]>("/api/lake/datasets").then((d) => setCounts((c) => ({ ...c, datasets: d.length })), () => {});
    api<unknown[]>("/api/jobs").then((d) => setCounts((c) => ({ ...c, jobs: d.length })), () => {});
    api<{ members: unknown[] }>("/api/lake/nodes").then((d) => setCounts((c) => ({ ...c, nodes: d.members.length })), () => {});
  }, []);
  return (
    <>
      <PageTitle title="Platform" />
      <div className="cards">
        {CARDS.map((c) => (
          <Link key={c.href} href={c.href} className="card">
            <strong>
              {c.title}
              {c.key && counts[c.key] !== undefined ? <span className="muted"> · {counts[c.key]}</span> : null}
            </strong>
            <span className="muted">{c.text}</span>
          </Link>
        ))}
      </div>
    </>
  );
}
