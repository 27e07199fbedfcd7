/**
 * What the admin console shows: the cluster's nodes, the workers, and the run's time series.
 * The same shapes serve the PS's embedded console, the cluster supervisor and the experiment
 * harness (which records a run with the same recorder).
 */

export type NodeRole = 'head' | 'middle' | 'tail' | 'single';
export type NodeHealth = 'up' | 'down' | 'starting';

export interface NodeView {
  readonly name: string;
  readonly url: string;
  readonly role: NodeRole | null;
  readonly health: NodeHealth;
  readonly epoch: number | null;
  readonly version: number | null;
  readonly updatesApplied: number | null;
  readonly updatesPerSec: number;
  /** The supervisor's child process id, when the console supervises this node. */
  readonly pid?: number;
}

export interface WorkerView {
  readonly id: number;
  /** The node the worker is joined to. */
  readonly node: string;
  readonly backend: string | null;
  readonly examplesPerSec: number;
  /** The worker's own report: connected | buffering | flushing | ...; else the PS's view. */
  readonly state: string;
  readonly buffered: number;
  /** Versions between the weights its last push was computed on and the version it was applied to. */
  readonly staleness: number;
  readonly steps: number;
  readonly lastSeenMsAgo: number;
}

export interface ClusterInfo {
  readonly name: string;
  readonly epoch: number;
  readonly replication: string;
  readonly reads: string;
  readonly head: string | null;
  readonly tail: string | null;
}

export interface EvalView {
  readonly accuracy: number;
  readonly loss: number;
  readonly version: number;
  /** Which node evaluated it and when (its own clock, seconds since it started). */
  readonly node: string;
  readonly t: number;
}

/** One look at the whole system. */
export interface Snapshot {
  readonly mode: 'single' | 'cluster';
  readonly cluster: ClusterInfo | null;
  readonly nodes: NodeView[];
  readonly workers: WorkerView[];
  readonly eval: EvalView | null;
}

/** One row of the run's time series. */
export interface Sample {
  /** Seconds since the recorder started. */
  readonly t: number;
  /** Wall clock, ms since the epoch. */
  readonly at: number;
  /** Model version of the head (or the single PS); null while no node answers. */
  readonly version: number | null;
  /** Updates applied over the run, added up across PS restarts. */
  readonly updatesApplied: number;
  readonly updatesPerSec: number;
  readonly accuracy: number | null;
  readonly loss: number | null;
  /** Gradients the workers hold in their outage buffers. */
  readonly buffered: number;
  readonly workers: number;
  readonly examplesPerSec: number;
  readonly nodesUp: number;
  /** Extra measured columns (the experiment harness adds CPU, memory, gradients computed). */
  readonly extra?: Readonly<Record<string, number | null>>;
}

export type EventKind =
  | 'start' | 'kill' | 'restart' | 'node-down' | 'node-up' | 'epoch' | 'chain' | 'expire'
  | 'drop-shard' | 'disconnect' | 'set-run' | 'recovered';

/** A failure, a recovery or an operator action, marked on the time axis. */
export interface RunEvent {
  readonly t: number;
  readonly at: number;
  readonly kind: EventKind;
  readonly node?: string;
  readonly detail: string;
}

export interface RunSettings {
  readonly lr: number;
  readonly rule: string;
  readonly rules: readonly string[];
  readonly strategy: string;
  readonly model: string;
  readonly dataset: string;
  readonly bufferMode: string;
}

/** Which controls the console enables. */
export interface Capabilities {
  readonly killNode: boolean;
  readonly restartNode: boolean;
  readonly expireNode: boolean;
  readonly dropShard: boolean;
  readonly disconnectWorker: boolean;
  readonly setRun: boolean;
}
