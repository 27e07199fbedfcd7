/**
 * One node's part in chain replication: the RecoveryStrategy the PS loop calls, plus the links
 * to its neighbours. The loop (ps/service.ts) stays the only place that validates and applies a
 * worker's push; here the head numbers nothing itself (the store's version is the sequence
 * number), forwards each applied update down the chain, and in `sync` mode holds the worker's
 * ack until the tail has applied it.
 *
 * Invariants:
 * - Every replica applies the same updates in the same version order, so replicas that have
 *   applied up to version v hold bitwise the same weights (same floats, same operations).
 * - Down the chain each node's history is a prefix of its predecessor's. A node keeps what it
 *   forwarded until the tail's cumulative CHAIN_ACK covers it, and a new link starts with the
 *   successor's version, so a changed successor gets exactly what it lacks.
 * - Frames carry the link's epoch; a node refuses links and frames from another epoch, so an
 *   old head that lost its ZooKeeper session can never write into the new chain.
 * - A node that (re)registers enters at the tail without trusting its own state: its
 *   predecessor sends a STATE (weights, velocity, version, applied record, history) first.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import { TabswarmError } from '../../shared/errors.ts';
import { ChainMsg } from '../../shared/protocol.ts';
import type { ParameterServer } from '../ps/service.ts';
import type { AppliedUpdate, RecoveryStrategy, StrategyContext } from '../ps/strategy.ts';
import { decodeChainFrame, encodeAck, encodeForward, encodeState, type ForwardFrame, type HistoryEntry, type StateFrame } from './frames.ts';
import { OutLink, linkUrl, verifyLinkProof, type LinkHello } from './link.ts';
import { neighbours, roleOf, type ChainView, type Membership, type Role } from './membership.ts';

export type ReplicationMode = 'sync' | 'async' | 'snapshot';
export const REPLICATION_MODES: readonly ReplicationMode[] = ['sync', 'async', 'snapshot'];

export interface ReplicaOptions {
  readonly mode: ReplicationMode;
  /** Cluster secret: proves links come from this cluster's nodes. */
  readonly secret: string;
  /** `snapshot` mode: the head ships its whole state every this many updates. @default 100 */
  readonly snapshotEvery: number;
  /**
   * `async` mode: most updates the head may have acknowledged but not yet seen applied at the
   * tail; at the limit, acks wait (backpressure). It bounds what a head failure can lose.
   * @default 32
   */
  readonly asyncWindow: number;
  /** History entries (worker, seq per version) kept for verification and sent with STATE. @default 131072 */
  readonly historyLimit: number;
  /**
   * When a link to a neighbour drops abnormally and its port then refuses connections (a
   * crashed process, not a slow one), remove its registration at once instead of waiting for
   * its ZooKeeper session to expire. @default true
   */
  readonly fastDetect: boolean;
}

export const REPLICA_DEFAULTS = { snapshotEvery: 100, asyncWindow: 32, historyLimit: 1 << 17, fastDetect: true } as const;

interface Forwarded {
  readonly version: number;
  readonly bytes: Uint8Array;
}

interface Waiter {
  readonly version: number;
  resolve(): void;
  reject(err: Error): void;
}

/** What /api/cluster and /api/status show of this node. */
export interface ReplicaStatus {
  readonly name: string;
  readonly role: Role | 'joining' | 'fenced';
  readonly epoch: number;
  readonly mode: ReplicationMode;
  readonly version: number;
  /** Highest version known applied at the tail (what a head failure cannot lose). */
  readonly committed: number;
  /** Forwarded, not yet acknowledged by the tail. */
  readonly inFlight: number;
  readonly fresh: boolean;
  readonly writable: boolean;
  readonly successorLinked: boolean;
  readonly predecessorLinked: boolean;
  readonly stateTransfers: { readonly sent: number; readonly received: number };
}

