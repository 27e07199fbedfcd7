/**
 * The admin console's wire shapes: what `/api/admin/*` answers and accepts. The console page
 * (public/admin/src), the PS's embedded console, the cluster supervisor and the experiment
 * harness (which records a run with the same recorder) all read them from here, so the page
 * imports nothing from server/.
 *
 * Request bodies and path parameters are TypeBox schemas (the routes' schemas); the answers,
 * built by the server itself, are plain types.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { NodeRole } from './api.ts';

export type { NodeRole } from './api.ts';

/** POST /api/admin/run: change the run's learning rate and/or rule (at least one). */
export const RunChangeSchema = Type.Object({
  lr: Type.Optional(Type.Number()),
  rule: Type.Optional(Type.String({ maxLength: 32 })),
}, { additionalProperties: false, minProperties: 1 });
export type RunChange = Static<typeof RunChangeSchema>;

/*
 * Path parameters arrive as strings; the handlers check their form and answer a malformed one
 * with the catalogued "no such node/shard/worker" code, so these schemas only bound the length.
 */
export const NodeParamsSchema = Type.Object({ name: Type.String({ maxLength: 200 }) });
export const NodeShardParamsSchema = Type.Object({ name: Type.String({ maxLength: 200 }), k: Type.String({ maxLength: 200 }) });
export const ShardParamsSchema = Type.Object({ k: Type.String({ maxLength: 200 }) });
export const WorkerParamsSchema = Type.Object({ id: Type.String({ maxLength: 200 }) });

/** GET /api/admin/console?since=T: samples and events after t = T (all when absent). */
export const ConsoleQuerySchema = Type.Object({ since: Type.Optional(Type.String({ maxLength: 32 })) });

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

/** The cluster as the console shows it (from GET /api/cluster's ClusterInfo). */
export interface ClusterView {
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

/** A worker disconnected as a repeat offender and kept out for a while (server/ps/pace.ts). */
export interface KeptOutView {
  readonly workerId: number;
  readonly address: string;
  /** The strike that tipped it: clipped, or the refusal's code (PS_CLAIM_AHEAD, PS_PUSH_RATE, ...). */
  readonly reason: string;
  /** Wall clock, ms since the epoch: when it was disconnected, and until when it is kept out. */
  readonly at: number;
  readonly until: number;
}

/** What the node taking pushes (the head, or the single PS) did against untrusted workers. */
export interface RobustnessView {
  readonly node: string;
  readonly aggregator: string;
  /** Pushes the aggregator cut, and the radius it cuts to now (0: none). */
  readonly clipped: number;
  readonly radius: number;
  /** Pushes clip's memory of excess cut further (their worker kept arriving past the radius). */
  readonly excessLimited: number;
  /** Pushes clip's direction check cut (their worker kept pointing against the consensus). */
  readonly directionLimited: number;
  /** Versions the output guard refused (the last good weights stayed), and the last one's reason. */
  readonly versionsRefused: number;
  readonly lastGuardRefusal: { readonly version: number; readonly workerId: number; readonly reason: string } | null;
  /** Sessions disconnected as repeat offenders since the node started. */
  readonly offenders: number;
  readonly keptOut: KeptOutView[];
}

/** One look at the whole system. */
export interface Snapshot {
  readonly mode: 'single' | 'cluster';
  readonly cluster: ClusterView | null;
  readonly nodes: NodeView[];
  readonly workers: WorkerView[];
  readonly eval: EvalView | null;
  /** Absent from a node too old to report it. */
  readonly robustness?: RobustnessView | null;
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

/** GET /api/admin/console's answer. */
export interface ConsoleState {
  /** The recorder's clock (seconds since it started): the next call's `since`. */
  readonly now: number;
  /** Wall clock when the recorder started, ms since the epoch. */
  readonly startedAt: number;
  readonly capabilities: Capabilities;
  readonly run: RunSettings;
  readonly snapshot: Snapshot | null;
  readonly samples: Sample[];
  readonly events: RunEvent[];
}
