/** The lake's dataset answers (packages/lake/src/lake/api/routes.py: DatasetModel and friends). */

export interface DatasetColumn {
  name: string;
  type: string;
  nullable: boolean;
}

export interface Dataset {
  name: string;
  version: number;
  rows: number;
  bytes: number;
  chunks: number;
  created: number;
  origin: string;
  owner: string | null;
  columns: DatasetColumn[];
}

export interface Chunk {
  sha256: string;
  rows: number;
  bytes: number;
}

export interface DatasetDetail extends Dataset {
  chunk_list: Chunk[];
}

export interface Member {
  id: string;
  state: "alive" | "suspect" | "dead";
  chunks?: number | null;
}

export interface ClusterHealth {
  replication_factor: number;
  chunks: number;
  under_replicated: number;
  members: Member[];
}

/** Copies of each chunk the cluster keeps: its replication factor, bounded by live members. */
export function replicas(health: ClusterHealth | null): number | null {
  if (!health) return null;
  const alive = health.members.filter((m) => m.state === "alive").length;
  return Math.max(1, Math.min(health.replication_factor, alive || 1));
}
