/**
 * The PS's HTTP API: join and leave, the model and status documents, shard downloads, and the
 * HTTP transport for workers that do not want a WebSocket (GET weights, POST a gradient).
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  FlushesResponseSchema, JoinBodySchema, JoinResponseSchema, LeaveResponseSchema, ReportRequestSchema, ReportResponseSchema, ShardParamsSchema,
  type FlushesResponse, type JoinRequest, type JoinResponse, type LeaveResponse, type ReportRequest, type ReportResponse, type ShardParams, type StatusResponse,
} from '../../shared/api.ts';
import { TabswarmError } from '../../shared/errors.ts';
import { MAX_RECORD_ENTRIES } from '../../shared/protocol.ts';
import { SIGNATURE_ALGORITHM } from '../../shared/signing.ts';
import type { ResolvedOptions } from '../config.ts';
import type { Shards } from '../data.ts';
import { FULL_RETRY_AFTER_SEC } from '../ps/admission.ts';
import type { ParameterServer } from '../ps/service.ts';
import type { WorkerSession } from '../ps/sessions.ts';

export interface ApiOptions {
  ps: ParameterServer;
  shards: Shards;
  options: ResolvedOptions;
}

const OCTETS = 'application/octet-stream';
/** Room for the meta block (tag + applied record) of a weights frame. */
export const META_ALLOWANCE = 128 + 12 * MAX_RECORD_ENTRIES;
/** Body limits of the JSON routes: a join or report is a few hundred bytes. */
const JSON_BODY_LIMIT = 16 << 10;
/** The report fields a worker may set; anything else in its body never reaches the status. */
const REPORT_KEYS = Object.keys(ReportRequestSchema.properties);
/** Sessions ended per sweep step before the sweep yields to the event loop. */
const SWEEP_CHUNK = 64;

