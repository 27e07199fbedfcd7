/**
 * JSON shapes of the HTTP API, shared by the server and its clients. Binary traffic (weights,
 * gradients, acks) uses the frames of protocol.ts, never these.
 *
 * Each shape is declared once, as a TypeBox schema: the schema is the Fastify route's
 * body/querystring/response schema (so the PS refuses what does not match), the worker checks
 * the PS's answers against it (`parseAs`, shared/validate.ts), and `Static<>` of it is the
 * TypeScript type. Request schemas bound every string, number and array an untrusted client
 * sends; response schemas describe exactly what the PS sends, no tighter, so a worker never
 * refuses a correct answer.
 */
import { CODEC_NAMES } from './codec/index.ts';
import { Type, type Static } from '@sinclair/typebox';

/** A non-negative integer (a count, a version, an index). */
const Count = (): ReturnType<typeof Type.Integer> => Type.Integer({ minimum: 0 });
/** A worker id: what the PS issues, 1 up to 2^32 - 1 (it travels as a u32 in frames). */
const WorkerId = (): ReturnType<typeof Type.Integer> => Type.Integer({ minimum: 1, maximum: 0xffffffff });
/** The HMAC of a worker id under the deployment's secret (server/ps/signer.ts). */
const IdTag = (): ReturnType<typeof Type.String> => Type.String({ pattern: '^[0-9a-f]{64}$' });

// ---- Worker -> PS requests (untrusted: bounded) ----

export const JoinRequestSchema = Type.Object({
  /** Free text, shown in the status; truncated to 200 characters. */
  userAgent: Type.Optional(Type.String({ maxLength: 1000 })),
  /** Rejoin under an id a PS of this deployment issued (keeps exactly-once across restarts). */
  resume: Type.Optional(Type.Object({ workerId: WorkerId(), idTag: IdTag() }, { additionalProperties: false })),
}, { additionalProperties: false });
export type JoinRequest = Static<typeof JoinRequestSchema>;

/** POST /api/join's body: a JoinRequest, or no body at all (JSON null). */
export const JoinBodySchema = Type.Union([JoinRequestSchema, Type.Null()]);

export const ReportRequestSchema = Type.Object({
  backend: Type.Optional(Type.String({ maxLength: 32 })),
  /** Why the worker runs on that backend (client/backend.ts: asked for, or the measured race). */
  backendReason: Type.Optional(Type.String({ maxLength: 300 })),
  /** Gradients buffered and not yet flushed. */
  buffered: Type.Optional(Count()),
  /** When buffering began (ms since the epoch), 0 when not buffering. */
  bufferedSince: Type.Optional(Type.Number({ minimum: 0 })),
  /** The last flush: gradients, the ack's version, whether it was a duplicate, when. */
  lastFlush: Type.Optional(Type.Object({
    count: Count(),
    version: Count(),
    duplicate: Type.Boolean(),
    at: Type.Number(),
  }, { additionalProperties: false })),
  examplesPerSec: Type.Optional(Type.Number({ minimum: 0 })),
  steps: Type.Optional(Count()),
  numTensors: Type.Optional(Count()),
  loss: Type.Optional(Type.Number()),
  state: Type.Optional(Type.String({ maxLength: 32 })),
}, { additionalProperties: false });
export type ReportRequest = Static<typeof ReportRequestSchema>;

/** GET /api/shards/:key/:index. The handler answers a wrong key or index with its own code. */
export const ShardParamsSchema = Type.Object({
  key: Type.String({ maxLength: 200 }),
  index: Type.String({ maxLength: 20 }),
}, { additionalProperties: false });
export type ShardParams = Static<typeof ShardParamsSchema>;

/** GET /api/cluster[?after=E&waitMs=T] (server/chain/plugin.ts). */
export const ClusterQuerySchema = Type.Object({
  after: Type.Optional(Type.String({ pattern: '^\\d{1,10}$' })),
  waitMs: Type.Optional(Type.String({ pattern: '^\\d{1,5}$' })),
}, { additionalProperties: false });
export type ClusterQuery = Static<typeof ClusterQuerySchema>;

