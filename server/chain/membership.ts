/**
 * Who is in the chain, in which order, at which epoch: ZooKeeper decides.
 *
 * Each node registers an EPHEMERAL_SEQUENTIAL znode under `<root>/members` holding its URL;
 * registration order is chain order, so a new or restarted node always enters at the tail.
 * The configuration in force is the znode `<root>/chain`: `{ epoch, nodes }`. Whenever the live
 * members differ from it, any node that notices writes the live list with epoch + 1 by
 * compare-and-set (a lost race re-reads and agrees), so every reconfiguration bumps the epoch
 * exactly once and every node acts on the same numbered configuration.
 *
 * Restart after every node died (docs/chain.md, "Cold start"): each node registers with the
 * version its store holds (a restored checkpoint), and every node publishes the newest version
 * it made durable in `<root>/durable` (a maximum, by compare-and-set). The configuration
 * records whether the chain is `warm` (its head holds the chain's state). While it is warm a
 * new configuration keeps the survivors in their order and appends newcomers; once no member
 * of a warm configuration is left (cold), the live members are ordered by their version,
 * highest first, and the chain is warm again only when (1) that head's version reaches the
 * published durable version, and (2) as many nodes (distinct URLs) as the last warm
 * configuration had are back, or `coldWaitMs` has passed since the chain went cold. (1) means
 * a node with an older checkpoint never heads over a newer one some node published; (2) covers
 * a checkpoint written just before a crash and not yet published. Until then the nodes wait,
 * refusing reads and writes.
 *
 * No stale head after a mass expiry (issue 13): the head records the committed version in
 * `<root>/committed` before it acks (committed.ts). A node without trusted state made head of a
 * warm chain below it, or below a live member's version, turns the chain cold instead; a cold
 * chain never warms on a fresh node (version 0) while that version is above 0.
 *
 * Session handling, the fencing half of split-brain safety: 'disconnected' (ZooKeeper silent
 * for 2/3 of the session timeout) makes the node suspect itself at once, 'expired' fences it
 * (its znode is gone, so another node may be head); a new session re-registers the node as a
 * new member at the tail, which takes a fresh state transfer.
 */
import { EventEmitter } from 'node:events';
import type { FastifyBaseLogger } from 'fastify';
import { TabswarmError } from '../../shared/errors.ts';
import type { Coordination, SessionEvent } from '../coord/index.ts';
import { CommittedRecord } from './committed.ts';

export interface ChainNodeInfo {
  /** The member znode's name: unique per registration (a restarted node gets a new one). */
  readonly name: string;
  /** Base URL of the node's HTTP server (workers, /api/cluster, the /chain link). */
  readonly url: string;
  /** The store version the node held when it registered (a restored checkpoint after a restart). */
  readonly version: number;
}

export interface ChainView {
  readonly epoch: number;
  readonly nodes: readonly ChainNodeInfo[];
  /** The head holds the chain's state; false while a cold start waits for the newest checkpoint. */
  readonly warm: boolean;
  /** While cold: since when (ms since 1970, the clock of the node that noticed), and how many nodes it waits for. */
  readonly cold?: { readonly since: number; readonly expect: number };
  /**
   * Set while the head is the one the cold rule chose (highest version, every floor checked):
   * it may serve the state it holds though it registered anew (replica.ts, committed.ts).
   */
  readonly vetted?: true;
}

/** The znode under which a cluster keeps everything (its config, members, chain, durable version). */
export function clusterRoot(cluster: string): string {
  return `/tabswarm/clusters/${cluster}`;
}

/** How long a cold chain waits for the nodes of its last warm configuration. @default 30000 */
export const COLD_WAIT_MS = 30000;

/**
 * The next configuration from the one in force and the live members (registration order): see
 * the header. Pure, so the ordering rule is unit-tested on its own.
 */
