/**
 * WorkerMesh over WebRTC data channels with PeerJS. The signaling server runs beside the PS
 * (server/plugins/mesh.ts) and hands out peer ids; each worker keeps data channels to k peers
 * (dialling more from the discovery list when some leave, accepting up to 2k), and channels
 * that are open survive the PS going down. Peers are untrusted: every message is decoded and
 * validated (shared/mesh.ts) before use, relayed weights must carry the PS's signature, and a
 * peer that sends anything invalid is disconnected, counted and never dialled again.
 */
import { Peer, type DataConnection } from 'peerjs';
import { MeshConfigSchema, ModelInfoSchema, type MeshConfig } from '../../shared/api.ts';
import { TabswarmError } from '../../shared/errors.ts';
import { MeshKind, asBytes, decodeMesh, encodeMesh, type MeshMessage } from '../../shared/mesh.ts';
import { checkWeights, hexOf, importWeightsKey, keyIdOf } from '../../shared/signing.ts';
import { parseAs } from '../../shared/validate.ts';
import type { PullResult } from '../transport.ts';
import type { GossipHandler, MeshStatus, WorkerMesh } from './index.ts';

export interface PeerJsMeshOptions {
  /** Base URL of the PS (the page's origin). */
  readonly baseUrl: string;
  readonly fetch?: typeof fetch;
  /** No answer to a gossip request or a WANT within this long counts as a miss. @default 3000, 1500 */
  readonly gossipTimeoutMs?: number;
  readonly relayTimeoutMs?: number;
  /** How often the peer set is checked and topped up to k. @default 1000 */
  readonly maintainEveryMs?: number;
  /**
   * A channel not open this long after it was dialled or offered is closed and its slot freed for
   * another peer. PeerJS reports some failures (an unknown peer id, a lost offer) on the Peer or
   * not at all, so without this a dead dial would hold its slot for good. @default 10000
   */
  readonly openTimeoutMs?: number;
}

interface Link {
  readonly conn: DataConnection;
  readonly outgoing: boolean;
  /** When it was dialled or offered (Date.now()). */
  readonly since: number;
  open: boolean;
  /** The version of signed weights the peer said it holds (HAVE). */
  version: number;
}

interface Waiter {
  resolve: (m: MeshMessage | undefined) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Round ids live above any model version, so a NONE answer cannot be mistaken between the two. */
const ROUND_BASE = 0x80000000;

/** Reads GET /api/mesh and /api/model and joins the mesh; undefined when the PS runs without one. */
export async function createPeerJsMesh(opts: PeerJsMeshOptions): Promise<PeerJsMesh | undefined> {
  const get = opts.fetch ?? ((...a) => fetch(...a));
  const signal = () => AbortSignal.timeout(10000);
  const config = parseAs(MeshConfigSchema, await (await get(new URL('/api/mesh', opts.baseUrl), { signal: signal() })).json(), 'GET /api/mesh');
  if (!config.enabled || config.peers <= 0) return undefined;
  const model = parseAs(ModelInfoSchema, await (await get(new URL('/api/model', opts.baseUrl), { signal: signal() })).json(), 'GET /api/model');
  const key = await importWeightsKey(model.weightsKey.publicKey).catch(() => undefined);
  const keyId = key ? await keyIdOf(model.weightsKey.publicKey) : undefined;
  return new PeerJsMesh(opts, config, model.layout, key, keyId);
}

export class PeerJsMesh implements WorkerMesh {
  readonly status: MeshStatus = {
    peerId: '', signaling: false, peers: [], dialing: [], stalled: 0, gossipStarted: 0, gossipAnswered: 0, gossipMisses: 0,
    relayServed: 0, relayReceived: 0, relayMisses: 0, lastRelay: null, rejected: {}, reported: [],
  };
  readonly gossipEveryMs: number;
  readonly relay: boolean;
  readonly relayMaxLag: number;
  private peer: Peer;
  private readonly links = new Map<string, Link>();
  private readonly banned = new Set<string>();
  private readonly waiting = new Map<string, Waiter>();
  private handler: GossipHandler | undefined;
  private held: { frame: Uint8Array; version: number } | undefined;
  private round = 0;
  private closed = false;
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly host: string;

