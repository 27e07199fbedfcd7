/**
 * A real PS in this process (buildServer, listening on loopback) and a worker spoken to by hand
 * over real sockets: join, pull and push over HTTP or a WebSocket. Shared by the admission,
 * liveness, backpressure and bounded-record tests and by bench/abuse.ts.
 */
import WebSocket from 'ws';
import type { JoinResponse } from '../shared/api.ts';
import { MsgType, decodeFrame, encodeFrame } from '../shared/protocol.ts';
import { buildServer, type BuildOptions, type Built } from '../server/app.ts';
import { loadDataset, type Dataset } from '../server/data.ts';

let synthetic: Dataset | undefined;

export interface TestPs {
  readonly built: Built;
  readonly url: string;
  close(): Promise<void>;
}

/** A small PS (mnist-logreg on synthetic data, no evaluation, no mesh) with `opts` on top. */
export async function startTestPs(opts: BuildOptions = {}): Promise<TestPs> {
  synthetic ??= loadDataset('synthetic');
  const built = await buildServer({ model: 'mnist-logreg', data: synthetic, dataset: 'synthetic', evalEveryMs: 0, meshPeers: 0, secret: 'abuse-tests-secret-0123456789', ...opts });
  const url = await built.app.listen({ port: 0, host: '127.0.0.1' });
  return { built, url, close: () => built.app.close() };
}

export interface Answer<T = unknown> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

export async function postJson<T = Record<string, unknown>>(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer<T>> {
  const res = await fetch(new URL(path, url), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(10000) });
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

/** POST /api/join; `from` sets X-Forwarded-For (only honoured with --trust-proxy). */
export async function join(url: string, opts: { from?: string; resume?: { workerId: number; idTag: string } } = {}): Promise<Answer<JoinResponse & { code?: string }>> {
  return postJson(url, '/api/join', { userAgent: 'abuse-test', ...(opts.resume ? { resume: opts.resume } : {}) }, opts.from ? { 'x-forwarded-for': opts.from } : {});
}

export async function mustJoin(url: string, opts: Parameters<typeof join>[1] = {}): Promise<JoinResponse> {
  const res = await join(url, opts);
  if (res.status !== 200) throw new Error(`join answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** GET /api/weights with the session token: the version and the applied-push record. */
export async function pullHttp(url: string, join: JoinResponse): Promise<{ version: number; record: { workerId: number; seq: number; version: number }[] }> {
  const res = await fetch(new URL('/api/weights', url), { headers: { authorization: `Bearer ${join.token}` }, signal: AbortSignal.timeout(10000) });
  if (res.status !== 200) throw new Error(`GET /api/weights answered ${res.status}: ${await res.text()}`);
  const frame = decodeFrame(new Uint8Array(await res.arrayBuffer()), { layoutHash: join.layoutHash, layoutSize: join.layoutSize });
  return { version: frame.modelVersion, record: [...frame.meta!.record] };
}

/** A small gradient push over HTTP; answers the status and, when acked, the ack's version and flags. */
export async function pushHttp(url: string, join: JoinResponse, seq: number, baseVersion: number): Promise<{ status: number; version?: number; flags?: number; code?: string }> {
  const grad = new Float32Array(join.layoutSize).fill(1e-4);
  const frame = encodeFrame({ type: MsgType.PUSH, layoutHash: join.layoutHash, modelVersion: baseVersion, workerId: join.workerId, seq, count: 1 }, grad);
  const res = await fetch(new URL('/api/push', url), { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${join.token}` }, body: new Blob([frame as Uint8Array<ArrayBuffer>]), signal: AbortSignal.timeout(10000) });
  if (res.status !== 200) return { status: res.status, code: ((await res.json()) as { code?: string }).code };
  const ack = decodeFrame(new Uint8Array(await res.arrayBuffer()), { layoutHash: join.layoutHash, layoutSize: join.layoutSize });
  return { status: 200, version: ack.modelVersion, flags: ack.flags };
}

/** A worker socket that answers nothing by itself: replies are queued for `next()`. */
export class RawWorkerSocket {
  readonly ws: WebSocket;
  private readonly inbox: (Buffer | string)[] = [];
  private waiters: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, join: JoinResponse, opts: { autoPong?: boolean } = {}) {
    const u = new URL(`${join.wsPath}?token=${join.token}`, url);
    u.protocol = 'ws:';
    this.ws = new WebSocket(u, { autoPong: opts.autoPong ?? true });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.inbox.push(isBinary ? data : data.toString());
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve();
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
  }

  /** The next message (the hello first), within `ms`. */
  async next(ms = 5000): Promise<Buffer | string> {
    const deadline = Date.now() + ms;
    while (this.inbox.length === 0) {
      if (Date.now() > deadline) throw new Error(`no message within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.inbox.shift()!;
  }

  pull(join: JoinResponse): void {
    this.ws.send(encodeFrame({ type: MsgType.PULL, layoutHash: join.layoutHash, modelVersion: 0, workerId: join.workerId, seq: 0, count: 0 }));
  }

  push(join: JoinResponse, seq: number, baseVersion: number): void {
    const grad = new Float32Array(join.layoutSize).fill(1e-4);
    this.ws.send(encodeFrame({ type: MsgType.PUSH, layoutHash: join.layoutHash, modelVersion: baseVersion, workerId: join.workerId, seq, count: 1 }, grad));
  }

  close(): void {
    this.ws.terminate();
  }
}

/** The value of tabswarm_frames_rejected_total for one code. */
export async function rejectedCount(built: Built, code: string): Promise<number> {
  const m = await built.ps.metrics.framesRejected.get();
  return m.values.filter((v) => v.labels.reason === code).reduce((n, v) => n + v.value, 0);
}
