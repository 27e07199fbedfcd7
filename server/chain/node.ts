/**
 * `tabswarm node`: one PS node of a chain-replicated cluster. ZooKeeper (at `--zk`) decides
 * membership and order; every node of a cluster runs the same model on the same data with the
 * same secret. The first node records the configuration and a fresh run id in ZooKeeper, under
 * an ACL derived from the secret; every later node must match the one and takes the other.
 *
 * The node's recovery strategy is `chain(inner)` (strategy.ts): `server.strategy` names the inner
 * one (`none`, or `checkpoint` so that every node also checkpoints).
 *
 *   const node = await startChainNode({ zk: '127.0.0.1:2181', cluster: 'demo', replication: 'sync', secret, server: { model: 'mnist-mlp', strategy: 'checkpoint' } });
 *   node.url;          // where workers (and the other nodes) reach it
 *   await node.close();
 */
import { scrypt } from 'node:crypto';
import { TabswarmError } from '../../shared/errors.ts';
import { deriveLayout } from '../../shared/layout.ts';
import { buildServer, type BuildOptions, type Built } from '../app.ts';
import { resolveOptions } from '../config.ts';
import { newRunId } from '../ps/signer.ts';
import { zookeeperCoordination, type CoordinationAuth, type CoordinationClient } from '../coord/index.ts';
import { createStrategy } from '../strategies/index.ts';
import { COLD_WAIT_MS, Membership, clusterRoot } from './membership.ts';
import { ChainReplica, REPLICA_DEFAULTS, REPLICATION_MODES, type ReplicationMode } from './replica.ts';
import { chain } from './strategy.ts';

export interface ChainNodeOptions {
  /** ZooKeeper connection string, 'host:port,host:port[/chroot]'. */
  readonly zk: string;
  /** Cluster name: the nodes under one name form one chain. */
  readonly cluster: string;
  /** @default 'sync' */
  readonly replication?: ReplicationMode;
  /** @default 'relaxed' */
  readonly reads?: 'strict' | 'relaxed';
  /** `snapshot` mode: updates between whole-state shipments. @default 100 */
  readonly snapshotEvery?: number;
  /** `async` mode: most acknowledged updates not yet at the tail. @default 32 */
  readonly asyncWindow?: number;
  /**
   * ZooKeeper session timeout: how long a dead node keeps its place in the chain, i.e. the
   * floor of failover time, against false suspicion of a live node that stalls (GC, a loaded
   * machine) for longer. The server clamps it to [2, 20] ticks. @default 1500
   */
  readonly zkSessionMs?: number;
  /**
   * Remove a neighbour at once when its link drops and its port refuses connections (a crashed
   * process); otherwise only its session timeout removes it. @default true
   */
  readonly fastDetect?: boolean;
  /**
   * After every node died (a cold start, docs/chain.md): how long the chain waits for as many
   * nodes as it had before the node with the highest version may head it without them. Raise
   * it when nodes take longer to come back; a node whose checkpoint was published is waited for
   * regardless. @default 30000
   */
  readonly coldWaitMs?: number;
  /** Shared by every node (links, worker ids, weight tags). Required. */
  readonly secret: string;
  readonly port?: number;
  readonly host?: string;
  /** The URL other nodes and workers reach this node at, from the listen address. @default the address */
  readonly advertise?: (address: string) => string;
  /**
   * Options of the embedded PS (model, data set, lr, ...): must match the cluster's. `strategy`
   * is the strategy the chain wraps on this node. @default strategy 'none'
   */
  readonly server?: Omit<BuildOptions, 'chain' | 'strategyInstance' | 'secret'>;
}

export interface ChainNode {
  readonly built: Built;
  readonly url: string;
  readonly replica: ChainReplica;
  readonly coord: CoordinationClient;
  close(): Promise<void>;
}

/** What every node of a cluster must agree on, as recorded by its first node. */
interface ClusterConfig {
  model: string;
  dataset: string;
  layoutHash: number;
  seed: number;
  shards: number;
  replication: ReplicationMode;
  /**
   * The applied-push record's bounds (--record-horizon, --record-max): every replica must forget
   * the same workers at the same version, or a retry after a failover would be applied twice on
   * one node and refused on another.
   */
  recordHorizon: number;
  recordMax: number;
  /**
   * The run id (server/ps/signer.ts), fixed by the node that creates the cluster: part of the
   * weights signing key, so copies from another run under the same secret are refused.
   */
  run: string;
}

/**
 * The ZooKeeper digest credentials of a cluster, derived from its secret (docs/zookeeper.md,
 * "Access control"). scrypt, salted with the cluster's name: ZooKeeper stores the ACL's id,
 * base64(SHA-1(user:password)), where anyone allowed to read the ACL can see it, so the
 * password must not be a cheap function of the secret.
 */
export async function clusterAuth(secret: string, cluster: string): Promise<CoordinationAuth> {
  const key = await new Promise<Buffer>((resolve, reject) => scrypt(secret, `tabswarm-zk-digest:${cluster}`, 32, { N: 1 << 14, r: 8, p: 1 }, (err, k) => (err ? reject(err) : resolve(k))));
  return { user: 'tabswarm', password: key.toString('base64url'), root: clusterRoot(cluster) };
}

