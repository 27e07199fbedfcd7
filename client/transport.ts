/**
 * The worker's WebSocket connection to the PS: binary frames, replies matched to requests
 * (pulls in order, pushes by sequence number), a timeout on every request. Works with the
 * browser's WebSocket and with the `ws` package in Node (passed in as `WebSocketImpl`).
 */
import { ControlMessageSchema, type ControlMessage } from '../shared/api.ts';
import { TabswarmError, codeForClose } from '../shared/errors.ts';
import { Flag, MsgType, decodeFrame, encodeCodedPush, encodeFrame } from '../shared/protocol.ts';
import { parseAs } from '../shared/validate.ts';
import type { Outgoing } from './state.ts';

/** The subset of the WebSocket API used here, met by the DOM's and by `ws`. */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

export interface PullResult {
  readonly version: number;
  readonly weights: Float32Array;
  /** The whole tagged WEIGHTS frame: the worker's copy to offer a restarted stateless PS. */
  readonly frame: Uint8Array;
}
export interface AckResult {
  readonly version: number;
  readonly seq: number;
  /** The PS had applied this push before and did not apply it again. */
  readonly duplicate: boolean;
  /** An OFFER's copy was taken as a candidate for adoption. */
  readonly adopted: boolean;
}
export type Hello = Extract<ControlMessage, { type: 'hello' }>;

export interface TransportOptions {
  readonly url: string;
  readonly workerId: number;
  readonly layoutHash: number;
  readonly layoutSize: number;
  /** A request with no reply for this long fails with WORKER_TIMEOUT and closes the socket. @default 30000 */
  readonly requestTimeoutMs?: number;
  readonly onControl?: (msg: ControlMessage) => void;
}

interface Pending<T> {
  resolve: (v: T) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;

export class WsTransport {
  private socket: SocketLike | undefined;
  private readonly pulls: Pending<PullResult>[] = [];
  private readonly pushes = new Map<number, Pending<AckResult>>();
  private closedWith: TabswarmError | undefined;
  /** Resolves when the socket closes, with the error that closed it. */
  readonly closed: Promise<TabswarmError>;
  private markClosed!: (e: TabswarmError) => void;
  /** Resolves with the PS's hello, the first message on every connection. */
  readonly hello: Promise<Hello>;
  private markHello!: (h: Hello) => void;
  private toldVersion = 0;
  /**
   * The highest model version the PS has told on this connection (its hello, every ack, every
   * pull): what the PS counts as sent to this session, so a base version claim past it is
   * refused (PS_CLAIM_AHEAD). An honest claim can exceed it only after the PS rolled back
   * (a checkpoint restore): the worker's weights are then from a version the PS never reached.
   */
  get told(): number {
    return this.toldVersion;
  }

