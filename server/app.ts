/**
 * buildServer(opts) assembles the embedded parameter server from Fastify plugins: the PS API
 * and HTTP transport, the WebSocket transport, metrics, evaluation, and the worker page.
 * Nothing here listens; server/cli.ts does. Tests call buildServer and app.inject or listen.
 */
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { createServer, type Server } from 'node:http';
import { TabswarmError } from '../shared/errors.ts';
import { deriveLayout, initWeights } from '../shared/layout.ts';
import { loadDataset, Shards, type Dataset } from './data.ts';
import { resolveOptions, type ResolvedOptions, type ServerOptions } from './config.ts';
import { createMetrics } from './metrics.ts';
import { adminPlugin, resolveAdminToken } from './plugins/admin.ts';
import { chainPlugin, type ChainPluginOptions } from './chain/plugin.ts';
import { singleClusterPlugin } from './plugins/single-cluster.ts';
import { apiPlugin, META_ALLOWANCE } from './plugins/api.ts';
import { evalPlugin } from './plugins/eval.ts';
import { meshPlugin } from './plugins/mesh.ts';
import { staticPlugin } from './plugins/static.ts';
import { MemberOrigins, corsPlugin } from './plugins/cors.ts';
import { Tarpit, trustProxyOf } from './ps/admission.ts';
import { wsPlugin } from './plugins/ws.ts';
import { ShardAssignment } from './ps/assignment.ts';
import { ParameterServer } from './ps/service.ts';
import { Sessions } from './ps/sessions.ts';
import { Signer } from './ps/signer.ts';
import { ParameterStore } from './ps/store.ts';
import { configureRobustness } from './ps/aggregate/configure.ts';
import { getRule, outerRule } from './ps/rules.ts';
import type { RecoveryStrategy } from './ps/strategy.ts';
import { createStrategy } from './strategies/index.ts';

export interface BuildOptions extends Partial<ServerOptions> {
  /** Fastify's logger option. @default false */
  logger?: FastifyServerOptions['logger'];
  /** A ready-made recovery strategy, overriding `strategy` (the name); a chain node passes `chain(inner)`. */
  strategyInstance?: RecoveryStrategy;
  /** A preloaded data set (tests share one across servers). */
  data?: Dataset;
  /**
   * Serves a chain node's routes (server/chain/node.ts builds it, and passes the chain strategy
   * wrapping the replica as `strategyInstance`).
   */
  chain?: Omit<ChainPluginOptions, 'ps' | 'adminToken'>;
}

export interface Built {
  readonly app: FastifyInstance;
  readonly ps: ParameterServer;
  readonly options: ResolvedOptions;
  readonly dataset: Dataset;
  /** The admin API's bearer token; `generated` when it was made up here (the CLI prints it). */
  readonly admin: { readonly token: string; readonly generated: boolean };
}