  constructor(private readonly opts: PeerJsMeshOptions, private config: MeshConfig, private readonly layout: { hash: number; size: number }, private readonly key: CryptoKey | undefined, private readonly keyId: Uint8Array = new Uint8Array(0)) {
    this.gossipEveryMs = config.gossipEveryMs;
    this.relay = config.relay && key !== undefined;
    this.relayMaxLag = config.relayMaxLag;
    this.host = new URL(opts.baseUrl).hostname;
    this.peer = this.connectSignaling();
    this.timer = setInterval(() => void this.maintain(), opts.maintainEveryMs ?? 1000);
  }

  onGossip(handler: GossipHandler): void {
    this.handler = handler;
  }

  async exchange(weights: Float32Array): Promise<Float32Array | undefined> {
    const open = [...this.links.entries()].filter(([, l]) => l.open);
    if (open.length === 0) {
      this.status.gossipMisses += 1;
      return undefined;
    }
    const [id, link] = open[Math.floor(Math.random() * open.length)]!;
    const ref = ROUND_BASE + (this.round++ % ROUND_BASE);
    const reply = this.wait(`${id}:g${ref}`, this.opts.gossipTimeoutMs ?? 3000);
    this.send(link, encodeMesh(MeshKind.GOSSIP_REQ, this.layout.hash, ref, weights));
    const m = await reply;
    if (m?.kind !== MeshKind.GOSSIP_REPLY) {
      this.status.gossipMisses += 1;
      return undefined;
    }
    this.status.gossipStarted += 1;
    return m.weights;
  }

  hold(frame: Uint8Array, version: number): void {
    if (this.held && this.held.version >= version) return;
    this.held = { frame, version };
    if (!this.relay) return;
    const have = encodeMesh(MeshKind.HAVE, this.layout.hash, version);
    for (const link of this.links.values()) if (link.open) this.send(link, have);
  }

  async fetch(minVersion: number): Promise<PullResult | undefined> {
    let best: [string, Link] | undefined;
    for (const entry of this.links) if (entry[1].open && entry[1].version >= minVersion && (!best || entry[1].version > best[1].version)) best = entry;
    if (!best || !this.key) {
      this.status.relayMisses += 1;
      return undefined;
    }
    const [id, link] = best;
    const reply = this.wait(`${id}:w`, this.opts.relayTimeoutMs ?? 1500);
    this.send(link, encodeMesh(MeshKind.WANT, this.layout.hash, minVersion));
    const m = await reply;
    if (m?.kind !== MeshKind.RELAY || m.frame.modelVersion < minVersion) {
      link.version = Math.min(link.version, minVersion - 1); // it does not have it after all
      this.status.relayMisses += 1;
      return undefined;
    }
    const verdict = await checkWeights(this.key, this.keyId, m.frame);
    if (verdict !== 'ok') {
      const version = m.frame.modelVersion;
      // The key id in clear only names the refusal (another run's copy, or a forgery); the signature decided it.
      this.refuse(id, verdict === 'other-run'
        ? new TabswarmError('MESH_OTHER_RUN', { peer: id, version, got: hexOf(m.frame.meta?.keyId), want: hexOf(this.keyId) })
        : new TabswarmError('MESH_FORGED_WEIGHTS', { peer: id, version, detail: 'the signature does not verify with the PS\'s public key (forged or altered)' }));
      this.status.relayMisses += 1;
      return undefined;
    }
    this.status.relayReceived += 1;
    this.status.lastRelay = { from: id, version: m.frame.modelVersion };
    this.lastRelayed = m.bytes;
    return { version: m.frame.modelVersion, weights: m.frame.payload, frame: m.bytes };
  }