export class ChainReplica implements RecoveryStrategy {
  readonly name = 'chain';
  private ps!: ParameterServer;
  private log!: FastifyBaseLogger;
  private view: ChainView = { epoch: 0, nodes: [] };
  private role: Role | undefined;
  /** True until this node holds state the chain agrees on (set again on every registration). */
  private fresh = true;
  private suspect = false;
  private fenced = false;
  private out: OutLink | undefined;
  private pred: { socket: WebSocket; from: string; epoch: number } | undefined;
  private forwarded: Forwarded[] = [];
  private waiters: Waiter[] = [];
  private windowWaiters: (() => void)[] = [];
  private committedVersion = 0;
  private history: HistoryEntry[] = [];
  private historyStart = 1;
  private sent = 0;
  private received = 0;
  private stopped = false;
  private readonly viewWaiters = new Set<() => void>();

  constructor(private readonly membership: Membership, private readonly o: ReplicaOptions) {
    membership.on('view', (v) => this.onView(v));
    membership.on('session', (what, why) => this.onSession(what, why));
    membership.on('registered', () => this.onRegistered());
  }

  /** Wires the PS whose store this node replicates (buildServer calls it before start). */
  attach(ps: ParameterServer): void {
    this.ps = ps;
  }

  async start(ctx: StrategyContext): Promise<void> {
    this.log = ctx.log;
  }

  get currentView(): ChainView {
    return this.view;
  }

  // ---- the PS loop's hooks --------------------------------------------------------------

  admitWrite(): void {
    // A head that may have lost its session must not ack on its own (async, snapshot). In sync
    // mode the chain itself fences it: no ack without the tail, and the tail refuses links of
    // an old epoch; so a short ZooKeeper hiccup costs sync mode nothing.
    if (this.fenced || (this.suspect && this.o.mode !== 'sync')) throw new TabswarmError('CHAIN_FENCED', { node: this.membership.name || 'unregistered', reason: this.fenced ? 'its ZooKeeper session expired' : 'ZooKeeper is not answering, so it may not be head any more' });
    if (this.role !== 'head' && this.role !== 'single') {
      throw new TabswarmError('CHAIN_NOT_HEAD', { node: this.membership.name || 'unregistered', epoch: this.view.epoch, head: this.view.nodes[0]?.url ?? 'none yet' });
    }
  }

  admitRead(): void {
    if (this.fresh) throw new TabswarmError('CHAIN_NOT_READY', { node: this.membership.name || 'unregistered', epoch: this.view.epoch });
  }

  afterApply(u: AppliedUpdate): void | Promise<void> {
    this.remember(u.workerId, u.seq, u.version);
    if (this.o.mode === 'snapshot') {
      if (u.version % this.o.snapshotEvery === 0) this.shipState();
      return;
    }
    if (this.role === 'single') {
      this.commit(u.version); // alone: the head is the tail
      return;
    }
    if (this.role !== 'head') return; // admitWrite let it in just before a reconfiguration
    const bytes = encodeForward(this.ps.layout.hash, { epoch: this.view.epoch, version: u.version, workerId: u.workerId, seq: u.seq, count: u.count, baseVersion: u.baseVersion, flags: u.flags ?? 0, grad: u.grad });
    this.forwarded.push({ version: u.version, bytes });
    if (this.out?.ready) this.sendForward(bytes);
    if (this.o.mode === 'sync') return this.durable(u.version);
    if (this.forwarded.length > this.o.asyncWindow) return new Promise<void>((r) => this.windowWaiters.push(r));
  }

  durable(version: number): void | Promise<void> {
    if (this.o.mode !== 'sync' || version <= this.committedVersion) return;
    return new Promise<void>((resolve, reject) => this.waiters.push({ version, resolve, reject }));
  }

  wantsWeights(): boolean {
    return false;
  }

  status(): Record<string, unknown> {
    return { ...this.replicaStatus() };
  }

