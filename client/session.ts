/**
 * The worker's HTTP session with the PS node it writes to: join (resuming its id when it has
 * one), the status report, and strict reads of the weights from a cluster's tail. Every answer
 * is checked against its schema in shared/api.ts (a malformed one is WORKER_BAD_RESPONSE), and
 * an error the PS sent comes back as the same catalogued TabswarmError, details included
 * (`TabswarmError.fromJSON`), for client/failures.ts to classify.
 */
import { JoinResponseSchema, ReportResponseSchema, type JoinResponse, type ReportRequest, type ReportResponse } from '../shared/api.ts';
import { TabswarmError } from '../shared/errors.ts';
import { MsgType, decodeFrame } from '../shared/protocol.ts';
import { parseAs } from '../shared/validate.ts';
import type { WorkerStatus } from './status.ts';
import type { PullResult } from './transport.ts';

/** What the last join said, without its session token: kept across rejoins and reloads. */
export type Identity = Omit<JoinResponse, 'token'>;

export interface SessionOptions {
  /** The PS the worker was given (its page's origin); writes start there. */
  readonly baseUrl: string;
  readonly fetch: typeof fetch;
  readonly userAgent: string;
  /** Timeout of every request. @default 10000 */
  readonly requestTimeoutMs?: number;
}

/** The error an HTTP endpoint answered with: the catalogued one it sent, else an outage. */
export async function httpError(res: Response, what: string): Promise<TabswarmError> {
  const body: unknown = await res.json().catch(() => undefined);
  return TabswarmError.fromJSON(body) ?? new TabswarmError('WORKER_DISCONNECTED', { code: res.status, reason: `${what}: ${res.statusText || 'no reason'}` });
}

export class PsSession {
  /** The node writes go to: the page's own PS, or the head of its cluster. */
  url: string;
  /** The session on `url`; undefined before the first join and after anything that ends it. */
  current: JoinResponse | undefined;
  /** The worker's identity and the run's parameters, from the last join or from the journal. */
  info: Identity | undefined;

  constructor(private readonly opts: SessionOptions) {
    this.url = new URL(opts.baseUrl).toString();
  }

  private get timeoutMs(): number {
    return this.opts.requestTimeoutMs ?? 10000;
  }

  /** POST /api/join on `url`, under the worker's id when it has one (exactly-once across PS restarts). */
  async join(): Promise<JoinResponse> {
    const info = this.info;
    const resume = info?.workerId && info.idTag ? { workerId: info.workerId, idTag: info.idTag } : undefined;
    const res = await this.opts.fetch(new URL('/api/join', this.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userAgent: this.opts.userAgent, ...(resume ? { resume } : {}) }),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok) throw await httpError(res, 'POST /api/join');
    const join = parseAs(JoinResponseSchema, await res.json(), 'POST /api/join');
    this.current = join;
    const { token: _token, ...identity } = join;
    this.info = identity;
    return join;
  }

  /** The session is gone (the PS said so): the next connection joins again, under the same id. */
  end(): void {
    this.current = undefined;
  }

  /** The id tag does not verify with this deployment: join as a new worker. */
  forgetIdentity(): void {
    this.current = undefined;
    this.info = this.info && { ...this.info, workerId: 0, idTag: '' };
  }

  /** Writes go to another node (a new head): sessions are per node, so join it afresh. */
  moveTo(url: string): void {
    this.url = url;
    this.current = undefined;
  }

  /** What proves this worker to the PS on plain requests: the session's token, else its id tag. */
  authorization(): string | undefined {
    if (this.current) return `Bearer ${this.current.token}`;
    return this.info?.workerId && this.info.idTag ? `Worker ${this.info.workerId}:${this.info.idTag}` : undefined;
  }

  /** The WebSocket URL of the current session. */
  socketUrl(): string {
    const join = this.current!;
    const url = new URL(`${join.wsPath}?token=${join.token}`, this.url);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.toString();
  }

  /** POST /api/report; the answer carries the shards the PS wants this worker on. */
  async report(status: Readonly<WorkerStatus>): Promise<ReportResponse> {
    const join = this.current;
    if (!join) throw new TabswarmError('WORKER_DISCONNECTED', { code: 0, reason: 'no session' });
    const res = await this.opts.fetch(new URL('/api/report', this.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${join.token}` },
      body: JSON.stringify(reportBody(status)),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (!res.ok) throw await httpError(res, 'POST /api/report');
    return parseAs(ReportResponseSchema, await res.json(), 'POST /api/report');
  }

  /**
   * GET /api/weights on a cluster's tail (strict reads: only updates every node holds). The
   * worker holds no session there: it presents its id tag.
   */
  async tailWeights(tail: string): Promise<PullResult> {
    const info = this.info!;
    const res = await this.opts.fetch(new URL('/api/weights', tail), { headers: { authorization: `Worker ${info.workerId}:${info.idTag}` }, signal: AbortSignal.timeout(this.timeoutMs) });
    if (!res.ok) throw await httpError(res, 'GET /api/weights on the tail');
    const bytes = new Uint8Array(await res.arrayBuffer());
    const frame = decodeFrame(bytes, { layoutHash: info.layoutHash, layoutSize: info.layoutSize });
    if (frame.type !== MsgType.WEIGHTS) throw new TabswarmError('WORKER_BAD_RESPONSE', { what: 'GET /api/weights on the tail', detail: `frame type ${frame.type}, not WEIGHTS` });
    return { version: frame.modelVersion, weights: frame.payload, frame: bytes };
  }
}

/** What the report tells the PS (shown in /api/status and the admin console). */
export function reportBody(s: Readonly<WorkerStatus>): ReportRequest {
  return {
    backend: s.backend,
    ...(s.backendReason ? { backendReason: s.backendReason.slice(0, 300) } : {}),
    examplesPerSec: s.examplesPerSec,
    steps: s.steps,
    numTensors: s.numTensors,
    state: s.state,
    buffered: s.buffered,
    bufferedSince: s.bufferedSince,
    ...(Number.isFinite(s.loss) ? { loss: s.loss } : {}),
    ...(s.lastFlush ? { lastFlush: { count: s.lastFlush.count, version: s.lastFlush.version, duplicate: s.lastFlush.duplicate, at: s.lastFlush.at } } : {}),
  };
}