  /** The last frame taken from a peer, exactly as received (tests compare it with what the PS signed). */
  lastRelayed: Uint8Array | undefined;

  /** The signed frame this worker holds, as it would relay it. */
  heldFrame(): { frame: Uint8Array; version: number } | undefined {
    return this.held;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const w of this.waiting.values()) w.resolve(undefined);
    this.peer.destroy();
  }

  // ---- signaling and the peer set ---------------------------------------------------------

  private connectSignaling(): Peer {
    const peer = new Peer({
      host: this.host,
      port: this.config.port,
      path: this.config.path,
      key: this.config.key,
      secure: new URL(this.opts.baseUrl).protocol === 'https:',
      // Host candidates only: the tabs of a deployment reach each other directly (no STUN off-site).
      config: { iceServers: [] },
      debug: 0,
    });
    peer.on('open', (id) => {
      this.status.peerId = id;
      this.status.signaling = true;
    });
    peer.on('disconnected', () => (this.status.signaling = false));
    // Signaling errors (PS down, id taken, peer unavailable) are retried by maintain().
    peer.on('error', () => {});
    peer.on('connection', (conn) => {
      // Two workers dialled each other at once: both ends keep the channel the smaller peer id
      // dialled. (Its offer reaches the other end before that end's answer to ours, so our dial
      // is still unopened here whenever the two crossed.)
      const mine = this.links.get(conn.peer);
      if (mine?.outgoing && !mine.open && this.status.peerId < conn.peer) {
        conn.close();
        return;
      }
      const incoming = [...this.links.values()].filter((l) => !l.outgoing).length;
      if (this.banned.has(conn.peer) || incoming >= 2 * this.config.peers) {
        conn.on('open', () => conn.close());
        return;
      }
      this.track(conn, false);
    });
    return peer;
  }