export function nextOrder(chain: ChainView, live: readonly ChainNodeInfo[], durable: number, now: number, coldWaitMs = COLD_WAIT_MS, committed = 0): Omit<ChainView, 'epoch'> {
  const byName = new Map(live.map((n) => [n.name, n]));
  const survivors = chain.nodes.map((n) => byName.get(n.name)).filter((n): n is ChainNodeInfo => n !== undefined);
  if (chain.warm && survivors.length > 0) {
    const kept = new Set(survivors.map((n) => n.name));
    const nodes = [...survivors, ...live.filter((n) => !kept.has(n.name))];
    return chain.vetted && nodes[0]!.name === chain.nodes[0]?.name ? { nodes, warm: true, vetted: true } : { nodes, warm: true };
  }
  // Cold: the highest version first (sort is stable: ties keep registration order).
  const nodes = [...live].sort((a, b) => b.version - a.version);
  const urls = (list: readonly ChainNodeInfo[]) => new Set(list.map((n) => n.url)).size;
  const cold = chain.cold ?? { since: now, expect: chain.warm ? urls(chain.nodes) : 0 };
  const head = nodes[0];
  // (3) A head below the recorded committed version lacks acknowledged updates: it may still be
  // the best left (a checkpoint, every process having died), but never a fresh node (version 0).
  const warm = head !== undefined && head.version >= durable && (urls(nodes) >= cold.expect || now - cold.since >= coldWaitMs) && (head.version >= committed || head.version > 0);
  return warm ? { nodes, warm, vetted: true } : { nodes, warm, cold };
}

export type Role = 'head' | 'middle' | 'tail' | 'single';

export function roleOf(view: ChainView, name: string): Role | undefined {
  const i = view.nodes.findIndex((n) => n.name === name);
  if (i < 0) return undefined;
  if (view.nodes.length === 1) return 'single';
  return i === 0 ? 'head' : i === view.nodes.length - 1 ? 'tail' : 'middle';
}

export function neighbours(view: ChainView, name: string): { predecessor?: ChainNodeInfo; successor?: ChainNodeInfo } {
  const i = view.nodes.findIndex((n) => n.name === name);
  if (i < 0) return {};
  return { predecessor: view.nodes[i - 1], successor: view.nodes[i + 1] };
}

export interface MembershipEvents {
  /** A new configuration is in force (a higher epoch). */
  view: [ChainView];
  /** 'suspect': ZooKeeper silent, maybe no longer a member; 'fenced': the session expired; 'clear': connected again, same session. */
  session: ['suspect' | 'fenced' | 'clear', string];
  /** Registered anew (first start, or after an expiry): the node must take a fresh state. */
  registered: [string];
  /** The committed version recorded in ZooKeeper rose (committed.ts). */
  recorded: [number];
}

export class Membership extends EventEmitter<MembershipEvents> {
  readonly root: string;
  private current: ChainView = { epoch: 0, nodes: [], warm: false };
  /** The version this node's store holds, published with each registration. */
  versionOf: () => number = () => 0;
  private publishing: Promise<void> = Promise.resolve();
  private coldTimer: ReturnType<typeof setTimeout> | undefined;
  /** How long a cold chain waits for the nodes of its last warm configuration. */
  coldWaitMs = COLD_WAIT_MS;
  private published = -1;
  private me: string | undefined;
  private url = '';
  private running: Promise<void> | undefined;
  private dirty = false;
  private registering = false;
  private readonly watching = new Set<'members' | 'chain'>();
  private stopped = false;
  private readonly offSession: () => void;

  /** Set by whoever builds the server (the node's logger exists only then). */
  log: Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'> = { info() {}, warn() {}, error() {} } as never;
  /** The highest committed version in ZooKeeper (`<root>/committed`); the head raises it. */
  readonly committed: CommittedRecord;
  /** The committed version as the last pass read it. */
  committedSeen = 0;

  constructor(private readonly coord: Coordination, cluster: string) {
    super();
    if (!/^[\w.-]{1,64}$/.test(cluster)) throw new TabswarmError('CONFIG_INVALID', { option: '--cluster', detail: `'${cluster}' must be 1-64 letters, digits, '_', '.' or '-'` });
    this.root = clusterRoot(cluster);
    this.committed = new CommittedRecord(coord, `${this.root}/committed`, () => this.log, (v) => this.emit('recorded', v));
    this.offSession = coord.onSession((e) => this.onSession(e));
  }

  get view(): ChainView {
    return this.current;
  }

  /** This node's member name ('' before it registered). */
  get name(): string {
    return this.me ?? '';
  }

  /**
   * Registers this node (its URL as data) and starts following the chain. Safe to call again
   * if it failed: only once it succeeded does an expiry re-register by itself.
   */
  async join(url: string): Promise<void> {
    await this.coord.ensure(`${this.root}/chain`, JSON.stringify({ epoch: 0, nodes: [], warm: false } satisfies ChainView));
    await this.publishing; // the cold-start rule must see our durable version before our registration
    await this.register(url);
    this.url = url;
  }