// ---- PS -> worker answers (exactly what the PS sends) ----

const CodecNameSchema = Type.Union(CODEC_NAMES.map((name) => Type.Literal(name)));

export const JoinResponseSchema = Type.Object({
  workerId: WorkerId(),
  /** Proof of the id, to present in `resume` after a PS restart. */
  idTag: IdTag(),
  token: Type.String(),
  model: Type.String(),
  /** The PS's learning rate (workers in `local` buffer mode apply it to their own copy). */
  lr: Type.Number(),
  /** How workers buffer gradients while the PS is unreachable. */
  bufferMode: Type.Union([Type.Literal('frozen'), Type.Literal('local')]),
  /** The highest push sequence number the PS has applied for this id (0 for a new id). */
  lastSeq: Count(),
  layoutHash: Count(),
  layoutSize: Count(),
  batch: Type.Integer({ minimum: 1 }),
  pullEvery: Type.Integer({ minimum: 1 }),
  /**
   * Local steps H (client/local-phase.ts): H > 1 means take H steps at `lr` on an own copy, then
   * push their sum as one update, which the PS applies with its outer optimizer.
   */
  localSteps: Type.Integer({ minimum: 1 }),
  dataset: Type.String(),
  /** Identifies the shard set (data set, shard count, seed): the key of the worker's cache. */
  dataKey: Type.String(),
  shardCount: Count(),
  shards: Type.Array(Count()),
  /** WebSocket path; connect with ?token=... */
  wsPath: Type.String(),
  /** Push codecs this PS accepts (shared/codec/; float32 always); the worker picks one. */
  codecs: Type.Array(CodecNameSchema),
});
export type JoinResponse = Static<typeof JoinResponseSchema>;

export const ReportResponseSchema = Type.Object({ shards: Type.Array(Count()) });
export type ReportResponse = Static<typeof ReportResponseSchema>;

export const LeaveResponseSchema = Type.Object({ ok: Type.Literal(true) });
export type LeaveResponse = Static<typeof LeaveResponseSchema>;

/** WebSocket text messages from the PS (control only; data travels in binary frames). */
export const ControlMessageSchema = Type.Union([
  Type.Object({ type: Type.Literal('assign'), shards: Type.Array(Count()) }),
  /** Sent on connect: the PS's version and whether it wants the worker's copy of the weights. */
  Type.Object({ type: Type.Literal('hello'), version: Count(), wantsWeights: Type.Boolean() }),
]);
export type ControlMessage = Static<typeof ControlMessageSchema>;

export const NodeRoleSchema = Type.Union([Type.Literal('head'), Type.Literal('middle'), Type.Literal('tail'), Type.Literal('single')]);
export type NodeRole = Static<typeof NodeRoleSchema>;

/** GET /api/cluster on any node of a chain-replicated PS cluster (server/chain). */
export const ClusterInfoSchema = Type.Object({
  cluster: Type.String(),
  /** Bumped by every reconfiguration (a node joined or left). */
  epoch: Count(),
  replication: Type.Union([Type.Literal('sync'), Type.Literal('async'), Type.Literal('snapshot')]),
  /** strict: workers read weights from the tail; relaxed: from the node they write to. */
  reads: Type.Union([Type.Literal('strict'), Type.Literal('relaxed')]),
  /** The answering node's member name. */
  self: Type.String(),
  /** In chain order: head first. `version` is known for the answering node only (else null). */
  nodes: Type.Array(Type.Object({ name: Type.String(), url: Type.String(), role: NodeRoleSchema, version: Type.Union([Count(), Type.Null()]) })),
  head: Type.Union([Type.String(), Type.Null()]),
  tail: Type.Union([Type.String(), Type.Null()]),
  /**
   * The answering node's replication state (server/chain/replica.ts `replicaStatus`): these
   * fields and more, which change with the replica and are not part of the contract. role is
   * also `fenced` or `joining` here.
   */
  node: Type.Intersect([
    Type.Record(Type.String(), Type.Unknown()),
    Type.Object({ role: Type.String(), version: Count(), committed: Count(), fresh: Type.Boolean(), writable: Type.Boolean() }),
  ]),
});
export type ClusterInfo = Static<typeof ClusterInfoSchema>;

