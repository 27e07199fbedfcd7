/**
 * Every knob of the embedded parameter server, with its default and the check that refuses a
 * bad value with a CONFIG_INVALID error naming the option.
 */
import { TabswarmError } from '../shared/errors.ts';
import { getModel, type ModelSpec } from '../shared/models.ts';
import { DATASET_NAMES } from './data.ts';
import { getRule } from './ps/rules.ts';
import { CHECKPOINT_DEFAULTS, validateCheckpointOptions, type CheckpointOptions } from './strategies/checkpoint/options.ts';

/** The checkpoint strategy's options live in strategies/checkpoint/options.ts, with their defaults. */
export interface ServerOptions extends CheckpointOptions {
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
  /**
   * Secret for the HMAC tags on worker ids and weight copies, shared by every PS process of a
   * deployment so a restarted PS trusts what its predecessor issued. @default TABSWARM_SECRET,
   * else random per process (then nothing survives a restart: the log warns)
   */
  secret?: string;
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

export const DEFAULTS: ServerOptions = {
  ...CHECKPOINT_DEFAULTS,
  model: 'fashion-cnn',
  dataset: 'mnist',
  shards: 16,
  momentum: 0,
  pullEvery: 1,
  seed: 1,
  evalEveryMs: 5000,
  evalExamples: 10000,
  strategy: 'none',
  rule: 'mean',
  adoptWindowMs: 3500,
  bufferMode: 'frozen',
  maxWorkers: 1024,
  idleMs: 30000,
  meshPeers: 3,
  meshPort: 0,
  gossipEveryMs: 2000,
  relay: 'off',
  relayMaxLag: 8,
};

export interface ResolvedOptions extends ServerOptions {
  lr: number;
  batch: number;
  modelSpec: ModelSpec;
}

export function resolveOptions(partial: Partial<ServerOptions>): ResolvedOptions {
  const o = { ...DEFAULTS, ...stripUndefined(partial) };
  const modelSpec = getModel(o.model);
  const bad = (option: string, detail: string) => new TabswarmError('CONFIG_INVALID', { option, detail });
  if (!(DATASET_NAMES as readonly string[]).includes(o.dataset)) throw bad('dataset', `unknown data set '${o.dataset}'; known: ${DATASET_NAMES.join(', ')}`);
  getRule(o.rule);
  validateCheckpointOptions(o);
  if (o.adminToken !== undefined && o.adminToken.length < 16) throw bad('adminToken', 'must be at least 16 characters');
  if (o.bufferMode !== 'frozen' && o.bufferMode !== 'local') throw bad('bufferMode', `must be 'frozen' or 'local', got '${o.bufferMode}'`);
  if (o.relay !== 'on' && o.relay !== 'off') throw bad('relay', `must be 'on' or 'off', got '${o.relay}'`);
  if (o.secret !== undefined && o.secret.length < 16) throw bad('secret', 'must be at least 16 characters');
  const lr = o.lr ?? modelSpec.defaults.lr;
  const batch = o.batch ?? modelSpec.defaults.batch;
  if (!(lr > 0 && Number.isFinite(lr))) throw bad('lr', `must be a positive number, got ${lr}`);
  if (!(o.momentum >= 0 && o.momentum < 1)) throw bad('momentum', `must be in [0, 1), got ${o.momentum}`);
  const ints: [string, number, number][] = [
    ['batch', batch, 1], ['shards', o.shards, 1], ['pullEvery', o.pullEvery, 1], ['seed', o.seed, 0],
    ['evalEveryMs', o.evalEveryMs, 0], ['evalExamples', o.evalExamples, 1], ['maxWorkers', o.maxWorkers, 1], ['idleMs', o.idleMs, 100], ['adoptWindowMs', o.adoptWindowMs, 0],
    ['meshPeers', o.meshPeers, 0], ['meshPort', o.meshPort, 0], ['gossipEveryMs', o.gossipEveryMs, 0], ['relayMaxLag', o.relayMaxLag, 0],
  ];
  for (const [name, value, min] of ints) if (!Number.isInteger(value) || value < min) throw bad(name, `must be an integer >= ${min}, got ${value}`);
  return { ...o, lr, batch, modelSpec };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
