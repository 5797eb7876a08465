"use client";

/**
 * Cluster: the lake's nodes (alive, suspect, dead), chunks and bytes per node, replication
 * health, and the worker pool with Ray's status. Nodes and health are live from Elkyn
 * (/nodes and /cluster, which the lake mirrors within a second of a change): no polling.
 */
import { useMemo } from "react";

import { NodesChart } from "@/components/cluster/NodesChart";
import { NodesTable } from "@/components/cluster/NodesTable";
import { PoolPanel } from "@/components/cluster/PoolPanel";
import styles from "@/components/cluster/cluster.module.css";
import { healthOf, nodesOf } from "@/components/cluster/types";
import { Busy, Empty, ErrorLine, PageTitle } from "@/components/ui";
import { count } from "@/lib/format";
import { useLive } from "@/lib/live";

export default function ClusterPage() {
  const nodesLive = useLive("/nodes");
  const clusterLive = useLive("/cluster");
  const nodes = useMemo(() => nodesOf(nodesLive.value), [nodesLive.value]);
  const health = useMemo(() => healthOf(clusterLive.value), [clusterLive.value]);
  const states = useMemo(() => {
    const c = { alive: 0, suspect: 0, dead: 0 };
    for (const n of nodes) c[n.state]++;
    return c;
  }, [nodes]);

  return (
    <>
      <PageTitle title="Cluster">
        <span className={`muted ${styles.live}`} role="status" aria-live="polite">
          {nodesLive.connected && clusterLive.connected && nodesLive.loaded && clusterLive.loaded
            ? "Live"
            : nodesLive.loaded
              ? "Reconnecting… (showing the last state seen)"
              : "Connecting…"}
        </span>
      </PageTitle>
      <div className={styles.layout}>
        <div>
          <section className="panel" aria-labelledby="health-title" data-testid="health">
            <h2 id="health-title" className={styles.title}>
              Replication
            </h2>
            <ErrorLine error={clusterLive.error} testId="cluster-error" />
            {health ? (
              <dl className={styles.stats}>
                <div>
                  <dt>Replication factor</dt>
                  <dd data-testid="replication-factor">{health.replication_factor}</dd>
                </div>
                <div>
                  <dt>Live chunks</dt>
                  <dd data-testid="live-chunks">{count(health.chunks)}</dd>
                </div>
                <div>
                  <dt>Under-replicated</dt>
                  <dd data-testid="under-replicated" className={health.under_replicated ? "warn" : "ok"}>
                    {count(health.under_replicated)}
                  </dd>
                </div>
                <div>
                  <dt>Nodes</dt>
                  <dd data-testid="node-counts">
                    {states.alive} alive
                    {states.suspect ? `, ${states.suspect} suspect` : ""}
                    {states.dead ? `, ${states.dead} dead` : ""}
                  </dd>
                </div>
              </dl>
            ) : clusterLive.loaded ? (
              <Empty title="No replication report yet">
                The lake publishes it when its node starts; check that <code>platform up</code> runs the lake plugin.
              </Empty>
            ) : !clusterLive.error ? (
              <Busy label="Connecting" />
            ) : null}
          </section>

          <section className="panel" aria-labelledby="nodes-title">
            <h2 id="nodes-title" className={styles.title}>
              Lake nodes
            </h2>
            <ErrorLine error={nodesLive.error} testId="nodes-error" />
            {nodes.length > 0 ? (
              <>
                <NodesTable nodes={nodes} />
                {nodes.some((n) => (n.chunks ?? 0) > 0) ? (
                  <>
                    <h3 className="muted">Chunks and bytes per node</h3>
                    <NodesChart nodes={nodes} />
                  </>
                ) : (
                  <p className={`muted ${styles.note}`} data-testid="no-chunks">
                    No node holds a chunk yet: upload a dataset on the Datasets page and its chunks show here per node.
                  </p>
                )}
              </>
            ) : nodesLive.loaded ? (
              <Empty title="No lake node has reported yet">
                The platform&apos;s own node appears here once it has started. Add nodes with{" "}
                <code>lake node --join HOST:PORT</code> (same <code>PLATFORM_SECRET</code>).
              </Empty>
            ) : !nodesLive.error ? (
              <Busy label="Connecting" />
            ) : null}
          </section>
        </div>
        <PoolPanel />
      </div>
    </>
  );
}