/** GET /api/mesh: how workers reach each other (client/mesh/). */
export const MeshConfigSchema = Type.Object({
  /** False when the PS runs with --mesh-peers 0 or its signaling server is not up. */
  enabled: Type.Boolean(),
  /** PeerJS signaling server: same host as the PS, this port, path and key. */
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  path: Type.String(),
  key: Type.String(),
  /** Open data channels each worker keeps (k). */
  peers: Count(),
  /** Gossip period during outages in `local` buffer mode; 0 = none. */
  gossipEveryMs: Type.Number({ minimum: 0 }),
  relay: Type.Boolean(),
  relayMaxLag: Type.Number({ minimum: 0 }),
});
export type MeshConfig = Static<typeof MeshConfigSchema>;

/**
 * GET /api/model: the model (shared/models.ts ModelSpec, whose layers are declared there),
 * its layout, the hyperparameters and the key that signs weights. Open objects (layers, the
 * layout's entries) are why the route has no response schema: serialization would drop fields.
 */
export const ModelInfoSchema = Type.Object({
  model: Type.Object({
    name: Type.String(),
    description: Type.String(),
    input: Type.Array(Type.Integer({ minimum: 1 }), { minItems: 3, maxItems: 3 }),
    classes: Type.Integer({ minimum: 1 }),
    layers: Type.Array(Type.Object({ kind: Type.String() })),
    defaults: Type.Object({ lr: Type.Number(), batch: Type.Integer({ minimum: 1 }) }),
  }),
  layout: Type.Object({
    hash: Count(),
    size: Count(),
    entries: Type.Array(Type.Object({ name: Type.String(), shape: Type.Array(Count()), offset: Count(), length: Count() })),
  }),
  hyperparameters: Type.Object({
    lr: Type.Number(), momentum: Type.Number(), batch: Type.Integer({ minimum: 1 }), pullEvery: Type.Integer({ minimum: 1 }), rule: Type.String(),
    /** Local steps H; with H > 1, `lr` is the workers' inner rate and `outer` the PS's optimizer. */
    localSteps: Type.Integer({ minimum: 1 }),
    outer: Type.Optional(Type.Object({ lr: Type.Number(), momentum: Type.Number(), nesterov: Type.Boolean() })),
  }),
  strategy: Type.String(),
  dataset: Type.String(),
  shards: Count(),
  /** Push codecs this PS accepts (shared/codec/). */
  codecs: Type.Array(CodecNameSchema),
  /** Workers verify weights relayed by peers with this key (shared/signing.ts). */
  weightsKey: Type.Object({ algorithm: Type.String(), publicKey: Type.String() }),
});
export type ModelInfo = Static<typeof ModelInfoSchema>;

/**
 * One worker in GET /api/status: the PS's view of it, then the fields of its last report
 * (ReportRequest) spread over it.
 */
const { state: _reportState, ...reportFields } = ReportRequestSchema.properties;
export const StatusWorkerSchema = Type.Object({
  ...reportFields,
  id: WorkerId(),
  /** The worker's own report when it sent one, else the PS's view (joined, connected, ...). */
  state: Type.String(),
  /** The PS's view of the session (joined, connected, disconnected), never taken from a report. */
  sessionState: Type.Optional(Type.String()),
  shards: Type.Array(Count()),
  pushes: Count(),
  lastStaleness: Count(),
  lastSeenMsAgo: Type.Number(),
  userAgent: Type.String(),
});
export type StatusWorker = Static<typeof StatusWorkerSchema>;

