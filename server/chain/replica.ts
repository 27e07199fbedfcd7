/**
 * One node's part in chain replication: the admission and replication the chain strategy
 * (strategy.ts) adds around an inner durability, plus the link to its successor. The loop
 * (ps/service.ts) stays the only place that validates and applies a worker's push; here the
 * head numbers nothing itself (the store's version is the sequence number), and its
 * replication policy (policies.ts) forwards each applied update down the chain and says what
 * the worker's ack waits for. The link from the predecessor is predecessor.ts.
 *
 * Invariants:
 * - Every replica applies the same updates in the same version order, so replicas that have
 *   applied up to version v hold bitwise the same weights (same floats, same operations).
 * - Down the chain each node's history is a prefix of its predecessor's. A node keeps what it
 *   forwarded until the tail's cumulative CHAIN_ACK covers it, and a new link starts with the
 *   successor's version, so a changed successor gets exactly what it lacks.
 * - Frames carry the link's epoch; a node refuses links and frames from another epoch, so an
 *   old head that lost its ZooKeeper session can never write into the new chain.
 * - A node that (re)registers enters without trusting its own state (state.ts: joining): its
 *   predecessor sends a STATE first, unless it is the head of a warm chain.
 */
import type { FastifyBaseLogger } from 'fastify';
import { Backoff } from '../../shared/backoff.ts';
import { ERRORS, TabswarmError } from '../../shared/errors.ts';
import { ChainMsg } from '../../shared/protocol.ts';
import type { ParameterServer } from '../ps/service.ts';
import { NO_DURABILITY, type AppliedUpdate, type Durability, type StrategyContext } from '../ps/strategy.ts';
import type { RunChange } from '../../shared/admin-api.ts';
import { mustNotHead } from './committed.ts';
import { RunControl } from './control.ts';
import { decodeChainFrame, encodeForward, encodeState, restampEpoch, type ControlBlock } from './frames.ts';
import { AppliedHistory } from './history.ts';
import { OutLink, WS_ABNORMAL, WS_GOING_AWAY, type LinkHello } from './link.ts';
import { neighbours, roleOf, type ChainView, type Membership, type Role } from './membership.ts';
import type { ReplicaOptions } from './options.ts';
import { replicationPolicy, type PolicyHost, type ReplicationMode, type ReplicationPolicy } from './policies.ts';
import { Predecessor } from './predecessor.ts';
import { EpochWaiters, refusesConnections } from './probe.ts';
import { hasState, roleIn, transition, writable, type ReplicaEvent, type ReplicaState } from './state.ts';
import type { ReplicaStatus } from './status.ts';

export { REPLICATION_MODES, type ReplicationMode } from './policies.ts';
export { REPLICA_DEFAULTS, type ReplicaOptions } from './options.ts';

interface Forwarded {
  readonly version: number;
  readonly bytes: Uint8Array;
}

interface Waiter {
  readonly version: number;
  resolve(): void;
  reject(err: Error): void;
}

export type { ReplicaStatus } from './status.ts';

export class ChainReplica {
  readonly name = 'chain';
  /** Set by start (the strategy context): the PS whose store this node replicates. */
  ps!: ParameterServer;
  log!: FastifyBaseLogger;
  /** The durability the chain wraps: it also runs on the updates this node applies for its predecessor. */
  inner: Durability = NO_DURABILITY;
  view: ChainView = { epoch: 0, nodes: [], warm: false };
  state: ReplicaState = { kind: 'joining' };
  readonly policy: ReplicationPolicy;
  readonly history: AppliedHistory;
  readonly predecessor: Predecessor;
  /** The run's lr and rule as replicated state (control.ts). */
  readonly control = new RunControl(() => this.ps.store);
  private out: OutLink | undefined;
  /** Retries of the link to the successor; reset once a link has synchronised. */
  private readonly linkBackoff = new Backoff({ minMs: 50, maxMs: 2000 });
  private forwarded: Forwarded[] = [];
  private waiters: Waiter[] = [];
  private windowWaiters: { limit: number; resolve: () => void }[] = [];
  private committedVersion = 0;
  readonly transfers = { sent: 0, received: 0 };
  stopped = false;
  readonly epochs = new EpochWaiters(() => this.view.epoch);
  private readonly host: PolicyHost = {
    forward: (u) => this.forward(u),
    shipState: () => this.out?.ready && this.sendState(this.out),
    committed: () => this.safeVersion(),
    untilCommitted: (version) => (version <= this.safeVersion() ? Promise.resolve() : new Promise<void>((resolve, reject) => this.waiters.push({ version, resolve, reject }))),
    untilWithin: (limit) => (this.forwarded.length <= limit ? undefined : new Promise<void>((resolve) => this.windowWaiters.push({ limit, resolve }))),
  };