export async function apiPlugin(app: FastifyInstance, { ps, shards, options }: ApiOptions): Promise<void> {
  const dataKey = `${options.dataset}.${shards.count}.${options.seed}`;
  const startedAt = Date.now();
  const rate = new UpdateRate(() => ps.appliedCount);

  // Gradient bodies: accept up to twice a full frame so the decoder, not the body parser,
  // reports an oversize frame with its catalogue code; larger bodies are cut off by Fastify.
  app.addContentTypeParser(OCTETS, { parseAs: 'buffer', bodyLimit: 2 * ps.maxFrameBytes + META_ALLOWANCE }, (_req, body, done) => done(null, body));

  const authenticate = (request: FastifyRequest): WorkerSession => {
    const header = request.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
    return ps.sessions.authenticate(token);
  };

  // Joins per address: @fastify/rate-limit (an LRU of at most 5000 addresses). Only routes
  // that ask for it are limited; its refusal is the catalogue's PS_RATE_LIMITED, answered by
  // the error handler with the Retry-After header the plugin set.
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (request, context) => new TabswarmError('PS_RATE_LIMITED', { address: request.ip, max: context.max, window: '1 minute', retryAfterSec: Math.ceil(context.ttl / 1000) }),
  });
  const joinLimit = { rateLimit: options.joinRate > 0 ? { max: options.joinRate, timeWindow: 60_000 } : false as const };

  // Every refusal below (a schema mismatch, a thrown TabswarmError) is answered and counted by
  // the error handler (server/app.ts); nothing here counts.
  app.post('/api/join', { bodyLimit: JSON_BODY_LIMIT, config: joinLimit, schema: { body: JoinBodySchema, response: { 200: JoinResponseSchema } } }, async (request, reply): Promise<JoinResponse> => {
    const body = (request.body ?? {}) as JoinRequest;
    let session: WorkerSession;
    try {
      session = ps.join(body.userAgent ?? String(request.headers['user-agent'] ?? ''), body.resume, request.ip);
    } catch (err) {
      // A full PS or a full address: retryable, and the client is told when.
      if (err instanceof TabswarmError && (err.code === 'PS_FULL' || err.code === 'PS_TOO_MANY_SESSIONS')) reply.header('retry-after', String(FULL_RETRY_AFTER_SEC));
      if (err instanceof TabswarmError && err.code === 'PS_KEPT_OUT') reply.header('retry-after', String(err.details.retryAfterSec));
      throw err;
    }
    return {
      workerId: session.id,
      idTag: ps.signer.idTag(session.id),
      token: session.token,
      model: options.model,
      // Local steps: the workers' (inner) rate, and an outage is a local phase like any other.
      lr: options.localSteps > 1 ? options.lr : ps.store.optimizer.lr,
      bufferMode: options.localSteps > 1 ? 'local' : options.bufferMode,
      localSteps: options.localSteps,
      lastSeq: ps.store.appliedMark(session.id)?.seq ?? 0,
      layoutHash: ps.layout.hash,
      layoutSize: ps.layout.size,
      batch: options.batch,
      pullEvery: options.pullEvery,
      dataset: options.dataset,
      dataKey,
      shardCount: shards.count,
      shards: session.shards,
      wsPath: '/ws',
      codecs: [...ps.codecs],
    };
  });

  app.post('/api/leave', { bodyLimit: JSON_BODY_LIMIT, schema: { response: { 200: LeaveResponseSchema } } }, async (request): Promise<LeaveResponse> => {
    const session = authenticate(request);
    ps.leave(session.id, 'left');
    return { ok: true };
  });

  app.post('/api/report', { bodyLimit: JSON_BODY_LIMIT, schema: { body: ReportRequestSchema, response: { 200: ReportResponseSchema } } }, async (request): Promise<ReportResponse> => {
    const session = authenticate(request);
    // Only the declared report fields are kept: a report cannot set the id, shards or pushes
    // that the status shows from the PS's own view.
    const body = request.body as Record<string, unknown>;
    const picked: Record<string, unknown> = {};
    for (const key of REPORT_KEYS) if (body[key] !== undefined) picked[key] = body[key];
    session.report = { ...session.report, ...(picked as ReportRequest) };
    return { shards: session.shards };
  });

  app.get('/api/shards/:key/:index', { schema: { params: ShardParamsSchema } }, async (request, reply) => {
    // Only workers download the data: a session token, or (a worker between sessions, e.g.
    // reading from a chain's tail) `Worker <id>:<id tag>` proving an id this deployment issued.
    const worker = /^Worker (\d{1,10}):([0-9a-f]{64})$/.exec(request.headers.authorization ?? '');
    if (!worker || !ps.signer.verifyIdTag(Number(worker[1]), worker[2]!)) authenticate(request);
    const { key, index } = request.params as ShardParams;
    if (key !== dataKey) throw new TabswarmError('PS_BAD_REQUEST', { detail: `shard set '${key}' is not this server's '${dataKey}'` });
    const i = Number(index);
    if (!/^\d+$/.test(index)) throw new TabswarmError('DATA_NO_SHARD', { shard: index, shards: shards.count });
    const blob = shards.blob(i);
    return reply.type(OCTETS).header('cache-control', 'private, max-age=31536000, immutable').send(Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength));
  });

  app.get('/api/weights', async (request, reply) => {
    // A session token, or (strict reads from a chain's tail, where the worker has no session)
    // `Authorization: Worker <id>:<id tag>`: the tag proves the id under the deployment's secret.
    const worker = /^Worker (\d{1,10}):([0-9a-f]{64})$/.exec(request.headers.authorization ?? '');
    let session: WorkerSession | undefined;
    if (!worker || !ps.signer.verifyIdTag(Number(worker[1]), worker[2]!)) session = authenticate(request);
    ps.strategy.admitRead();
    if (session) {
      // A pull over HTTP is work and tells the claim check what this session was sent, as a
      // pull over the WebSocket does (ps.handle).
      session.lastWork = Date.now();
      ps.claims.served(session, ps.store.version, true);
    }
    const frame = ps.weightsFrame();
    ps.metrics.weightsBytesSent.inc(frame.byteLength);
    return reply.type(OCTETS).send(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
  });

  app.post('/api/push', async (request, reply) => {
    const session = authenticate(request);
    const body = request.body;
    if (!Buffer.isBuffer(body)) throw new TabswarmError('PS_BAD_REQUEST', { detail: `body must be ${OCTETS}` });
    const ack = await ps.handle(session, new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
    return reply.type(OCTETS).send(Buffer.from(ack.buffer, ack.byteOffset, ack.byteLength));
  });

  app.get('/api/flushes', { schema: { response: { 200: FlushesResponseSchema } } }, async (): Promise<FlushesResponse> => ({ flushes: ps.flushLog }));

  // /api/model and /api/status hold open objects (model layers, strategy status): no response
  // schema, which would drop the fields it does not name.
  app.get('/api/model', async () => ({
    model: options.modelSpec,
    layout: { hash: ps.layout.hash, size: ps.layout.size, entries: ps.layout.entries },
    hyperparameters: options.localSteps > 1
      ? { lr: options.lr, momentum: 0, batch: options.batch, pullEvery: options.pullEvery, rule: 'outer', localSteps: options.localSteps, outer: { lr: ps.store.optimizer.lr, momentum: ps.store.optimizer.momentum, nesterov: true } }
      : { lr: ps.store.optimizer.lr, momentum: ps.store.optimizer.momentum, batch: options.batch, pullEvery: options.pullEvery, rule: options.rule, localSteps: 1 },
    strategy: options.strategy,
    dataset: options.dataset,
    shards: shards.count,
    // Workers verify weights relayed by peers with this key (shared/signing.ts).
    weightsKey: { algorithm: SIGNATURE_ALGORITHM, publicKey: ps.signer.publicKey },
    codecs: [...ps.codecs],
  }));

  app.get('/api/status', async (): Promise<StatusResponse> => ({
    model: options.model,
    dataset: options.dataset,
    layoutHash: ps.layout.hash,
    version: ps.store.version,
    updatesApplied: ps.appliedCount,
    updatesPerSec: rate.perSecond(),
    uptimeSec: (Date.now() - startedAt) / 1000,
    strategy: { name: ps.strategy.name, ...ps.strategy.status() },
    // The report first: the PS's own view wins, except `state`, where the worker's word is more
    // precise (training, buffering, ...) than the PS's (connected).
    workers: ps.sessions.all().map((s) => ({
      ...s.report,
      id: s.id,
      state: s.report.state ?? s.state,
      sessionState: s.state,
      shards: s.shards,
      pushes: s.pushes,
      lastStaleness: s.lastStaleness,
      lastSeenMsAgo: Date.now() - s.lastSeen,
      userAgent: s.userAgent,
    })),
    robustness: ps.robustness(),
  }));

  app.get('/metrics', async (_request, reply) => {
    return reply.type(ps.metrics.registry.contentType).send(await ps.metrics.registry.metrics());
  });

  // Expire sessions that lost their socket and went quiet, or that hold a socket and do no
  // work; their shards go to the others. A long list is ended in chunks, yielding between them,
  // so a mass expiry (a thousand idle sockets) never blocks the event loop for long.
  let sweeping = false;
  const sweep = setInterval(() => {
    rate.sample();
    if (sweeping) return;
    const expired = ps.sessions.expired();
    if (expired.length === 0) return;
    sweeping = true;
    const step = (from: number): void => {
      for (const { session: s, why } of expired.slice(from, from + SWEEP_CHUNK)) {
        if (ps.sessions.get(s.id) !== s) continue;
        if (why === 'no-work') {
          const err = new TabswarmError('PS_NO_WORK', { worker: s.id, ms: options.workIdleMs });
          if (s.closeSocket) ps.rejected(err, 'ws');
          s.closeSocket?.(err.spec.wsClose, err.closeReason());
          ps.leave(s.id, `no push or pull for more than ${options.workIdleMs} ms`);
        } else ps.leave(s.id, `idle for more than ${options.idleMs} ms`);
      }
      if (from + SWEEP_CHUNK < expired.length) setImmediate(step, from + SWEEP_CHUNK);
      else sweeping = false;
    };
    step(0);
  }, 1000);
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));
}

/** Updates per second over the last few one-second samples. */
class UpdateRate {
  private readonly samples: [number, number][] = [];
  constructor(private readonly count: () => number) {}
  sample(now = Date.now()): void {
    this.samples.push([now, this.count()]);
    if (this.samples.length > 6) this.samples.shift();
  }
  perSecond(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last[0] === first[0]) return 0;
    return ((last[1] - first[1]) * 1000) / (last[0] - first[0]);
  }
}
