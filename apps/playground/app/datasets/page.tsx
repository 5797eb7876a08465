"use client";

/**
 * Datasets: the lake's datasets, live (the catalog is mirrored into Elkyn at /datasets; each
 * change there re-reads the REST list, which stays the source of truth), and uploads.
 */
import { useCallback, useEffect, useState } from "react";

import styles from "./datasets.module.css";
import { DatasetList } from "@/components/datasets/DatasetList";
import { replicas, type ClusterHealth, type Dataset } from "@/components/datasets/types";
import { UploadPanel } from "@/components/datasets/UploadPanel";
import { onCommitted } from "@/components/datasets/uploads";
import { Busy, Empty, ErrorLine, PageTitle } from "@/components/ui";
import { api, errorText } from "@/lib/api";
import { useLive, type Json } from "@/lib/live";
import { useSession } from "@/lib/session";

/** Replicas per dataset when the live mirror says so, else the cluster's replication. */
function mirroredReplicas(live: Json, name: string): number | null {
  if (live === null || typeof live !== "object" || Array.isArray(live)) return null;
  const d = live[name];
  if (d === null || typeof d !== "object" || Array.isArray(d)) return null;
  const r = d.replicas;
  return typeof r === "number" ? r : null;
}

export default function DatasetsPage() {
  const session = useSession();
  const live = useLive("/datasets");
  const [datasets, setDatasets] = useState<Dataset[] | null>(null);
  const [health, setHealth] = useState<ClusterHealth | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      const [list, nodes] = await Promise.all([api<Dataset[]>("/api/lake/datasets"), api<ClusterHealth>("/api/lake/nodes").catch(() => null)]);
      setDatasets(list.sort((a, b) => a.name.localeCompare(b.name)));
      setHealth(nodes);
      setError(null);
    } catch (e) {
      setError(`cannot list the datasets: ${errorText(e)}`);
    }
  }, []);

  // First load, every change the mirror pushes, and every upload that commits here.
  useEffect(() => {
    void load();
  }, [load, live.version]);
  useEffect(() => onCommitted(() => void load()), [load]);

  const factor = replicas(health);
  return (
    <>
      <PageTitle title="Datasets">
        <span className="muted" data-testid="live" title={live.error ?? undefined}>
          {live.error ? "not live (reload to refresh)" : live.loaded ? (live.connected ? "live" : "reconnecting…") : ""}
        </span>
      </PageTitle>
      {session ? <UploadPanel datasets={datasets ?? []} user={session.user} /> : null}
      <ErrorLine error={error} />
      {datasets === null ? (
        error ? null : <Busy label="Loading datasets" />
      ) : datasets.length === 0 ? (
        <Empty title="No datasets yet">
          Drag a CSV, JSON lines or Parquet file onto the upload area above, or from a shell run <code className={styles.cmd}>lake upload FILE --name NAME</code> or{" "}
          <code className={styles.cmd}>platform demo-data --upload</code>.
        </Empty>
      ) : (
        <DatasetList datasets={datasets} replicasOf={(name) => mirroredReplicas(live.value, name) ?? factor} />
      )}
    </>
  );
}