  replicaStatus(): ReplicaStatus {
    return {
      name: this.membership.name,
      role: this.fenced ? 'fenced' : this.role ?? 'joining',
      epoch: this.view.epoch,
      mode: this.o.mode,
      version: this.ps.store.version,
      committed: this.committedVersion,
      inFlight: this.forwarded.length,
      fresh: this.fresh,
      writable: !this.fenced && !(this.suspect && this.o.mode !== 'sync') && (this.role === 'head' || this.role === 'single'),
      successorLinked: this.out?.ready ?? false,
      predecessorLinked: this.pred !== undefined,
      stateTransfers: { sent: this.sent, received: this.received },
    };
  }

  /** (version, worker, seq) of the applied updates this node remembers, oldest first. */
  appliedHistory(): { start: number; entries: readonly HistoryEntry[] } {
    return { start: this.historyStart, entries: this.history };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.out?.close(1001, 'node stopping');
    this.pred?.socket.close(1001, 'node stopping');
    this.failWaiters(new TabswarmError('PS_SHUTTING_DOWN'));
    await this.membership.stop();
  }

  // ---- configuration changes ------------------------------------------------------------

  private onView(view: ChainView): void {
    if (this.stopped) return;
    this.view = view;
    for (const w of this.viewWaiters) w();
    const me = this.membership.name;
    this.role = roleOf(view, me);
    const { successor } = neighbours(view, me);
    this.log.info({ epoch: view.epoch, role: this.role ?? 'not a member', nodes: view.nodes.map((n) => n.name) }, 'chain view');
    // Links belong to an epoch: a new configuration re-establishes both ends, and the new
    // handshake tells each predecessor exactly what its successor lacks.
    if (this.pred && this.pred.epoch !== view.epoch) {
      this.pred.socket.close(4023, `CHAIN_STALE_EPOCH: link of epoch ${this.pred.epoch}; now ${view.epoch}`);
      this.pred = undefined;
    }
    this.out?.close();
    this.out = undefined;
    if (this.role === 'head' || this.role === 'single') {
      // The first node of the chain is the authority: its state is the chain's, joined or not.
      this.fresh = false;
    }
    if (!this.role || this.fenced) return;
    if (!successor) {
      // This node is the tail now: everything it applied is on every node that is left.
      this.commit(this.ps.store.version);
      this.forwarded = [];
      this.releaseWindow();
    } else if (!this.fresh) {
      this.connect(successor);
    }
  }

  private onSession(what: 'suspect' | 'fenced' | 'clear', why: string): void {
    if (what === 'suspect') {
      if (!this.suspect) this.log.warn({ why }, this.o.mode === 'sync' ? 'ZooKeeper silent' : 'ZooKeeper silent: refusing writes until it answers');
      this.suspect = true;
    } else if (what === 'clear') {
      this.suspect = false;
    } else {
      this.log.warn({ why }, 'fenced: the ZooKeeper session expired; refusing writes and rejoining at the tail');
      this.fenced = true;
      this.fresh = true;
      this.role = undefined;
      this.out?.close(1001, 'fenced');
      this.out = undefined;
      this.pred?.socket.close(4021, 'CHAIN_FENCED: session expired');
      this.pred = undefined;
      this.forwarded = [];
      this.failWaiters(new TabswarmError('CHAIN_FENCED', { node: this.membership.name, reason: why }));
      this.releaseWindow();
    }
  }

  private onRegistered(): void {
    // A new registration never trusts the state it holds: it is the tail until a STATE
    // from its predecessor arrives (or the head, if nobody precedes it).
    this.fenced = false;
    this.suspect = false;
    this.fresh = true;
    this.role = undefined;
  }

  // ---- the link to the successor ------------------------------------------------------

