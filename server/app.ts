/**
 * buildServer(opts) assembles the embedded parameter server from Fastify plugins: the PS API
 * and HTTP transport, the WebSocket transport, metrics, evaluation, and the worker page.
 * Nothing here listens; server/cli.ts does. Tests call buildServer and app.inject or listen.
 */
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { TabswarmError } from '../shared/errors.ts';
import { deriveLayout, initWeights } from '../shared/layout.ts';
import { loadDataset, Shards, type Dataset } from './data.ts';
import { resolveOptions, type ResolvedOptions, type ServerOptions } from './config.ts';
import { createMetrics } from './metrics.ts';
import { adminPlugin, resolveAdminToken } from './plugins/admin.ts';
import { chainPlugin, type ChainPluginOptions } from './chain/plugin.ts';
import { apiPlugin, META_ALLOWANCE } from './plugins/api.ts';
import { evalPlugin } from './plugins/eval.ts';
import { meshPlugin } from './plugins/mesh.ts';
import { staticPlugin } from './plugins/static.ts';
import { wsPlugin } from './plugins/ws.ts';
import { ShardAssignment } from './ps/assignment.ts';
import { ParameterServer } from './ps/service.ts';
import { Sessions } from './ps/sessions.ts';
import { Signer } from './ps/signer.ts';
import { ParameterStore } from './ps/store.ts';
import { configureRobustness } from './ps/aggregate/configure.ts';
import { getRule } from './ps/rules.ts';
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
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: 1 << 20,
    // Untrusted JSON is refused, not repaired: no type coercion, no silent removal of extra fields.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: true } },
  });
  const metrics = createMetrics();
  const signer = new Signer(options.secret ?? process.env.TABSWARM_SECRET);
  if (signer.ephemeral) {
    app.log.warn('no --secret or TABSWARM_SECRET: tags on worker ids and weight copies die with this process, so a restarted PS cannot trust them');
  }
  const strategy = opts.strategyInstance ?? createStrategy(options.strategy, options);
  const ps = new ParameterServer({
    layout,
    store: new ParameterStore(layout, initWeights(layout, options.seed), { lr: options.lr, momentum: options.momentum }),
    strategy,
    sessions: new Sessions({ maxWorkers: options.maxWorkers, idleMs: options.idleMs }),
    assignment: new ShardAssignment(shards.count),
    metrics,
    log: app.log,
    signer,
  });

  ps.store.rule = getRule(options.rule);
  configureRobustness(ps, options);

  // The one place an HTTP refusal is answered and counted (tabswarm_frames_rejected_total, by
  // code): a TabswarmError thrown by a route or hook (auth, admin token, a refused frame), or
  // Fastify's own 4xx (schema mismatch, oversize body) mapped to its catalogue code. Routes and
  // hooks only throw; the WebSocket side counts in ws.ts `refuse`.
  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    const refusal = asRefusal(err, request.headers['content-length'], ps.maxFrameBytes);
    if (refusal) {
      ps.rejected(refusal, 'http');
      return reply.code(refusal.spec.http).send(refusal.toJSON());
    }
    request.log.error({ err: err as Error }, 'unhandled error');
    return reply.code(500).send({ code: 'INTERNAL', message: 'internal error; see the server log', retryable: true });
  });

  if (opts.chain) {
    // A worker page loaded from one node writes to the head, another origin: let it. The API
    // authenticates with bearer tokens, never cookies, so any origin may call it.
    app.addHook('onRequest', async (request, reply) => {
      if (request.url.startsWith('/api/') && !request.url.startsWith('/api/admin/')) reply.header('access-control-allow-origin', '*');
    });
    app.options('/api/*', async (_request, reply) => reply
      .header('access-control-allow-methods', 'GET, POST')
      .header('access-control-allow-headers', 'content-type, authorization')
      .header('access-control-max-age', '600')
      .code(204)
      .send());
  }
  await strategy.start({ store: ps.store, log: app.log, signer, ps, reportDurable: () => {} });
  // One WebSocket server for the worker socket and the chain's node-to-node link. Frames up to
  // twice a legal worker frame reach the decoder (counted as PROTO_OVERSIZE); a chain STATE
  // holds weights, velocity and history; beyond the limit ws closes the socket with 1009.
  const chainBytes = opts.chain ? 8 * layout.size + (1 << 21) : 0;
  await app.register(websocket, { options: { maxPayload: Math.max(2 * ps.maxFrameBytes + META_ALLOWANCE, chainBytes) } });
  await app.register(apiPlugin, { ps, shards, options });
  await app.register(wsPlugin, { ps });
  await app.register(evalPlugin, { ps, dataset, options });
  await app.register(meshPlugin, { options });
  const admin = resolveAdminToken(options.adminToken);
  await app.register(adminPlugin, { ps, token: admin.token, options });
  if (opts.chain) await app.register(chainPlugin, { ...opts.chain, ps, adminToken: admin.token });
  await app.register(staticPlugin);
  app.addHook('onClose', async () => {
    for (const s of ps.sessions.all()) s.closeSocket?.(1001, 'server shutting down');
    await strategy.stop();
  });
  return { app, ps, options, dataset, admin };
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