  constructor(readonly membership: Membership, readonly o: ReplicaOptions) {
    this.policy = replicationPolicy(o.mode, o);
    this.history = new AppliedHistory(o.historyLimit);
    this.predecessor = new Predecessor(this);
    membership.on('view', (v) => this.onView(v));
    membership.on('session', (what, why) => this.onSession(what, why));
    membership.on('registered', () => this.apply({ type: 'registered' }));
    membership.on('recorded', () => this.releaseWaiters());
  }

  /**
   * What an ack may name: applied at the tail and recorded in ZooKeeper as committed
   * (committed.ts), so no node below an acknowledged version can head after a mass expiry.
   */
  private safeVersion(): number {
    return Math.min(this.committedVersion, this.membership.committed.recorded);
  }

  /** The highest version the tail has acknowledged to this node, at most what this node holds. */
  get tailAcked(): number {
    return Math.min(this.committedVersion, this.ps.store.version);
  }

  /** Takes the PS and logger from the strategy context; `inner` also runs on replicated applies. */
  start(ctx: StrategyContext, inner: Durability): void {
    this.ps = ctx.ps;
    this.log = ctx.log;
    this.inner = inner;
    this.membership.versionOf = () => this.ps.store.version;
  }

  get currentView(): ChainView {
    return this.view;
  }

  get me(): string {
    return this.membership.name || 'unregistered';
  }

  apply(e: ReplicaEvent): void {
    this.state = transition(this.state, e);
  }

  // ---- admission, and the PS loop's hooks -------------------------------------------------

  admitWrite(): void {
    const s = this.state;
    if (s.kind === 'fenced') throw new TabswarmError('CHAIN_FENCED', { node: this.me, reason: 'its ZooKeeper session expired' });
    if (s.kind !== 'joining' && s.suspect && this.policy.fenceWhenSuspect) throw new TabswarmError('CHAIN_FENCED', { node: this.me, reason: 'ZooKeeper is not answering, so it may not be head any more' });
    const role = roleIn(s);
    if (role !== 'head' && role !== 'single') throw new TabswarmError('CHAIN_NOT_HEAD', { node: this.me, epoch: this.view.epoch, head: this.view.nodes[0]?.url ?? 'none yet' });
    // The head of a cold chain: waits for the node with the newest checkpoint (membership.ts).
    if (!hasState(s)) throw new TabswarmError('CHAIN_NOT_READY', { node: this.me, epoch: this.view.epoch });
  }

  admitRead(): void {
    if (!hasState(this.state)) throw new TabswarmError('CHAIN_NOT_READY', { node: this.me, epoch: this.view.epoch });
  }

  afterApply(u: AppliedUpdate): void | Promise<void> {
    this.history.remember(u.workerId, u.seq, u.version);
    return this.policy.afterApply(this.host, u);
  }

  durable(version: number): void | Promise<void> {
    return this.policy.durable(this.host, version);
  }

  private forward(u: AppliedUpdate): boolean {
    const role = roleIn(this.state);
    if (role === 'single') {
      this.commit(u.version); // alone: the head is the tail
      return true;
    }
    if (role !== 'head') return false; // admitWrite let it in just before a reconfiguration
    const bytes = encodeForward(this.ps.layout.hash, { control: this.control.current(), epoch: this.view.epoch, version: u.version, workerId: u.workerId, seq: u.seq, count: u.count, baseVersion: u.baseVersion, flags: u.flags ?? 0, grad: u.grad });
    this.keep(u.version, bytes);
    return true;
  }

  /** Keeps a forwarded frame until the tail acks it, and sends it if the successor is linked. */
  keep(version: number, bytes: Uint8Array): void {
    this.forwarded.push({ version, bytes });
    if (this.out?.ready) this.sendForward(bytes, this.out);
  }

  status(): Record<string, unknown> {
    return { ...this.replicaStatus(), control: this.control.current() };
  }

  /** An admin run change: made at the head only, then carried down the chain (control.ts). */
  changeRun(change: RunChange): ControlBlock {
    this.admitWrite();
    const c = this.control.change(change);
    this.log.info({ control: c }, 'run control changed at the head; replicas take it with the next update');
    return c;
  }

  replicaStatus(): ReplicaStatus {
    const s = this.state;
    return {
      name: this.membership.name,
      role: s.kind === 'fenced' ? 'fenced' : roleIn(s) ?? 'joining',
      state: s.kind,
      epoch: this.view.epoch,
      mode: this.o.mode,
      version: this.ps.store.version,
      committed: this.committedVersion,
      inFlight: this.forwarded.length,
      fresh: !hasState(s),
      writable: writable(s, this.policy.fenceWhenSuspect),
      warm: this.view.warm,
      successorLinked: this.out?.ready ?? false,
      predecessorLinked: this.predecessor.linked,
      stateTransfers: { ...this.transfers },
    };
  }