  constructor(private readonly opts: TransportOptions, private readonly factory: SocketFactory) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.hello = new Promise((resolve) => (this.markHello = resolve));
  }

  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = this.factory(this.opts.url);
      this.socket = socket;
      socket.binaryType = 'arraybuffer';
      let opened = false;
      socket.onopen = () => {
        opened = true;
        resolve();
      };
      socket.onerror = () => {};
      socket.onclose = (ev) => {
        const code = codeForClose(ev.code);
        const err = code && code !== 'WORKER_DISCONNECTED' ? new TabswarmError(code, { closeCode: ev.code, closeReason: ev.reason }) : new TabswarmError('WORKER_DISCONNECTED', { code: ev.code, reason: ev.reason || 'no reason' });
        // Keep the server's own words: the reason names the error and its details.
        if (ev.reason) err.message = `${err.code} (close ${ev.code}): ${ev.reason}`;
        this.fail(err);
        if (!opened) reject(err);
      };
      socket.onmessage = (ev) => this.receive(ev.data);
    });
  }

  get open(): boolean {
    return this.socket?.readyState === OPEN && !this.closedWith;
  }

  pull(): Promise<PullResult> {
    return this.request((p) => this.pulls.push(p), encodeFrame({ type: MsgType.PULL, layoutHash: this.opts.layoutHash, modelVersion: 0, workerId: this.opts.workerId, seq: 0, count: 0 }), 'pull');
  }

  /** Pushes the sum of `count` gradients as push `seq` (seq >= 1); `flush` marks a buffered flush. */
  push(grad: Float32Array, seq: number, baseVersion: number, count = 1, flush = false): Promise<AckResult> {
    const frame = encodeFrame({ type: MsgType.PUSH, layoutHash: this.opts.layoutHash, modelVersion: baseVersion, workerId: this.opts.workerId, seq, count, flags: flush ? Flag.FLUSH : 0 }, grad);
    return this.request((p) => this.pushes.set(seq, p), frame, `${flush ? 'flush' : 'push'} ${seq}`);
  }

  /** Sends an update that must reach the PS exactly once, under its own sequence number. */
  deliver(out: Outgoing): Promise<AckResult> {
    if (!out.coded) return this.push(out.grad, out.seq, out.baseVersion, out.count, out.flush);
    const header = { type: MsgType.PUSH, layoutHash: this.opts.layoutHash, modelVersion: out.baseVersion, workerId: this.opts.workerId, seq: out.seq, count: out.count, flags: out.flush ? Flag.FLUSH : 0 } as const;
    return this.request((p) => this.pushes.set(out.seq, p), encodeCodedPush(header, out.coded), `${out.flush ? 'flush' : 'push'} ${out.seq}`);
  }

  /** Offers a tagged copy of the weights (an OFFER frame); answered by an ACK with seq 0. */
  offer(frame: Uint8Array): Promise<AckResult> {
    return this.request((p) => this.pushes.set(0, p), frame, 'offer');
  }

  /** Sends raw bytes (tests use this to send malformed frames). */
  sendRaw(bytes: Uint8Array): void {
    this.socket?.send(bytes);
  }

  close(code = 1000, reason = 'worker stopping'): void {
    this.socket?.close(code, reason);
  }

  private request<T>(register: (p: Pending<T>) => void, frame: Uint8Array, what: string): Promise<T> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (!this.open) return Promise.reject(new TabswarmError('WORKER_DISCONNECTED', { code: 0, reason: 'not connected' }));
    const ms = this.opts.requestTimeoutMs ?? 30000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new TabswarmError('WORKER_TIMEOUT', { what, ms });
        this.fail(err);
        this.socket?.close(4003, err.closeReason());
      }, ms);
      register({ resolve, reject, timer });
      this.socket!.send(frame);
    });
  }

  private receive(data: unknown): void {
    if (typeof data === 'string') {
      let msg: ControlMessage;
      try {
        msg = parseAs(ControlMessageSchema, JSON.parse(data), 'a control message');
      } catch (err) {
        // A PS that sends what it cannot mean is broken: reconnect (with backoff) rather than guess.
        const e = err instanceof TabswarmError ? err : new TabswarmError('WORKER_BAD_RESPONSE', { what: 'a control message', detail: 'not JSON' });
        this.fail(e);
        this.socket?.close(e.spec.wsClose, e.closeReason());
        return;
      }
      if (msg.type === 'hello') {
        this.toldVersion = Math.max(this.toldVersion, msg.version);
        this.markHello(msg);
      }
      else this.opts.onControl?.(msg);
      return;
    }
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array((data as Uint8Array).buffer, (data as Uint8Array).byteOffset, (data as Uint8Array).byteLength);
    let frame;
    try {
      frame = decodeFrame(bytes, { layoutHash: this.opts.layoutHash, layoutSize: this.opts.layoutSize });
    } catch (err) {
      this.fail(err as TabswarmError);
      this.socket?.close(1002, 'bad frame from server');
      return;
    }
    if (frame.type === MsgType.WEIGHTS || frame.type === MsgType.ACK) this.toldVersion = Math.max(this.toldVersion, frame.modelVersion);
    if (frame.type === MsgType.WEIGHTS) {
      const p = this.pulls.shift();
      if (p) {
        clearTimeout(p.timer);
        p.resolve({ version: frame.modelVersion, weights: frame.payload, frame: bytes });
      }
    } else if (frame.type === MsgType.ACK) {
      const p = this.pushes.get(frame.seq);
      if (p) {
        this.pushes.delete(frame.seq);
        clearTimeout(p.timer);
        p.resolve({ version: frame.modelVersion, seq: frame.seq, duplicate: (frame.flags & Flag.DUPLICATE) !== 0, adopted: (frame.flags & Flag.ADOPTED) !== 0 });
      }
    }
  }

  private fail(err: TabswarmError): void {
    if (this.closedWith) return;
    this.closedWith = err;
    for (const p of this.pulls.splice(0)) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    for (const p of this.pushes.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pushes.clear();
    this.markClosed(err);
  }
}
