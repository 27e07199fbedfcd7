/**
 * JSON shapes of the HTTP API, shared by the server and its clients. Binary traffic (weights,
 * gradients, acks) uses the frames of protocol.ts, never these.
 */
export interface JoinRequest {
  /** Free text, shown in the status; truncated to 200 characters. */
  userAgent?: string;
  /** Rejoin under an id a PS of this deployment issued (keeps exactly-once across restarts). */
  resume?: { workerId: number; idTag: string };
}

export interface JoinResponse {
  workerId: number;
  /** Proof of the id, to present in `resume` after a PS restart. */
  idTag: string;
  token: string;
  model: string;
  /** The PS's learning rate (workers in `local` buffer mode apply it to their own copy). */
  lr: number;
  /** How workers buffer gradients while the PS is unreachable. */
  bufferMode: 'frozen' | 'local';
  /** The highest push sequence number the PS has applied for this id (0 for a new id). */
  lastSeq: number;
  layoutHash: number;
  layoutSize: number;
  batch: number;
  pullEvery: number;
  dataset: string;
  /** Identifies the shard set (data set, shard count, seed): the key of the worker's cache. */
  dataKey: string;
  shardCount: number;
  shards: number[];
  /** WebSocket path; connect with ?token=... */
  wsPath: string;
}

export interface ReportRequest {
  backend?: string;
  /** Gradients buffered and not yet flushed. */
  buffered?: number;
  /** When buffering began (ms since the epoch), 0 when not buffering. */
  bufferedSince?: number;
  /** The last flush: gradients, the ack's version, whether it was a duplicate, when. */
  lastFlush?: { count: number; version: number; duplicate: boolean; at: number };
  examplesPerSec?: number;
  steps?: number;
  numTensors?: number;
  loss?: number;
  state?: string;
}

export interface ReportResponse {
  shards: number[];
}

/** WebSocket text messages from the PS (control only; data travels in binary frames). */
export type ControlMessage =
  | { type: 'assign'; shards: number[] }
  /** Sent on connect: the PS's version and whether it wants the worker's copy of the weights. */
  | { type: 'hello'; version: number; wantsWeights: boolean };

/** GET /api/cluster on any node of a chain-replicated PS cluster (server/chain). */
export interface ClusterInfo {
  cluster: string;
  /** Bumped by every reconfiguration (a node joined or left). */
  epoch: number;
  replication: 'sync' | 'async' | 'snapshot';
  /** strict: workers read weights from the tail; relaxed: from the node they write to. */
  reads: 'strict' | 'relaxed';
  /** The answering node's member name. */
  self: string;
  /** In chain order: head first. `version` is known for the answering node only (else null). */
  nodes: { name: string; url: string; role: 'head' | 'middle' | 'tail' | 'single'; version: number | null }[];
  head: string | null;
  tail: string | null;
  /** The answering node's replication state. */
  node: Record<string, unknown> & { role: string; version: number; committed: number; fresh: boolean; writable: boolean };
}

/** GET /api/mesh: how workers reach each other (client/mesh/). */
export interface MeshConfig {
  /** False when the PS runs with --mesh-peers 0 or its signaling server is not up. */
  enabled: boolean;
  /** PeerJS signaling server: same host as the PS, this port, path and key. */
  port: number;
  path: string;
  key: string;
  /** Open data channels each worker keeps (k). */
  peers: number;
  /** Gossip period during outages in `local` buffer mode; 0 = none. */
  gossipEveryMs: number;
  relay: boolean;
  relayMaxLag: number;
}

export function shardPath(dataKey: string, index: number): string {
  return `/api/shards/${encodeURIComponent(dataKey)}/${index}`;
}