  /** (version, worker, seq) of the applied updates this node remembers, oldest first. */
  appliedHistory(): { start: number; entries: AppliedHistory['entries'] } {
    return { start: this.history.start, entries: this.history.entries };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.out?.close(WS_GOING_AWAY, 'node stopping');
    this.predecessor.close(WS_GOING_AWAY, 'node stopping');
    this.failWaiters(new TabswarmError('PS_SHUTTING_DOWN'));
    await this.predecessor.drain();
    await this.membership.stop();
  }

  // ---- configuration changes ------------------------------------------------------------

  private onView(view: ChainView): void {
    if (this.stopped) return;
    const me = this.membership.name;
    const role = roleOf(view, me);
    if (view.warm && !view.vetted && (role === 'head' || role === 'single') && !hasState(this.state) && mustNotHead(this.ps.store.version, this.membership.committedSeen, view.nodes)) {
      // Registered anew (an expiry, a restart) and behind what was acknowledged or what a live
      // member holds: heading would reset the chain to this node's state. Go cold instead.
      this.log.warn({ version: this.ps.store.version, committed: this.membership.committedSeen, epoch: view.epoch }, 'made head without the committed state: turning the chain cold');
      view = { ...view, warm: false };
      void this.membership.goCold(view);
    }
    this.view = view;
    this.epochs.notify();
    this.apply({ type: 'view', role, warm: view.warm });
    const { successor } = neighbours(view, me);
    this.log.info({ epoch: view.epoch, state: this.state.kind, role: roleIn(this.state) ?? 'not a member', warm: view.warm, nodes: view.nodes.map((n) => n.name) }, 'chain view');
    // Links belong to an epoch: a new configuration re-establishes both ends, and the new
    // handshake tells each predecessor exactly what its successor lacks.
    this.predecessor.dropStale(view.epoch);
    this.out?.close();
    this.out = undefined;
    if (!roleIn(this.state)) return;
    if (!successor) {
      // This node is the tail now: everything it applied is on every node that is left.
      if (hasState(this.state)) this.commit(this.ps.store.version);
      this.forwarded = [];
      this.releaseWindow();
    } else if (hasState(this.state)) {
      this.connect(successor);
    }
  }

  private onSession(what: 'suspect' | 'fenced' | 'clear', why: string): void {
    if (what === 'suspect') {
      if (this.state.kind === 'serving' && !this.state.suspect) this.log.warn({ why }, this.policy.fenceWhenSuspect ? 'ZooKeeper silent: refusing writes until it answers' : 'ZooKeeper silent');
      this.apply({ type: 'suspect' });
    } else if (what === 'clear') {
      this.apply({ type: 'clear' });
    } else {
      this.log.warn({ why }, 'fenced: the ZooKeeper session expired; refusing writes and rejoining at the tail');
      this.apply({ type: 'fenced', reason: why });
      this.out?.close(WS_GOING_AWAY, 'fenced');
      this.out = undefined;
      this.predecessor.fence(why);
      this.forwarded = [];
      this.failWaiters(new TabswarmError('CHAIN_FENCED', { node: this.membership.name, reason: why }));
      this.releaseWindow();
    }
  }

  // ---- the link to the successor ------------------------------------------------------

  /** Links to the successor (again), until the configuration changes. */
  connect(successor: { name: string; url: string }): void {
    const epoch = this.view.epoch;
    const link: OutLink = new OutLink(successor, epoch, this.membership.name, this.o.secret, this.maxFrameBytes(), {
      onHello: (hello) => this.synchronise(link, hello),
      onFrame: (bytes) => this.fromSuccessor(link, bytes),
      onClose: (code, reason) => {
        if (this.out !== link) return;
        this.out = undefined;
        this.log.warn({ successor: successor.name, code, reason }, 'link to successor closed');
        if (code === WS_ABNORMAL) void this.probe(successor);
        if (code === ERRORS.CHAIN_STALE_EPOCH.wsClose) void this.membership.reconcile(); // our view may be the stale one
        // Retry the same successor until the configuration changes (it may have been busy
        // catching up on a newer epoch, or be dying, which ZooKeeper will tell us), backing off.
        setTimeout(() => {
          if (!this.stopped && !this.out && this.view.epoch === epoch && this.state.kind !== 'fenced') this.connect(successor);
        }, this.linkBackoff.fail()).unref();
      },
    });
    this.out = link;
  }

