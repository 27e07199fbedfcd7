/**
 * Every knob of the embedded parameter server as a typed interface. Its defaults and the check
 * that refuses a bad value with a CONFIG_INVALID error naming the option come from the one
 * declaration in server/options/server.ts, which the CLI's parsing and --help read too.
 */
import { getModel, type ModelSpec } from '../shared/models.ts';
import { checkValues, defaultsOf } from './options/schema.ts';
import { PS_OPTIONS } from './options/server.ts';
import type { CheckpointOptions } from './strategies/checkpoint/options.ts';
import type { AggregatorOptions } from './ps/aggregate/types.ts';
import type { AbuseOptions } from './ps/admission.ts';

/** The checkpoint strategy's options live in strategies/checkpoint/options.ts, with their defaults. */
/** The admission, liveness and bounded-state options live in ps/admission.ts. */
export interface ServerOptions extends CheckpointOptions, AggregatorOptions, AbuseOptions {
  /** Bearer token of /api/admin/*. @default env TABSWARM_ADMIN_TOKEN, else random per process and printed at start */
  adminToken?: string;
  /** Model from the registry (shared/models.ts). @default 'fashion-cnn' */
  model: string;
  /** 'mnist' | 'fashion-mnist' | 'synthetic'. @default 'mnist' */
  dataset: string;
  /** Number of disjoint training shards handed to workers. @default 16 */
  shards: number;
  /** SGD learning rate. @default the model's (fashion-cnn: 0.01) */
  lr?: number;
  /** SGD momentum. @default 0 (the reference uses none) */
  momentum: number;
  /** Worker batch size. @default the model's (fashion-cnn: 32) */
  batch?: number;
  /** Workers pull fresh weights every this many steps. @default 1 */
  pullEvery: number;
  /** Seed of the initial weights and the shard permutation. @default 1 */
  seed: number;
  /** Test-set evaluation period in ms; 0 turns evaluation off. @default 5000 */
  evalEveryMs: number;
  /** Evaluate on the first N test examples. @default 10000 (the whole test set) */
  evalExamples: number;
  /** Recovery strategy (server/strategies/index.ts). @default 'none' */
  strategy: string;
  /** Stale-update rule: 'sum' | 'mean' | 'staleness' (server/ps/rules.ts). @default 'mean' */
  rule: string;
  /** Robust aggregation (server/ps/aggregate): 'none' | 'clip' | 'centered-clip' | 'trimmed-mean'. @default 'clip' */
  aggregator: string;
  /** Output guard: refuse a version whose weight norm passes this many times the current one; 0 = off. @default 2 */
  maxNormJump: number;
  /** Most gradients one push or flush may claim. @default 100000 */
  maxCount: number;
  /** Push codecs workers may use (shared/codec/); float32 is always accepted. @default all */
  codecs: readonly string[];
  /** Local steps H: > 1 makes the PS's optimizer Nesterov SGD on model deltas (DiLoCo). @default 1 */
  localSteps: number;
  /** The outer learning rate when localSteps > 1. @default 1 */
  outerLr: number;
  /** The outer Nesterov momentum when localSteps > 1. @default 0 */
  outerMomentum: number;
  /**
   * Secret for the HMAC tags on worker ids and weight copies, shared by every PS process of a
   * deployment so a restarted PS trusts what its predecessor issued. @default TABSWARM_SECRET,
   * else random per process (then nothing survives a restart: the log warns)
   */
  secret?: string;
  /**
   * The run this PS serves (letters, digits, '_', '.', '-'): part of the weights signing key,
   * so copies from another run under the same secret are refused. A chain node takes its
   * cluster's, fixed in ZooKeeper when the cluster was created. @default none
   */
  runId?: string;
  /**
   * What workers do with gradients while the PS is unreachable: 'frozen' sums gradients against
   * the last pulled weights (the reference); 'local' also applies them to the worker's own copy
   * (local SGD). Either way the buffer is a running sum. @default 'frozen'
   */
  bufferMode: 'frozen' | 'local';
  /** Stateless strategy: after the first worker connects, wait this long for copies of the weights before adopting the best. @default 3000 */
  adoptWindowMs: number;
  /**
   * Worker mesh (README, "Peer-to-peer mesh"): open data channels each worker keeps to other
   * workers, through the PeerJS signaling server started beside the PS. 0 turns the mesh off.
   * @default 3
   */
  meshPeers: number;
  /** Port of the PeerJS signaling server. @default 0 (a free port, published in GET /api/mesh) */
  meshPort: number;
  /** `local` buffer mode: average weights with one peer every this many ms during an outage; 0 = no gossip. @default 2000 */
  gossipEveryMs: number;
  /** While the PS is up, workers take signed weights from peers first and pull from the PS only on a miss. @default 'off' */
  relay: 'on' | 'off';
  /** Relay: a peer's copy is good enough if at most this many versions behind the worker's last ack. @default 8 */
  relayMaxLag: number;
  /** Most concurrent workers. @default 1024 */
  maxWorkers: number;
  /** A worker with no socket and no request for this long is dropped and its shards reassigned. @default 30000 */
  idleMs: number;
}

/** The defaults, read from the one declaration of the options (server/options/server.ts). */
export const DEFAULTS: ServerOptions = defaultsOf(PS_OPTIONS);

export interface ResolvedOptions extends ServerOptions {
  lr: number;
  batch: number;
  modelSpec: ModelSpec;
}

/**
 * Fills in the defaults and checks every value against its declaration (range, allowed values),
 * so options given in code (`buildServer({ shards: 0 })`) are refused as the command line's are:
 * CONFIG_INVALID naming the option. The strategy name is checked where it is built
 * (createStrategy), since a chain node or a ready-made strategy instance replaces it.
 */
export function resolveOptions(partial: Partial<ServerOptions>): ResolvedOptions {
  const o = { ...DEFAULTS, ...stripUndefined(partial) };
  checkValues(PS_OPTIONS, o, { skip: ['strategy'] });
  const modelSpec = getModel(o.model);
  // The model's defaults are the only ones the declaration cannot hold.
  const lr = o.lr ?? modelSpec.defaults.lr;
  const batch = o.batch ?? modelSpec.defaults.batch;
  checkValues(PS_OPTIONS, { lr, batch });
  return { ...o, lr, batch, modelSpec };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