  private async register(url: string): Promise<void> {
    const version = this.versionOf();
    this.me = await this.coord.register(`${this.root}/members`, JSON.stringify({ url, version }), 'node');
    this.log.info({ member: this.me, version }, 'registered in the chain');
    this.emit('registered', this.me);
    await this.reconcile();
  }

  /**
   * Records that `version` is durable on this node (restorable after a crash): `<root>/durable`
   * keeps the highest any node reported. Serialised and retried on a lost compare-and-set race;
   * a failure is logged, and the next report tries again.
   */
  publishDurable(version: number): Promise<void> {
    if (version <= this.published) return this.publishing;
    this.published = version;
    this.publishing = this.publishing.then(() => this.raiseDurable(version)).catch((err: unknown) => {
      this.published = -1;
      this.log.warn({ err: (err as Error).message, version }, 'could not publish the durable version');
    });
    return this.publishing;
  }

  private async raiseDurable(version: number): Promise<void> {
    const path = `${this.root}/durable`;
    await this.coord.ensure(this.root);
    for (let attempt = 0; attempt < 20; attempt++) {
      if (!(await this.coord.exists(path))) {
        try {
          await this.coord.ensure(path, JSON.stringify({ version }));
        } catch {
          // Created meanwhile by another node: compare below.
        }
      }
      const stored = await this.coord.get(path);
      if ((JSON.parse(stored.data) as { version: number }).version >= version) return;
      try {
        await this.coord.set(path, JSON.stringify({ version }), stored.version);
        return;
      } catch (err) {
        if (!(err instanceof TabswarmError && err.code === 'COORD_VERSION_CONFLICT')) throw err;
      }
    }
  }

  /** The highest version any node of the cluster made durable (0 when none reported). */
  private async durable(): Promise<number> {
    const path = `${this.root}/durable`;
    if (!(await this.coord.exists(path))) return 0;
    return (JSON.parse((await this.coord.get(path)).data) as { version: number }).version;
  }

  /**
   * Removes a member whose process is gone: a neighbour saw its link drop and its port refuse
   * connections, the signature of a crashed process rather than a slow one. ZooKeeper would
   * drop it anyway once its session expires; this only makes it happen now. A member removed
   * wrongly notices (above) and re-registers, so the worst case is a state transfer.
   */
  async removeDead(name: string): Promise<boolean> {
    return this.coord.remove(`${this.root}/members/${name}`);
  }

  /** Registers again after an expiry, retrying until it succeeds (or the node stops). */
  private async reregister(): Promise<void> {
    if (this.registering) return;
    this.registering = true;
    const generation = this.coord.session().generation;
    try {
      await this.reregisterLoop(generation);
    } finally {
      this.registering = false;
    }
  }