  private connect(successor: { name: string; url: string }, attempt = 0): void {
    const epoch = this.view.epoch;
    const link: OutLink = new OutLink(successor, epoch, linkUrl(successor.url, this.membership.name, epoch, this.o.secret), this.maxFrameBytes(), {
      onHello: (hello) => this.synchronise(link, hello),
      onFrame: (bytes) => this.fromSuccessor(link, bytes),
      onClose: (code, reason) => {
        if (this.out !== link) return;
        this.out = undefined;
        this.log.warn({ successor: successor.name, code, reason }, 'link to successor closed');
        if (code === 1006) void this.probe(successor);
        if (code === 4023) void this.membership.reconcile(); // our view may be the stale one
        // Retry the same successor until the configuration changes (it may have been busy
        // catching up on a newer epoch, or be dying, which ZooKeeper will tell us), backing off.
        const next = link.ready ? 0 : attempt + 1; // a link that worked starts over
        const delay = Math.min(2000, (code === 4023 ? 50 : 250) * 2 ** Math.min(next, 6));
        setTimeout(() => {
          if (!this.stopped && !this.out && this.view.epoch === epoch && !this.fenced) this.connect(successor, next);
        }, delay).unref();
      },
    });
    this.out = link;
  }

  /** On the successor's hello: bring it up to date, then stream. */
  private synchronise(link: OutLink, hello: LinkHello): void {
    if (this.out !== link || link.ready) return;
    const store = this.ps.store;
    const oldest = this.forwarded[0]?.version ?? store.version + 1;
    if (this.o.mode === 'snapshot' || hello.fresh || hello.version < oldest - 1 || hello.version > store.version) {
      this.sendState(link);
    } else {
      for (const f of this.forwarded) if (f.version > hello.version) this.sendForward(f.bytes, link);
    }
    link.ready = true;
    this.log.info({ successor: link.target.name, epoch: link.epoch, theirs: hello.version, ours: store.version }, 'linked to successor');
  }

  private sendForward(bytes: Uint8Array, link = this.out): void {
    if (!link) return;
    // Stamp the link's epoch: a resend in a new configuration carries the new epoch.
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(12, link.epoch, true);
    link.send(bytes);
  }

  private sendState(link: OutLink): void {
    const s = this.ps.store.snapshot();
    const record = this.ps.store.record();
    link.send(encodeState(this.ps.layout.hash, { epoch: link.epoch, version: s.version, weights: s.weights, velocity: s.velocity, record, historyStart: this.historyStart, history: this.history }));
    // Everything forwarded so far is inside the state.
    this.sent += 1;
  }

  /** `snapshot` mode: the whole state down the chain every K updates. */
  private shipState(): void {
    if (this.out?.ready) this.sendState(this.out);
  }