export async function buildServer(opts: BuildOptions = {}): Promise<Built> {
  const options = resolveOptions(opts);
  const dataset = opts.data ?? loadDataset(options.dataset);
  const shards = new Shards(dataset, Math.min(options.shards, dataset.train.count), options.seed);
  const layout = deriveLayout(options.modelSpec);
  const app = Fastify<Server>({
    logger: withRedactedUrls(opts.logger ?? false),
    bodyLimit: 1 << 20,
    // Behind a reverse proxy the client's address (per-address limits) is X-Forwarded-For's.
    trustProxy: trustProxyOf(options.trustProxy) as boolean | string | string[], // Fastify takes a hop count too
    // Slow clients must not hold the server: a request (headers and body) must arrive within
    // --request-timeout-ms, checked every second (Node's default check runs every 30 s), and an
    // idle connection closes after --connection-timeout-ms. Upgraded WebSockets are exempt (ws
    // clears the socket timeout); their liveness is the ping in plugins/ws.ts.
    serverFactory: (handler) => {
      const server = createServer({
        connectionsCheckingInterval: 1000,
        requestTimeout: options.requestTimeoutMs,
        headersTimeout: options.requestTimeoutMs > 0 ? Math.min(options.requestTimeoutMs, 60000) : 60000,
        keepAliveTimeout: 72000,
      }, handler);
      server.setTimeout(options.connectionTimeoutMs);
      return server;
    },
    // Untrusted JSON is refused, not repaired: no type coercion, no silent removal of extra fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: true } },
  });
  const metrics = createMetrics();
  const signer = new Signer(options.secret ?? process.env.TABSWARM_SECRET, options.runId);
  if (signer.ephemeral) {
    app.log.warn('no --secret or TABSWARM_SECRET: tags on worker ids and weight copies die with this process, so a restarted PS cannot trust them');
  }
  const strategy = opts.strategyInstance ?? createStrategy(options.strategy, options);
  const ps = new ParameterServer({
    layout,
    // Local steps (DiLoCo): the PS's optimizer is the outer one, Nesterov SGD on model deltas.
    store: new ParameterStore(layout, initWeights(layout, options.seed), options.localSteps > 1 ? { lr: options.outerLr, momentum: options.outerMomentum, nesterov: true } : { lr: options.lr, momentum: options.momentum }),
    strategy,
    sessions: new Sessions({ maxWorkers: options.maxWorkers, idleMs: options.idleMs, workIdleMs: options.workIdleMs, maxSessionsPerAddress: options.maxSessionsPerAddress }),
    assignment: new ShardAssignment(shards.count),
    metrics,
    log: app.log,
    signer,
    codecs: options.codecs,
  });

  ps.store.rule = options.localSteps > 1 ? outerRule(options.lr) : getRule(options.rule);
  ps.store.recordBounds = { horizon: options.recordHorizon, max: options.recordMax };
  configureRobustness(ps, options);

  // The one place an HTTP refusal is answered and counted (tabswarm_frames_rejected_total, by
  // code): a TabswarmError thrown by a route or hook (auth, admin token, a refused frame), or
  // Fastify's own 4xx (schema mismatch, oversize body) mapped to its catalogue code. Routes and
  // hooks only throw; the WebSocket side counts in ws.ts `refuse`.
  const tarpit = new Tarpit(options.refusalDelayMs);
  app.setErrorHandler(async (err: Error & { statusCode?: number }, request, reply) => {
    const refusal = asRefusal(err, request.headers['content-length'], ps.maxFrameBytes);
    if (refusal) {
      ps.rejected(refusal, 'http');
      // A flooding client waits for its refusal, so its loop cannot outrun the PS (admission.ts).
      if (refusal.code === 'PS_RATE_LIMITED') await tarpit.hold();
      return reply.code(refusal.spec.http).send(refusal.toJSON());
    }
    request.log.error({ err: err as Error }, 'unhandled error');
    return reply.code(500).send({ code: 'INTERNAL', message: 'internal error; see the server log', retryable: true });
  });

  const chain = opts.chain;
  // On a chain node, every node seen in a view (a tab loaded from a node that died still reaches the others).
  const members = chain ? new MemberOrigins() : undefined;
  if (chain && members) {
    members.note(chain.replica.currentView.nodes.map((n) => n.url));
    chain.replica.membership.on('view', (v) => members.note(v.nodes.map((n) => n.url)));
  }
  await app.register(corsPlugin, { corsOrigin: options.corsOrigin, ...(members ? { members } : {}) });
  await strategy.start({ store: ps.store, log: app.log, signer, ps, reportDurable: () => {} });
  // One WebSocket server for the worker socket and the chain's node-to-node link. Frames up to
  // twice a legal worker frame reach the decoder (counted as PROTO_OVERSIZE); a chain STATE
  // holds weights, velocity and history; beyond the limit ws closes the socket with 1009.
  const chainBytes = opts.chain ? 8 * layout.size + (1 << 21) : 0;
  await app.register(websocket, { options: { maxPayload: Math.max(2 * ps.maxFrameBytes + META_ALLOWANCE, chainBytes) } });
  await app.register(apiPlugin, { ps, shards, options });
  await app.register(wsPlugin, { ps, wsPingMs: options.wsPingMs, maxQueuedBytes: options.maxQueuedBytes });
  await app.register(evalPlugin, { ps, dataset, options });
  await app.register(meshPlugin, { options });
  const admin = resolveAdminToken(options.adminToken);
  await app.register(adminPlugin, { ps, token: admin.token, options });
  if (opts.chain) await app.register(chainPlugin, { ...opts.chain, ps, adminToken: admin.token });
  else await app.register(singleClusterPlugin);
  await app.register(staticPlugin);
  app.addHook('onClose', async () => {
    for (const s of ps.sessions.all()) s.closeSocket?.(1001, 'server shutting down');
    await strategy.stop();
  });
  return { app, ps, options, dataset, admin };
}

/**
 * Fastify's logger with the session token cut out of logged URLs (`/ws?token=...`): a log
 * line must not hand a reader someone's session.
 */
function withRedactedUrls(logger: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (!logger) return logger;
  const base = typeof logger === 'object' ? logger : {};
  if ('child' in base && typeof base.child === 'function') return logger; // a ready-made pino instance
  const req = (r: { method?: string; url?: string; ip?: string; socket?: { remotePort?: number } }) => ({
    method: r.method,
    url: redactUrl(r.url ?? ''),
    remoteAddress: r.ip,
    remotePort: r.socket?.remotePort,
  });
  return { ...base, serializers: { ...(base as { serializers?: object }).serializers, req } } as FastifyServerOptions['logger'];
}

/** A URL with the values of `token` query parameters replaced. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]');
}

/** The catalogued refusal an error stands for; undefined for a server fault (answered 500). */
function asRefusal(err: Error & { statusCode?: number }, contentLength: string | undefined, maxFrameBytes: number): TabswarmError | undefined {
  if (err instanceof TabswarmError) return err;
  const status = err.statusCode;
  if (!status || status < 400 || status >= 500) return undefined;
  return status === 413
    ? new TabswarmError('PROTO_OVERSIZE', { bytes: contentLength ?? '?', limit: maxFrameBytes })
    : new TabswarmError('PS_BAD_REQUEST', { detail: err.message });
}
