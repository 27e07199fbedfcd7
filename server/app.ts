/**
 * buildServer(opts) assembles the embedded parameter server from Fastify plugins: the PS API
 * and HTTP transport, the WebSocket transport, metrics, evaluation, and the worker page.
 * Nothing here listens; server/cli.ts does. Tests call buildServer and app.inject or listen.
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { TabswarmError } from '../shared/errors.ts';
import { deriveLayout, initWeights } from '../shared/layout.ts';
import { loadDataset, Shards, type Dataset } from './data.ts';
import { resolveOptions, type ResolvedOptions, type ServerOptions } from './config.ts';
import { createMetrics } from './metrics.ts';
import { adminPlugin, resolveAdminToken } from './plugins/admin.ts';
import { apiPlugin } from './plugins/api.ts';
import { evalPlugin } from './plugins/eval.ts';
import { staticPlugin } from './plugins/static.ts';
import { wsPlugin } from './plugins/ws.ts';
import { ShardAssignment } from './ps/assignment.ts';
import { ParameterServer } from './ps/service.ts';
import { Sessions } from './ps/sessions.ts';
import { Signer } from './ps/signer.ts';
import { ParameterStore } from './ps/store.ts';
import { getRule } from './ps/rules.ts';
import type { RecoveryStrategy } from './ps/strategy.ts';
import { createStrategy } from './strategies/index.ts';

export interface BuildOptions extends Partial<ServerOptions> {
  /** Fastify's logger option. @default false */
  logger?: FastifyServerOptions['logger'];
  /** A ready-made recovery strategy, overriding `strategy` (the name). */
  strategyInstance?: RecoveryStrategy;
  /** A preloaded data set (tests share one across servers). */
  data?: Dataset;
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

  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    if (err instanceof TabswarmError) return reply.code(err.spec.http).send(err.toJSON());
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) {
      const mapped = status === 413
        ? new TabswarmError('PROTO_OVERSIZE', { bytes: request.headers['content-length'] ?? '?', limit: ps.maxFrameBytes })
        : new TabswarmError('PS_BAD_REQUEST', { detail: err.message });
      ps.rejected(mapped, 'http');
      return reply.code(mapped.spec.http).send(mapped.toJSON());
    }
    request.log.error({ err: err as Error }, 'unhandled error');
    return reply.code(500).send({ code: 'INTERNAL', message: 'internal error; see the server log', retryable: true });
  });

  await strategy.start({ store: ps.store, log: app.log, signer });
  await app.register(apiPlugin, { ps, shards, options });
  await app.register(wsPlugin, { ps });
  await app.register(evalPlugin, { ps, dataset, options });
  const admin = resolveAdminToken(options.adminToken);
  await app.register(adminPlugin, { ps, token: admin.token, options });
  await app.register(staticPlugin);
  app.addHook('onClose', async () => {
    for (const s of ps.sessions.all()) s.closeSocket?.(1001, 'server shutting down');
    await strategy.stop();
  });
  return { app, ps, options, dataset, admin };
}
