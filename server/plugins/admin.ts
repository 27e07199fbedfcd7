/**
 * The operator's API, `/api/admin/*`, behind a bearer token (`--admin-token`, env
 * TABSWARM_ADMIN_TOKEN, else random per process and printed at start). A call without the
 * token is refused with ADMIN_UNAUTHORIZED (401 JSON), logged, and counted by the error handler.
 *
 *   GET  /api/admin/shards            PS shards: range, version, lost
 *   POST /api/admin/shards/:k/drop    the fault: shard k's in-memory state is lost (a simulated
 *                                     loss of its shard server), then recovered as configured
 *   POST /api/admin/checkpoint        take a checkpoint now; answers when it is durable
 *   GET  /api/admin/checkpoints       every shard's checkpoint files
 *   /api/admin/console, series, run, nodes, workers: the admin console (server/admin/console.ts)
 *
 * `GET /admin` is the console page itself (public/admin.html); it holds no data and asks for
 * the token, which every call it makes then carries.
 *
 * Shards and checkpoints belong to the recovery strategy; a strategy without them answers
 * ADMIN_UNSUPPORTED.
 */
import type { Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ShardParamsSchema } from '../../shared/admin-api.ts';
import { TabswarmError } from '../../shared/errors.ts';
import { adminTokenHook, requireAdminToken } from '../admin/auth.ts';
import { consoleRoutes } from '../admin/console.ts';
import { EmbeddedControl } from '../admin/control.ts';
import { adminPageRoute } from '../admin/page.ts';
import { probe, seriesHistory, type FetchJson } from '../admin/probe.ts';
import { Recorder } from '../admin/recorder.ts';
import type { ResolvedOptions } from '../config.ts';
import type { ParameterServer } from '../ps/service.ts';
import { isCheckpointControl, type CheckpointControl } from '../strategies/checkpoint/strategy.ts';

export { resolveAdminToken } from '../admin/auth.ts';

export interface AdminPluginOptions {
  ps: ParameterServer;
  /** The bearer token every call must present. */
  token: string;
  /** The run's options: with them the PS serves the admin console (/admin) for itself. */
  options?: ResolvedOptions;
  /** Console sampling period in ms. @default 1000 */
  sampleEveryMs?: number;
}

/** The console's name for the embedded PS in its node table. */
export const EMBEDDED_NODE = 'ps';

/**
 * The onRequest hook that refuses (401, logged) any call without the admin token; the error
 * handler (server/app.ts) answers and counts the refusal.
 */
export function adminGuard(token: string): (request: FastifyRequest) => Promise<void> {
  return adminTokenHook(token);
}

export async function adminPlugin(app: FastifyInstance, { ps, token, options, sampleEveryMs }: AdminPluginOptions): Promise<void> {
  await app.register(adminPageRoute);
  await app.register(async (guarded) => {
    requireAdminToken(guarded, token);
    await checkpointRoutes(guarded, ps);
    if (!options) return;
    // The console looks at this PS through its own public API, as the supervisor looks at nodes.
    const fetchJson: FetchJson = async (_url, path) => {
      const res = await app.inject({ url: path });
      if (res.statusCode === 404) return null;
      return res.json();
    };
    const recorder = new Recorder({
      look: () => probe([{ name: EMBEDDED_NODE, url: 'http://embedded/' }], fetchJson),
      // Opened late, the console still shows the run from its first evaluation.
      history: () => seriesHistory('http://embedded/', fetchJson),
      everyMs: sampleEveryMs,
    });
    await guarded.register(consoleRoutes, { recorder, control: new EmbeddedControl(ps, options, EMBEDDED_NODE) });
    // Sampling starts with the first look at the console, so a PS nobody watches (a chain node
    // under the supervisor, whose own console samples the nodes) spends nothing on it.
    app.addHook('onClose', async () => recorder.stop());
  });
}

async function checkpointRoutes(app: FastifyInstance, ps: ParameterServer): Promise<void> {
  const control = (action: string): CheckpointControl => {
    if (isCheckpointControl(ps.strategy)) return ps.strategy;
    throw new TabswarmError('ADMIN_UNSUPPORTED', { strategy: ps.strategy.name, action, hint: 'start the PS with --strategy checkpoint' });
  };

  app.get('/api/admin/shards', async () => ({ version: ps.store.version, shards: control('list PS shards').shardStates() }));

  app.post('/api/admin/shards/:k/drop', { schema: { params: ShardParamsSchema } }, async (request) => {
    const { k } = request.params as Static<typeof ShardParamsSchema>;
    const c = control('drop a PS shard');
    if (!/^\d{1,6}$/.test(k)) throw new TabswarmError('ADMIN_NO_SHARD', { shard: k, shards: c.shardStates().length });
    const report = await c.dropShard(Number(k));
    request.log.warn({ shard: report.shard, mode: report.recovery.mode }, 'admin: PS shard dropped and recovered');
    return report;
  });

  app.post('/api/admin/checkpoint', async () => control('take a checkpoint').checkpointNow());

  app.get('/api/admin/checkpoints', async () => ({ shards: await control('list checkpoints').checkpointFiles() }));
}