  private async maintain(): Promise<void> {
    if (this.closed) return;
    const now = Date.now();
    for (const [id, link] of this.links) {
      if (link.open || now - link.since < (this.opts.openTimeoutMs ?? 10_000)) continue;
      this.links.delete(id);
      this.status.stalled += 1;
      link.conn.close();
    }
    this.status.peers = [...this.links.entries()].filter(([, l]) => l.open).map(([id]) => id);
    this.status.dialing = [...this.links.entries()].filter(([, l]) => !l.open).map(([id]) => id);
    if (this.peer.destroyed) {
      this.peer = this.connectSignaling();
      return;
    }
    if (this.peer.disconnected) {
      // The PS (and its signaling server) may have come back, possibly on another port.
      const get = this.opts.fetch ?? ((...a) => fetch(...a));
      const config = await get(new URL('/api/mesh', this.opts.baseUrl), { signal: AbortSignal.timeout(5000) })
        .then(async (r) => parseAs(MeshConfigSchema, await r.json(), 'GET /api/mesh'))
        .catch(() => undefined); // unreachable or malformed: try again at the next round
      if (!config?.enabled) return;
      if (config.port !== this.config.port) {
        this.config = config;
        this.peer.destroy(); // open channels close with it; maintain() dials new ones
        this.peer = this.connectSignaling();
      } else this.peer.reconnect();
      return;
    }
    const outgoing = [...this.links.values()].filter((l) => l.outgoing).length;
    if (!this.status.signaling || this.links.size >= this.config.peers || outgoing >= this.config.peers) return;
    const url = `${new URL(this.opts.baseUrl).protocol}//${this.host}:${this.config.port}${this.config.path}/${this.config.key}/peers`;
    const ids = (await fetch(url, { signal: AbortSignal.timeout(5000) }).then((r) => r.json()).catch(() => [])) as unknown;
    if (!Array.isArray(ids)) return;
    const candidates = ids.filter((id): id is string => typeof id === 'string' && id !== this.status.peerId && !this.links.has(id) && !this.banned.has(id));
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [candidates[i], candidates[j]] = [candidates[j]!, candidates[i]!];
    }
    for (const id of candidates.slice(0, this.config.peers - this.links.size)) this.track(this.peer.connect(id, { serialization: 'binary', reliable: true }), true);
  }

  private track(conn: DataConnection, outgoing: boolean): void {
    const id = conn.peer;
    this.links.get(id)?.conn.close();
    const link: Link = { conn, outgoing, since: Date.now(), open: false, version: 0 };
    this.links.set(id, link);
    conn.on('open', () => {
      link.open = true;
      if (this.relay && this.held) this.send(link, encodeMesh(MeshKind.HAVE, this.layout.hash, this.held.version));
    });
    conn.on('data', (data) => this.receive(id, link, data));
    const gone = () => {
      if (this.links.get(id) === link) this.links.delete(id);
      for (const [k, w] of this.waiting) if (k.startsWith(`${id}:`)) w.resolve(undefined);
    };
    conn.on('close', gone);
    conn.on('error', gone);
  }

  // ---- messages ---------------------------------------------------------------------------

  private receive(id: string, link: Link, data: unknown): void {
    let m: MeshMessage;
    try {
      m = decodeMesh(asBytes(data, id), { layoutHash: this.layout.hash, layoutSize: this.layout.size, peer: id });
    } catch (err) {
      this.refuse(id, err instanceof TabswarmError ? err : new TabswarmError('MESH_BAD_MESSAGE', { peer: id, detail: String(err) }));
      return;
    }
    switch (m.kind) {
      case MeshKind.GOSSIP_REQ: {
        const ours = this.handler?.(m.weights);
        this.send(link, ours ? encodeMesh(MeshKind.GOSSIP_REPLY, this.layout.hash, m.ref, ours) : encodeMesh(MeshKind.NONE, this.layout.hash, m.ref));
        if (ours) this.status.gossipAnswered += 1;
        return;
      }
      case MeshKind.GOSSIP_REPLY:
        return this.settle(`${id}:g${m.ref}`, m);
      case MeshKind.NONE:
        return this.settle(this.waiting.has(`${id}:g${m.ref}`) ? `${id}:g${m.ref}` : `${id}:w`, m);
      case MeshKind.HAVE:
        link.version = m.ref;
        return;
      case MeshKind.WANT:
        if (this.relay && this.held && this.held.version >= m.ref) {
          this.send(link, encodeMesh(MeshKind.RELAY, this.layout.hash, this.held.version, this.held.frame));
          this.status.relayServed += 1;
        } else this.send(link, encodeMesh(MeshKind.NONE, this.layout.hash, m.ref));
        return;
      case MeshKind.RELAY:
        return this.settle(`${id}:w`, m);
    }
  }

  /** Drops the message, counts it, disconnects the peer and never dials it again. */
  private refuse(id: string, err: TabswarmError): void {
    this.status.rejected[err.code] = (this.status.rejected[err.code] ?? 0) + 1;
    this.status.reported.push({ peer: id, code: err.code, at: Date.now() });
    if (this.status.reported.length > 100) this.status.reported.shift();
    console.warn(`tabswarm mesh: ${err.message}; peer disconnected`);
    this.banned.add(id);
    const link = this.links.get(id);
    this.links.delete(id);
    for (const [k, w] of this.waiting) if (k.startsWith(`${id}:`)) w.resolve(undefined);
    link?.conn.close();
  }

  private wait(key: string, ms: number): Promise<MeshMessage | undefined> {
    this.waiting.get(key)?.resolve(undefined);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve: (m) => {
          clearTimeout(waiter.timer);
          if (this.waiting.get(key) === waiter) this.waiting.delete(key);
          resolve(m);
        },
        timer: setTimeout(() => waiter.resolve(undefined), ms),
      };
      this.waiting.set(key, waiter);
    });
  }

  private settle(key: string, m: MeshMessage): void {
    this.waiting.get(key)?.resolve(m);
  }

  private send(link: Link, bytes: Uint8Array): void {
    try {
      link.conn.send(bytes);
    } catch {
      // A channel closing under us: the close handler drops the link.
    }
  }
}