/**
 * GET /api/status. `strategy` holds the strategy's own status fields beside its name (open, so
 * the route has no response schema).
 */
/** A worker disconnected as a repeat offender and kept out (server/ps/pace.ts). */
export const KeptOutSchema = Type.Object({
  workerId: WorkerId(),
  address: Type.String(),
  /** The strike that tipped it: clipped, or the refusal's code. */
  reason: Type.String(),
  at: Type.Number(),
  until: Type.Number(),
});

/** What the PS did against untrusted workers (README, "Threat model"). */
export const RobustnessSchema = Type.Object({
  aggregator: Type.String(),
  /** Pushes the aggregator cut. */
  clipped: Count(),
  /** Current clipping radius, 0 when none. */
  radius: Type.Number(),
  /** Pushes clip's memory of excess cut further: their worker kept arriving past the radius. */
  excessLimited: Type.Optional(Count()),
  /** Pushes clip's direction check cut: their worker kept pointing against the consensus. */
  directionLimited: Type.Optional(Count()),
  /** Versions the output guard refused; the last good weights stayed. */
  versionsRefused: Count(),
  lastGuardRefusal: Type.Optional(Type.Object({ version: Count(), workerId: WorkerId(), seq: Count(), reason: Type.String() })),
  /** Sessions disconnected as repeat offenders since the PS started. */
  offenders: Count(),
  keptOut: Type.Array(KeptOutSchema),
});
export type Robustness = Static<typeof RobustnessSchema>;

export const StatusResponseSchema = Type.Object({
  model: Type.String(),
  dataset: Type.String(),
  layoutHash: Count(),
  version: Count(),
  updatesApplied: Count(),
  updatesPerSec: Type.Number(),
  uptimeSec: Type.Number(),
  strategy: Type.Intersect([Type.Record(Type.String(), Type.Unknown()), Type.Object({ name: Type.String() })]),
  workers: Type.Array(StatusWorkerSchema),
  robustness: Type.Optional(RobustnessSchema),
});
export type StatusResponse = Static<typeof StatusResponseSchema>;

/** One flush (gradients buffered during an outage) the PS handled. */
export const FlushRecordSchema = Type.Object({
  workerId: WorkerId(),
  seq: Count(),
  count: Count(),
  baseVersion: Count(),
  /** Version the ack reported. */
  version: Count(),
  staleness: Count(),
  duplicate: Type.Boolean(),
  at: Type.Number(),
});
export type FlushRecord = Static<typeof FlushRecordSchema>;

/** GET /api/flushes: the most recent flushes this process handled (bounded). */
export const FlushesResponseSchema = Type.Object({ flushes: Type.Array(FlushRecordSchema) });
export type FlushesResponse = Static<typeof FlushesResponseSchema>;

/** One test-set evaluation of GET /api/series. */
export const SeriesPointSchema = Type.Object({
  version: Count(),
  accuracy: Type.Number(),
  loss: Type.Number(),
  examples: Count(),
  /** Wall time of the evaluation in the thread. */
  ms: Type.Number(),
  /** Seconds since the server started. */
  t: Type.Number(),
  updates: Count(),
});
export type SeriesPoint = Static<typeof SeriesPointSchema>;

/** GET /api/series: the run's evaluations, oldest first; `startedAt` (ms since the epoch) is t = 0. */
export const SeriesResponseSchema = Type.Object({ model: Type.String(), dataset: Type.String(), startedAt: Type.Optional(Type.Number()), points: Type.Array(SeriesPointSchema) });
export type SeriesResponse = Static<typeof SeriesResponseSchema>;

/** GET /api/series?since=T: only the points with t > T (pollers ask for what they lack). */
export const SeriesQuerySchema = Type.Object({ since: Type.Optional(Type.String({ pattern: '^-?\\d{1,9}(\\.\\d{1,6})?$' })) }, { additionalProperties: false });

export function shardPath(dataKey: string, index: number): string {
  return `/api/shards/${encodeURIComponent(dataKey)}/${index}`;
}