export async function startChainNode(o: ChainNodeOptions): Promise<ChainNode> {
  const replication = o.replication ?? 'sync';
  if (!REPLICATION_MODES.includes(replication)) throw new TabswarmError('CONFIG_INVALID', { option: '--replication', detail: `must be ${REPLICATION_MODES.join(', ')}; got '${replication}'` });
  const reads = o.reads ?? 'relaxed';
  if (reads !== 'strict' && reads !== 'relaxed') throw new TabswarmError('CONFIG_INVALID', { option: '--reads', detail: `must be strict or relaxed; got '${reads}'` });
  if (!o.secret) throw new TabswarmError('CONFIG_INVALID', { option: '--secret', detail: 'a cluster node needs the secret all nodes share (or TABSWARM_SECRET)' });
  const positive = (name: string, v: number | undefined, d: number) => {
    const x = v ?? d;
    if (!Number.isInteger(x) || x < 1) throw new TabswarmError('CONFIG_INVALID', { option: name, detail: `must be a positive integer; got ${x}` });
    return x;
  };
  const snapshotEvery = positive('--snapshot-every', o.snapshotEvery, REPLICA_DEFAULTS.snapshotEvery);
  const asyncWindow = positive('--async-window', o.asyncWindow, REPLICA_DEFAULTS.asyncWindow);
  const zkSessionMs = positive('--zk-session-ms', o.zkSessionMs, 1500);
  const coldWaitMs = positive('coldWaitMs', o.coldWaitMs, COLD_WAIT_MS);

  const options = resolveOptions({ ...o.server, secret: o.secret });
  const auth = await clusterAuth(o.secret, o.cluster);
  const coord = zookeeperCoordination(o.zk, { sessionTimeoutMs: zkSessionMs, connectTimeoutMs: 15000, auth });
  await coord.connect();
  let built: Built | undefined;
  try {
    const membership = new Membership(coord, o.cluster);
    membership.coldWaitMs = coldWaitMs;
    // A new cluster's run id: the operator's (--run-id), else a fresh one; a later node takes the cluster's.
    const run = await retrying(() => checkConfig(coord, membership.root, o.cluster, {
      model: options.model, dataset: options.dataset, layoutHash: deriveLayout(options.modelSpec).hash, seed: options.seed, shards: options.shards, replication,
      recordHorizon: options.recordHorizon, recordMax: options.recordMax,
      run: options.runId || newRunId(options.model, options.dataset, options.seed),
    }, options.runId !== undefined && options.runId !== ''));
    const replica = new ChainReplica(membership, { mode: replication, secret: o.secret, snapshotEvery, asyncWindow, historyLimit: REPLICA_DEFAULTS.historyLimit, fastDetect: o.fastDetect ?? REPLICA_DEFAULTS.fastDetect });
    const strategy = chain(createStrategy(options.strategy, options), replica);
    built = await buildServer({ ...o.server, secret: o.secret, runId: run, strategyInstance: strategy, chain: { replica, coord, cluster: o.cluster, reads } });
    membership.log = built.app.log;
    const address = await built.app.listen({ port: o.port ?? 0, host: o.host ?? '127.0.0.1' });
    const url = new URL(o.advertise ? o.advertise(address) : address).toString();
    await retrying(() => membership.join(url));
    const b = built;
    return {
      built: b, url, replica, coord,
      async close() {
        await b.app.close();
        await coord.close();
      },
    };
  } catch (err) {
    await built?.app.close().catch(() => {});
    await coord.close().catch(() => {});
    throw err;
  }
}

/**
 * Runs a start-up step again while ZooKeeper is only briefly unreachable or the first session
 * expired under it (a loaded machine): the client opens a new session by itself.
 */
async function retrying<T>(step: () => Promise<T>, attempts = 20): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await step();
    } catch (err) {
      const retryable = err instanceof TabswarmError && (err.code === 'COORD_SESSION_EXPIRED' || err.code === 'COORD_UNAVAILABLE');
      if (!retryable || i >= attempts) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Records the cluster's configuration (first node) or compares with it. The cluster's znodes
 * carry a digest ACL from its secret, so the secret itself is checked by ZooKeeper: a node with
 * another secret is refused every read and write (COORD_NO_AUTH), and nothing derived from the
 * secret is stored where it could be read. A cluster root someone else created first (open, or
 * under other credentials) is refused too: its members and chain could be written by others.
 */
async function checkConfig(coord: CoordinationClient, root: string, cluster: string, mine: ClusterConfig, runGiven: boolean): Promise<string> {
  const path = `${root}/config`;
  let theirs: ClusterConfig;
  try {
    await coord.ensure(root);
    if (!(await coord.isPrivate(root))) {
      throw new TabswarmError('CHAIN_CONFIG_MISMATCH', { cluster, detail: `its znode ${root} is not protected by this cluster's credentials (created by another deployment, or before ZooKeeper ACLs); remove it or use another --cluster name` });
    }
    if (!(await coord.exists(path))) {
      try {
        await coord.ensure(path, JSON.stringify(mine));
      } catch {
        // Another node created it first: compare with theirs below.
      }
    }
    theirs = JSON.parse((await coord.get(path)).data) as ClusterConfig;
  } catch (err) {
    if (err instanceof TabswarmError && err.code === 'COORD_NO_AUTH') {
      throw new TabswarmError('CHAIN_CONFIG_MISMATCH', { cluster, detail: 'the secret differs from the one its other nodes use (ZooKeeper refused its credentials)' });
    }
    throw err;
  }
  for (const key of Object.keys(mine) as (keyof ClusterConfig)[]) {
    if (key === 'run' && !runGiven) continue; // a fresh id proposed in case this node creates the cluster
    if (theirs[key] !== mine[key]) throw new TabswarmError('CHAIN_CONFIG_MISMATCH', { cluster, detail: `${key} is ${JSON.stringify(mine[key])} here but ${JSON.stringify(theirs[key])} in the cluster` });
  }
  return theirs.run;
}