  /** On the successor's hello: bring it up to date, then stream. */
  private synchronise(link: OutLink, hello: LinkHello): void {
    if (this.out !== link || link.ready) return;
    const store = this.ps.store;
    const oldest = this.forwarded[0]?.version ?? store.version + 1;
    if (this.policy.stateOnLink || hello.fresh || hello.version < oldest - 1 || hello.version > store.version) {
      this.sendState(link);
    } else {
      for (const f of this.forwarded) if (f.version > hello.version) this.sendForward(f.bytes, link);
    }
    link.ready = true;
    this.linkBackoff.reset(); // a synchronised link, not a mere open, ends the failure streak
    this.log.info({ successor: link.target.name, epoch: link.epoch, theirs: hello.version, ours: store.version }, 'linked to successor');
  }

  private sendForward(bytes: Uint8Array, link: OutLink): void {
    // A resend in a new configuration carries the new link's epoch.
    restampEpoch(bytes, link.epoch);
    link.send(bytes);
  }

  private sendState(link: OutLink): void {
    const s = this.ps.store.snapshot();
    link.send(encodeState(this.ps.layout.hash, { control: this.control.current(), epoch: link.epoch, version: s.version, weights: s.weights, velocity: s.velocity, record: this.ps.store.record(), historyStart: this.history.start, history: this.history.entries }));
    // Everything forwarded so far is inside the state.
    this.transfers.sent += 1;
  }

  /** Passes a received STATE on down the chain (after applying it), or links if not yet linked. */
  passState(bytes: Uint8Array, wasFresh: boolean, successor: { name: string; url: string }): void {
    if (this.out?.ready) {
      this.sendForward(bytes, this.out);
      this.transfers.sent += 1;
    } else if (wasFresh && !this.out) {
      this.connect(successor);
    }
  }

  private fromSuccessor(link: OutLink, bytes: Uint8Array): void {
    let frame;
    try {
      frame = decodeChainFrame(bytes, { layoutHash: this.ps.layout.hash, layoutSize: this.ps.layout.size });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'bad frame from successor');
      return link.closeWith(err instanceof TabswarmError ? err : new TabswarmError('CHAIN_BAD_FRAME', { detail: (err as Error).message }));
    }
    if (frame.type !== ChainMsg.CHAIN_ACK) return link.closeWith(new TabswarmError('CHAIN_BAD_FRAME', { detail: 'only acks travel up the chain' }));
    if (frame.epoch !== link.epoch) return;
    this.commit(frame.version);
  }

  /** The tail has applied up to `version`: trim, release acks, and pass it up. */
  commit(version: number): void {
    if (version > this.committedVersion) this.committedVersion = version;
    const role = roleIn(this.state);
    if (role === 'head' || role === 'single') this.membership.committed.request(this.committedVersion);
    let n = 0;
    while (n < this.forwarded.length && this.forwarded[n]!.version <= version) n++;
    if (n > 0) this.forwarded.splice(0, n);
    this.releaseWindow();
    this.releaseWaiters();
    this.predecessor.ack(version);
  }

  private releaseWaiters(): void {
    const safe = this.safeVersion();
    let w = 0;
    while (w < this.waiters.length && this.waiters[w]!.version <= safe) this.waiters[w++]!.resolve();
    if (w > 0) this.waiters.splice(0, w);
  }

  /** A STATE replaced this node's state: nothing it forwarded before stands. */
  clearForwarded(): void {
    this.forwarded = [];
  }

  private releaseWindow(): void {
    const open = this.state.kind === 'fenced' || !this.out;
    this.windowWaiters = this.windowWaiters.filter((w) => {
      if (!open && this.forwarded.length > w.limit) return true;
      w.resolve();
      return false;
    });
  }

  private failWaiters(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /**
   * A neighbour's link dropped without a close handshake: if its port now refuses connections
   * its process is gone, and its registration is removed now rather than a session timeout later.
   */
  async probe(node: { name: string; url: string }): Promise<void> {
    if (!this.o.fastDetect || this.stopped) return;
    if (!(await refusesConnections(node.url, () => this.view.nodes.some((n) => n.name === node.name)))) return;
    try {
      if (await this.membership.removeDead(node.name)) this.log.warn({ node: node.name, url: node.url }, 'neighbour\'s port refuses connections after its link dropped: removed it from the chain');
    } catch (err) {
      this.log.warn({ err: (err as Error).message, node: node.name }, 'could not remove a dead neighbour; its session timeout will');
    }
  }

  /** Resolves once this node's view is at `epoch` or later, or after `ms`. */
  waitForEpoch(epoch: number, ms: number): Promise<void> {
    return this.epochs.wait(epoch, ms);
  }

  /** A predecessor opened `/chain` (predecessor.ts). */
  accept(...args: Parameters<Predecessor['accept']>): Promise<void> {
    return this.predecessor.accept(...args);
  }

  maxFrameBytes(): number {
    return 64 + 8 * this.ps.layout.size + 12 * 65536 + 8 * this.o.historyLimit + 1024;
  }
}
