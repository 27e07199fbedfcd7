/**
 * The link from this node's predecessor (`/chain` on this node): run the handshake (link.ts:
 * challenge the predecessor with a fresh nonce, prove the secret for its own), accept the link
 * if the predecessor proved the cluster's secret for this link and is this node's predecessor
 * at this node's epoch, answer with a hello (the version to resume from), then apply what
 * flows down, each message checked against its tag: FORWARD (one update, applied through the
 * PS as a replicated update, then through the inner durability, so a chain node also
 * checkpoints) and STATE (the whole state). Frames are applied one at a time, in order,
 * and never while the store is held (a sync checkpoint writing from the live arrays).
 */
import type { WebSocket } from 'ws';
import { TabswarmError } from '../../shared/errors.ts';
import { ChainMsg } from '../../shared/protocol.ts';
import { RULE_NAMES } from '../ps/rules.ts';
import { decodeChainFrame, encodeAck, type ForwardFrame, type StateFrame } from './frames.ts';
import { LINK_HANDSHAKE_MS, LinkAuth, WS_ABNORMAL, WS_NORMAL, closeWithError, freshNonce, isNonce, predecessorProof, proofMatches, successorProof, type LinkHello, type LinkTranscript } from './link.ts';
import { neighbours } from './membership.ts';
import type { ChainReplica } from './replica.ts';
import { hasState } from './state.ts';

interface InLink {
  readonly socket: WebSocket;
  readonly from: string;
  readonly epoch: number;
  readonly auth: LinkAuth;
}

/** The first text message on `socket` within `ms`, or undefined (closed, binary, or late). */
function firstText(socket: WebSocket, ms: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const done = (text: string | undefined) => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      socket.off('close', onClose);
      resolve(text);
    };
    const onMessage = (data: Buffer, isBinary: boolean) => done(isBinary ? undefined : data.toString('utf8'));
    const onClose = () => done(undefined);
    const timer = setTimeout(() => done(undefined), ms);
    socket.on('message', onMessage);
    socket.on('close', onClose);
  });
}

export class Predecessor {
  private link: InLink | undefined;
  /** Frames are applied strictly in arrival order, one after the other. */
  private inbox: Promise<void> = Promise.resolve();

  constructor(private readonly r: ChainReplica) {}

  get linked(): boolean {
    return this.link !== undefined;
  }

  /** Acknowledges up the chain: the tail has applied up to `version`. */
  ack(version: number): void {
    const l = this.link;
    if (l) l.socket.send(l.auth.seal(encodeAck(this.r.ps.layout.hash, l.epoch, version)));
  }

  /** A new configuration: a link of another epoch is closed (its predecessor re-links). */
  dropStale(epoch: number): void {
    if (!this.link || this.link.epoch === epoch) return;
    closeWithError(this.link.socket, new TabswarmError('CHAIN_STALE_EPOCH', { got: this.link.epoch, epoch }));
    this.link = undefined;
  }

  fence(reason: string): void {
    if (this.link) closeWithError(this.link.socket, new TabswarmError('CHAIN_FENCED', { node: this.r.me, reason }));
    this.link = undefined;
  }

  close(code: number, reason: string): void {
    this.link?.socket.close(code, reason);
    this.link = undefined;
  }

  /** Resolves once the frames already received are applied. */
  drain(): Promise<void> {
    return this.inbox;
  }

