/** The shapes the lake mirrors into Elkyn (/nodes, /cluster) and GET /api/jobs/pool answers. */
import type { Json } from "@/lib/live";

export type NodeState = "alive" | "suspect" | "dead";

export interface LakeNode {
  id: string;
  http: string;
  flight: string;
  state: NodeState;
  incarnation: number;
  /** null while the node does not answer (dead, or not reachable) */
  chunks: number | null;
  bytes: number | null;
  /** epoch seconds we last heard from it */
  last_seen: number | null;
}

export interface ClusterHealth {
  replication_factor: number;
  chunks: number;
  under_replicated: number;
}

export interface Worker {
  index: number;
  pid: number | null;
  state: "starting" | "idle" | "busy";
  task: string | null;
}

export interface RayNode {
  id: string;
  address: string;
  alive: boolean;
  resources: Record<string, number>;
}

export interface Pool {
  backend: string;
  workers: number | null;
  busy: number | null;
  idle: number | null;
  worker_list: Worker[];
  ray: {
    attached: boolean;
    detail: string;
    nodes: RayNode[];
    node_count: number;
    resources: Record<string, number>;
    available: Record<string, number>;
  };
}

const STATES: readonly string[] = ["alive", "suspect", "dead"];
const RANK: Record<NodeState, number> = { alive: 0, suspect: 1, dead: 2 };

function num(v: Json | undefined): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** The /nodes value as a list, worst state first then by id; malformed entries are skipped. */
export function nodesOf(value: Json): LakeNode[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
  const out: LakeNode[] = [];
  for (const [key, raw] of Object.entries(value)) {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) continue;
    const state = typeof raw.state === "string" && STATES.includes(raw.state) ? (raw.state as NodeState) : null;
    if (!state) continue;
    out.push({
      id: typeof raw.id === "string" ? raw.id : key,
      http: typeof raw.http === "string" ? raw.http : "",
      flight: typeof raw.flight === "string" ? raw.flight : "",
      state,
      incarnation: num(raw.incarnation) ?? 0,
      chunks: num(raw.chunks),
      bytes: num(raw.bytes),
      last_seen: num(raw.last_seen),
    });
  }
  return out.sort((a, b) => RANK[b.state] - RANK[a.state] || a.id.localeCompare(b.id));
}

export function healthOf(value: Json): ClusterHealth | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const rf = num(value.replication_factor);
  const chunks = num(value.chunks);
  const under = num(value.under_replicated);
  if (rf === null || chunks === null || under === null) return null;
  return { replication_factor: rf, chunks, under_replicated: under };
}