  private fromSuccessor(link: OutLink, bytes: Uint8Array): void {
    let frame;
    try {
      frame = decodeChainFrame(bytes, { layoutHash: this.ps.layout.hash, layoutSize: this.ps.layout.size });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'bad frame from successor');
      return link.close(4491, 'CHAIN_BAD_FRAME');
    }
    if (frame.type !== ChainMsg.CHAIN_ACK) return link.close(4491, 'CHAIN_BAD_FRAME: only acks travel up');
    if (frame.epoch !== link.epoch) return;
    this.commit(frame.version);
  }

  /** The tail has applied up to `version`: trim, release acks, and pass it up. */
  private commit(version: number): void {
    if (version > this.committedVersion) this.committedVersion = version;
    let n = 0;
    while (n < this.forwarded.length && this.forwarded[n]!.version <= version) n++;
    if (n > 0) this.forwarded.splice(0, n);
    this.releaseWindow();
    let w = 0;
    while (w < this.waiters.length && this.waiters[w]!.version <= version) this.waiters[w++]!.resolve();
    if (w > 0) this.waiters.splice(0, w);
    if (this.pred) this.pred.socket.send(encodeAck(this.ps.layout.hash, this.pred.epoch, version));
  }

  private releaseWindow(): void {
    while (this.windowWaiters.length > 0 && this.forwarded.length <= this.o.asyncWindow) this.windowWaiters.shift()!();
    if (this.fenced || !this.out) for (const r of this.windowWaiters.splice(0)) r();
  }

  private failWaiters(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  // ---- the link from the predecessor --------------------------------------------------

  /**
   * A predecessor opened `/chain`: accept it if its proof verifies and it is this node's
   * predecessor at this node's epoch. A link from a newer epoch waits (briefly) for this node
   * to learn that configuration; one from an older epoch is refused.
   */
  async accept(socket: WebSocket, query: { from?: string; epoch?: string; proof?: string }): Promise<void> {
    const from = String(query.from ?? '');
    const epoch = Number(query.epoch);
    const refuse = (err: TabswarmError) => socket.close(err.spec.wsClose, err.closeReason());
    if (!Number.isSafeInteger(epoch) || epoch < 0 || !verifyLinkProof(this.o.secret, from, epoch, String(query.proof ?? ''))) {
      return refuse(new TabswarmError('CHAIN_BAD_LINK', { from: from || '?', detail: 'proof does not verify with this cluster\'s secret' }));
    }
    if (epoch > this.view.epoch) {
      void this.membership.reconcile();
      await this.waitForEpoch(epoch, 5000);
    }
    if (this.fenced) return refuse(new TabswarmError('CHAIN_FENCED', { node: this.membership.name || 'unregistered', reason: 'it is rejoining the chain' }));
    if (epoch !== this.view.epoch) return refuse(new TabswarmError('CHAIN_STALE_EPOCH', { got: epoch, epoch: this.view.epoch }));
    if (neighbours(this.view, this.membership.name).predecessor?.name !== from) {
      return refuse(new TabswarmError('CHAIN_BAD_LINK', { from, detail: `not this node's predecessor at epoch ${epoch}` }));
    }
    this.pred?.socket.close(1000, 'replaced by a newer link');
    const link = { socket, from, epoch };
    this.pred = link;
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.pred !== link) return;
      if (!isBinary) return socket.close(4491, 'CHAIN_BAD_FRAME: text on a chain link');
      try {
        this.fromPredecessor(link, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      } catch (err) {
        const e = err instanceof TabswarmError ? err : new TabswarmError('CHAIN_BAD_FRAME', { detail: (err as Error).message });
        this.log.warn({ err: e.message, from }, 'chain frame refused');
        this.pred = undefined;
        socket.close(e.spec.wsClose, e.closeReason());
      }
    });
    socket.on('close', (code: number) => {
      if (this.pred !== link) return;
      this.pred = undefined;
      const predecessor = neighbours(this.view, this.membership.name).predecessor;
      if (code === 1006 && predecessor?.name === from) void this.probe(predecessor);
    });
    const hello: LinkHello = { version: this.fresh ? -1 : this.ps.store.version, fresh: this.fresh, epoch };
    socket.send(JSON.stringify(hello));
    if (!this.fresh && !neighbours(this.view, this.membership.name).successor) this.commit(this.ps.store.version);
  }

  /**
   * A neighbour's link dropped without a close handshake: if its port now refuses connections
   * its process is gone, and its registration is removed now rather than a session timeout
   * later. A timeout or any answer leaves it to ZooKeeper (it may be slow, not dead).
   */
  private async probe(node: { name: string; url: string }): Promise<void> {
    if (!this.o.fastDetect || this.stopped) return;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!this.view.nodes.some((n) => n.name === node.name)) return;
      try {
        await fetch(new URL('/api/cluster', node.url), { signal: AbortSignal.timeout(500) });
        return; // it answers: alive
      } catch (err) {
        const code = (err as { cause?: { code?: string } }).cause?.code;
        if (code !== 'ECONNREFUSED') return; // a timeout proves nothing
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    try {
      if (await this.membership.removeDead(node.name)) this.log.warn({ node: node.name, url: node.url }, 'neighbour\'s port refuses connections after its link dropped: removed it from the chain');
    } catch (err) {
      this.log.warn({ err: (err as Error).message, node: node.name }, 'could not remove a dead neighbour; its session timeout will');
    }
  }

  /** Resolves once this node's view is at `epoch` or later, or after `ms`. */
  waitForEpoch(epoch: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        if (this.view.epoch < epoch) return;
        clearTimeout(timer);
        this.viewWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.viewWaiters.delete(done);
        resolve();
      }, ms);
      this.viewWaiters.add(done);
    });
  }

  private fromPredecessor(link: { epoch: number }, bytes: Uint8Array): void {
    const frame = decodeChainFrame(bytes, { layoutHash: this.ps.layout.hash, layoutSize: this.ps.layout.size });
    if (frame.epoch !== link.epoch || link.epoch !== this.view.epoch) throw new TabswarmError('CHAIN_STALE_EPOCH', { got: frame.epoch, epoch: this.view.epoch });
    if (frame.type === ChainMsg.FORWARD) this.applyForward(frame, bytes);
    else if (frame.type === ChainMsg.STATE) this.applyState(frame, bytes);
    else throw new TabswarmError('CHAIN_BAD_FRAME', { detail: 'acks travel up the chain, not down' });
  }

  private applyForward(f: ForwardFrame, bytes: Uint8Array): void {
    const store = this.ps.store;
    if (this.fresh) throw new TabswarmError('CHAIN_BAD_FRAME', { detail: `forward of version ${f.version} before the state transfer` });
    if (f.version <= store.version) {
      // A resend of what this node already has (its predecessor changed): nothing to apply.
      if (!neighbours(this.view, this.membership.name).successor) this.commit(store.version);
      return;
    }
    if (f.version !== store.version + 1) throw new TabswarmError('CHAIN_BAD_FRAME', { detail: `forward of version ${f.version}, but this node is at ${store.version}` });
    const result = this.ps.applyReplicated({ workerId: f.workerId, seq: f.seq, baseVersion: f.baseVersion, count: f.count, grad: f.grad }, f.flags);
    if (!result.applied || result.version !== f.version) {
      // Diverged (this must not happen): drop the state and take a fresh one.
      this.fresh = true;
      throw new TabswarmError('CHAIN_BAD_FRAME', { detail: `forward of version ${f.version} (worker ${f.workerId} seq ${f.seq}) did not apply as version ${f.version} here; taking a state transfer` });
    }
    this.remember(f.workerId, f.seq, f.version);
    const successor = neighbours(this.view, this.membership.name).successor;
    if (!successor) return this.commit(f.version);
    // Middle: keep it until the tail acks, and pass the same bytes on (each WebSocket message
    // arrives in a buffer of its own, so they are ours to keep and to re-stamp).
    this.forwarded.push({ version: f.version, bytes });
    if (this.out?.ready) this.sendForward(bytes);
  }

  private applyState(s: StateFrame, bytes: Uint8Array): void {
    const store = this.ps.store;
    store.restore({ layoutHash: this.ps.layout.hash, version: s.version, weights: s.weights, velocity: s.velocity, applied: new Map(s.record.map((r) => [r.workerId, { seq: r.seq, version: r.version }])) });
    this.ps.metrics.modelVersion.set(s.version);
    this.history = [...s.history];
    this.historyStart = s.historyStart;
    this.received += 1;
    const wasFresh = this.fresh;
    this.fresh = false;
    this.forwarded = [];
    this.log.info({ version: s.version, epoch: s.epoch, history: s.history.length }, 'state transfer applied');
    const successor = neighbours(this.view, this.membership.name).successor;
    if (!successor) return this.commit(s.version);
    if (this.out?.ready) {
      new DataView(bytes.buffer, bytes.byteOffset).setUint32(12, this.out.epoch, true);
      this.out.send(bytes);
      this.sent += 1;
    } else if (wasFresh && !this.out) {
      this.connect(successor);
    }
  }

  private remember(workerId: number, seq: number, version: number): void {
    if (version !== this.historyStart + this.history.length) {
      // A gap (state restored without history): start the history again here.
      this.history = [];
      this.historyStart = version;
    }
    this.history.push({ workerId, seq });
    const extra = this.history.length - this.o.historyLimit;
    if (extra > 0) {
      this.history.splice(0, extra);
      this.historyStart += extra;
    }
  }

  private maxFrameBytes(): number {
    return 64 + 8 * this.ps.layout.size + 12 * 65536 + 8 * this.o.historyLimit + 1024;
  }
}