  /**
   * A predecessor opened `/chain`: the handshake first (link.ts), then the chain's own checks.
   * A link from a newer epoch waits (briefly) for this node to learn that configuration; one
   * from an older epoch is refused.
   */
  async accept(socket: WebSocket, query: { from?: string; to?: string; epoch?: string; nonce?: string }): Promise<void> {
    const r = this.r;
    const from = String(query.from ?? '').slice(0, 200);
    const epoch = Number(query.epoch);
    const refuse = (err: TabswarmError) => closeWithError(socket, err);
    if (!from || !Number.isSafeInteger(epoch) || epoch < 0 || !isNonce(query.nonce)) {
      return refuse(new TabswarmError('CHAIN_BAD_LINK', { from: from || '?', detail: 'the request needs from, to, epoch and a 32-byte hex nonce' }));
    }
    const t: LinkTranscript = { from, to: r.membership.name, epoch, predecessorNonce: query.nonce, successorNonce: freshNonce() };
    if (query.to !== t.to) return refuse(new TabswarmError('CHAIN_BAD_LINK', { from, detail: `the link is for ${String(query.to ?? '?').slice(0, 80)}, not this node (${t.to || 'unregistered'})` }));
    socket.send(JSON.stringify({ challenge: t.successorNonce, proof: successorProof(r.o.secret, t) }));
    const answer = await firstText(socket, LINK_HANDSHAKE_MS);
    let proof: unknown;
    try {
      proof = (JSON.parse(answer ?? '{}') as { proof?: unknown }).proof;
    } catch {
      proof = undefined;
    }
    if (!proofMatches(predecessorProof(r.o.secret, t), proof)) {
      return refuse(new TabswarmError('CHAIN_BAD_LINK', { from, detail: answer === undefined ? `no proof within ${LINK_HANDSHAKE_MS} ms` : 'proof does not verify with this cluster\'s secret and this link\'s nonces' }));
    }
    if (epoch > r.view.epoch) {
      void r.membership.reconcile();
      await r.waitForEpoch(epoch, 5000);
    }
    if (r.state.kind === 'fenced') return refuse(new TabswarmError('CHAIN_FENCED', { node: r.me, reason: 'it is rejoining the chain' }));
    if (epoch !== r.view.epoch) return refuse(new TabswarmError('CHAIN_STALE_EPOCH', { got: epoch, epoch: r.view.epoch }));
    if (neighbours(r.view, r.membership.name).predecessor?.name !== from) {
      return refuse(new TabswarmError('CHAIN_BAD_LINK', { from, detail: `not this node's predecessor at epoch ${epoch}` }));
    }
    this.link?.socket.close(WS_NORMAL, 'replaced by a newer link');
    const link: InLink = { socket, from, epoch, auth: new LinkAuth(r.o.secret, t, 'successor') };
    this.link = link;
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.link !== link) return;
      const bytes = isBinary ? link.auth.open(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) : undefined;
      if (!bytes) return this.refuseFrame(link, new TabswarmError('CHAIN_BAD_MAC', { from, detail: isBinary ? 'its tag does not verify with this link\'s key and message number' : 'text after the handshake' }));
      this.inbox = this.inbox.then(() => this.receive(link, bytes));
    });
    socket.on('close', (code: number) => {
      if (this.link !== link) return;
      this.link = undefined;
      const predecessor = neighbours(r.view, r.membership.name).predecessor;
      if (code === WS_ABNORMAL && predecessor?.name === from) void r.probe(predecessor);
    });
    const fresh = !hasState(r.state);
    const hello: LinkHello = { version: fresh ? -1 : r.ps.store.version, fresh, epoch };
    socket.send(link.auth.seal(Buffer.from(JSON.stringify(hello), 'utf8')));
    if (fresh) return;
    // The tail: what it has is on every node left. A middle: the last ack its tail sent up,
    // again. That ack may have come while no predecessor was linked (the successor linked
    // first, and a state transfer's ack has nothing behind it), and without it the new
    // predecessor would wait for the versions it covers until another update came, which
    // its window may not let in.
    if (!neighbours(r.view, r.membership.name).successor) r.commit(r.ps.store.version);
    else this.ack(r.tailAcked);
  }

  private refuseFrame(link: InLink, err: TabswarmError): void {
    this.r.log.warn({ err: err.message, from: link.from }, 'chain frame refused');
    if (this.link === link) this.link = undefined;
    closeWithError(link.socket, err);
  }

  private async receive(link: InLink, bytes: Uint8Array): Promise<void> {
    const store = this.r.ps.store;
    while (store.held) await store.held;
    if (this.link !== link) return;
    try {
      const frame = decodeChainFrame(bytes, { layoutHash: this.r.ps.layout.hash, layoutSize: this.r.ps.layout.size, rules: RULE_NAMES.length });
      if (frame.epoch !== link.epoch || link.epoch !== this.r.view.epoch) throw new TabswarmError('CHAIN_STALE_EPOCH', { got: frame.epoch, epoch: this.r.view.epoch });
      if (frame.type === ChainMsg.FORWARD) this.applyForward(frame, bytes);
      else if (frame.type === ChainMsg.STATE) this.applyState(frame, bytes);
      else throw new TabswarmError('CHAIN_BAD_FRAME', { detail: 'acks travel up the chain, not down' });
    } catch (err) {
      this.refuseFrame(link, err instanceof TabswarmError ? err : new TabswarmError('CHAIN_BAD_FRAME', { detail: (err as Error).message }));
    }
  }

  private applyForward(f: ForwardFrame, bytes: Uint8Array): void {
    const r = this.r;
    const store = r.ps.store;
    if (!hasState(r.state)) throw new TabswarmError('CHAIN_BAD_FRAME', { detail: `forward of version ${f.version} before the state transfer` });
    const { successor } = neighbours(r.view, r.membership.name);
    if (f.version <= store.version) {
      // A resend of what this node already has (its predecessor changed): nothing to apply.
      if (!successor) r.commit(store.version);
      return;
    }
    if (f.version !== store.version + 1) throw new TabswarmError('CHAIN_BAD_FRAME', { detail: `forward of version ${f.version}, but this node is at ${store.version}` });
    const update = { workerId: f.workerId, seq: f.seq, baseVersion: f.baseVersion, count: f.count, grad: f.grad };
    r.control.adopt(f.control); // the lr and rule the head applied this update under
    const result = r.ps.applyReplicated(update, f.flags);
    if (!result.applied || result.version !== f.version) {
      // Diverged (this must not happen): drop the state and take a fresh one.
      r.apply({ type: 'diverged' });
      throw new TabswarmError('CHAIN_BAD_FRAME', { detail: `forward of version ${f.version} (worker ${f.workerId} seq ${f.seq}) did not apply as version ${f.version} here; taking a state transfer` });
    }
    r.history.remember(f.workerId, f.seq, f.version);
    this.durably({ ...update, version: f.version, flags: f.flags });
    if (!successor) return r.commit(f.version);
    // Middle: keep it until the tail acks, and pass the same bytes on (each WebSocket message
    // arrives in a buffer of its own, so they are ours to keep and to re-stamp).
    r.keep(f.version, bytes);
  }

  /** The inner durability runs on every node: a replica checkpoints what it applied too. */
  private durably(u: Parameters<ChainReplica['inner']['afterApply']>[0]): void {
    const done = this.r.inner.afterApply(u);
    if (done) done.catch((err: unknown) => this.r.log.error({ err, version: u.version }, 'the inner durability failed on a replicated update'));
  }

  private applyState(s: StateFrame, bytes: Uint8Array): void {
    const r = this.r;
    const store = r.ps.store;
    store.restore({ layoutHash: r.ps.layout.hash, version: s.version, weights: s.weights, velocity: s.velocity, applied: new Map(s.record.map((e) => [e.workerId, { seq: e.seq, version: e.version }])) });
    r.ps.metrics.modelVersion.set(s.version);
    r.control.adopt(s.control);
    r.history.replace(s.historyStart, s.history);
    r.transfers.received += 1;
    const wasFresh = !hasState(r.state);
    r.apply({ type: 'state-applied' });
    r.clearForwarded();
    r.log.info({ version: s.version, epoch: s.epoch, history: s.history.length }, 'state transfer applied');
    const { successor } = neighbours(r.view, r.membership.name);
    if (!successor) return r.commit(s.version);
    r.passState(bytes, wasFresh, successor);
  }
}
