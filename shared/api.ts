/**
 * JSON shapes of the HTTP API, shared by the server and its clients. Binary traffic (weights,
 * gradients, acks) uses the frames of protocol.ts, never these.
 */
export interface JoinRequest {
  /** Free text, shown in the status; truncated to 200 characters. */
  userAgent?: string;
}

export interface JoinResponse {
  workerId: number;
  token: string;
  model: string;
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
export type ControlMessage = { type: 'assign'; shards: number[] };

export function shardPath(dataKey: string, index: number): string {
  return `/api/shards/${encodeURIComponent(dataKey)}/${index}`;
}