  private async reregisterLoop(generation: number): Promise<void> {
    while (!this.stopped && this.coord.session().generation === generation) {
      try {
        return await this.register(this.url);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 're-registration failed; retrying');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /** Re-reads members and chain, serialised: one pass at a time, re-run if asked meanwhile. */
  reconcile(): Promise<void> {
    if (this.running) {
      this.dirty = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.dirty = false;
        try {
          await this.pass();
        } catch (err) {
          if (this.stopped) return;
          // ZooKeeper unreachable or the session changed under us: the session events say what
          // to do; try again shortly so a configuration change is not missed.
          this.log.warn({ err: (err as Error).message }, 'chain reconcile failed; retrying');
          await new Promise((r) => setTimeout(r, 200));
          this.dirty = true;
        }
      } while (this.dirty && !this.stopped);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * One watch per path at a time: ZooKeeper watches are one-shot, and setting a new one on every
   * pass (a reconcile storm) would pile up listeners that only fire on the next change.
   */
  private watcher(path: 'members' | 'chain'): (() => void) | undefined {
    if (this.watching.has(path)) return undefined;
    this.watching.add(path);
    return () => {
      this.watching.delete(path);
      void this.reconcile();
    };
  }

  /**
   * `read` with this path's watch when none is pending. A read that fails sets no watch (the
   * coordination client cancels it), so the path is free to be watched by the next pass. Kept
   * marked, it was never watched again: a node whose pass failed once (ZooKeeper slow, a session
   * expiring under load) missed every later membership change and never took part in a
   * failover again (seen: a chain with its head SIGKILLed kept its old epoch until the dead
   * node came back).
   */
  private async watched<T>(path: 'members' | 'chain', read: (watcher: (() => void) | undefined) => Promise<T>): Promise<T> {
    const watcher = this.watcher(path);
    try {
      return await read(watcher);
    } catch (err) {
      if (watcher) this.watching.delete(path);
      throw err;
    }
  }

  private async pass(): Promise<void> {
    // The registration this pass can judge: one made before its reads (a member list read
    // before our own create cannot show it, and must not be taken as our removal).
    const mine = this.me;
    const members = await this.watched('members', (w) => this.coord.members(`${this.root}/members`, w));
    const chainPath = `${this.root}/chain`;
    const stored = await this.watched('chain', (w) => this.coord.get(chainPath, w));
    const chain = JSON.parse(stored.data) as ChainView;
    const live: ChainNodeInfo[] = members.map((m) => {
      const data = JSON.parse(m.data) as { url: string; version?: number };
      return { name: m.name, url: data.url, version: data.version ?? 0 };
    });
    if (mine && mine === this.me && this.url && !live.some((n) => n.name === mine) && this.coord.session().state === 'connected') {
      // Our registration is gone while our session lives: a neighbour found this node's port
      // closed and removed it (see removeDead). Act as if fenced, and enter again at the tail.
      this.me = undefined;
      this.emit('session', 'fenced', `registration ${mine} was removed from the chain`);
      void this.reregister();
    }
    this.committedSeen = Math.max(this.committedSeen, await this.committed.read());
    const order = nextOrder(chain, live, await this.durable(), Date.now(), this.coldWaitMs, this.committedSeen);
    if (order.cold && !this.coldTimer) {
      // Nothing in ZooKeeper changes when the wait runs out: look again then.
      this.coldTimer = setTimeout(() => {
        this.coldTimer = undefined;
        void this.reconcile();
      }, Math.max(50, order.cold.since + this.coldWaitMs - Date.now() + 50));
      this.coldTimer.unref();
    }
    const same = order.warm === chain.warm && order.vetted === chain.vetted && order.nodes.length === chain.nodes.length && order.nodes.every((n, i) => n.name === chain.nodes[i]!.name);
    if (!same) {
      const next: ChainView = { epoch: chain.epoch + 1, ...order };
      try {
        await this.coord.set(chainPath, JSON.stringify(next), stored.version);
        this.log.info({ epoch: next.epoch, nodes: next.nodes.map((n) => n.name), warm: next.warm }, 'chain reconfigured');
      } catch (err) {
        if (!(err instanceof TabswarmError && err.code === 'COORD_VERSION_CONFLICT')) throw err;
      }
      this.dirty = true; // read back what is in force now
      return;
    }
    if (chain.epoch > this.current.epoch) {
      this.current = chain;
      this.emit('view', chain);
    }
  }

  /**
   * Turns the warm configuration `view` cold (compare-and-set on its epoch): its head may not
   * serve (committed.ts mustNotHead), so the highest version must head instead.
   */
  async goCold(view: ChainView): Promise<void> {
    const path = `${this.root}/chain`;
    try {
      const stored = await this.coord.get(path);
      const chain = JSON.parse(stored.data) as ChainView;
      if (chain.epoch !== view.epoch || !chain.warm) return;
      const next: ChainView = { epoch: chain.epoch + 1, nodes: chain.nodes, warm: false, cold: { since: Date.now(), expect: new Set(chain.nodes.map((n) => n.url)).size } };
      await this.coord.set(path, JSON.stringify(next), stored.version);
      this.log.warn({ epoch: next.epoch }, 'chain turned cold: its head holds less than the committed version or a live member');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not turn the chain cold; reconciling');
    }
    void this.reconcile();
  }

  private onSession(e: SessionEvent): void {
    if (this.stopped) return;
    if (e.state === 'disconnected') this.emit('session', 'suspect', e.reason ?? 'ZooKeeper silent');
    else if (e.state === 'expired') this.emit('session', 'fenced', `ZooKeeper session ${e.session} expired (${e.reason ?? 'timeout'})`);
    else if (e.state === 'connected') {
      if (e.previous && this.url) {
        // A new session after an expiry: our znode is gone; enter again as a new member.
        this.me = undefined;
        void this.reregister();
      } else {
        this.emit('session', 'clear', 'connected');
        void this.reconcile();
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.committed.stop();
    if (this.coldTimer) clearTimeout(this.coldTimer);
    this.offSession();
    await this.running?.catch(() => {});
  }
}
