/**
 * The operator's API, `/api/admin/*`, behind a bearer token (`--admin-token`, env
 * TABSWARM_ADMIN_TOKEN, else random per process and printed at start). A call without the
 * token is refused with ADMIN_UNAUTHORIZED (401 JSON) and logged.
 *
 *   GET  /api/admin/shards            PS shards: range, version, lost
 *   POST /api/admin/shards/:k/drop    the fault: shard k's in-memory state is lost (a simulated
 *                                     loss of its shard server), then recovered as configured
 *   POST /api/admin/checkpoint        take a checkpoint now; answers when it is durable
 *   GET  /api/admin/checkpoints       every shard's checkpoint files
 *
 * Shards and checkpoints belong to the recovery strategy; a strategy without them answers
 * ADMIN_UNSUPPORTED.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { TabswarmError } from '../../shared/errors.ts';
import type { ParameterServer } from '../ps/service.ts';
import { isCheckpointControl, type CheckpointControl } from '../strategies/checkpoint/strategy.ts';

export interface AdminPluginOptions {
  ps: ParameterServer;
  /** The bearer token every call must present. */
  token: string;
}

/** The token from the option, else TABSWARM_ADMIN_TOKEN, else a fresh random one. */
export function resolveAdminToken(option: string | undefined, env = process.env): { token: string; generated: boolean } {
  const given = option ?? env.TABSWARM_ADMIN_TOKEN;
  if (given) return { token: given, generated: false };
  return { token: randomBytes(18).toString('base64url'), generated: true };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** The onRequest hook that refuses (401, logged) any call without the admin token. */
export function adminGuard(ps: ParameterServer, token: string): (request: FastifyRequest) => Promise<void> {
  const want = digest(token);
  return async (request: FastifyRequest) => {
    const header = request.headers.authorization;
    const given = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
    // Comparing digests keeps the comparison constant-time whatever the given length.
    const reason = given === undefined ? 'no Authorization: Bearer token' : timingSafeEqual(digest(given), want) ? undefined : 'the token is not the admin token';
    if (!reason) return;
    const err = new TabswarmError('ADMIN_UNAUTHORIZED', { reason });
    ps.rejected(err, 'http');
    request.log.warn({ ip: request.ip, method: request.method, url: request.url, reason }, 'admin call refused');
    throw err;
  };
}

export async function adminPlugin(app: FastifyInstance, { ps, token }: AdminPluginOptions): Promise<void> {
  app.addHook('onRequest', adminGuard(ps, token));

  const control = (action: string): CheckpointControl => {
    if (isCheckpointControl(ps.strategy)) return ps.strategy;
    throw new TabswarmError('ADMIN_UNSUPPORTED', { strategy: ps.strategy.name, action, hint: 'start the PS with --strategy checkpoint' });
  };

  app.get('/api/admin/shards', async () => ({ version: ps.store.version, shards: control('list PS shards').shardStates() }));

  app.post('/api/admin/shards/:k/drop', async (request) => {
    const { k } = request.params as { k: string };
    const c = control('drop a PS shard');
    if (!/^\d{1,6}$/.test(k)) throw new TabswarmError('ADMIN_NO_SHARD', { shard: k, shards: c.shardStates().length });
    const report = await c.dropShard(Number(k));
    request.log.warn({ shard: report.shard, mode: report.recovery.mode }, 'admin: PS shard dropped and recovered');
    return report;
  });

  app.post('/api/admin/checkpoint', async () => control('take a checkpoint').checkpointNow());

  app.get('/api/admin/checkpoints', async () => ({ shards: await control('list checkpoints').checkpointFiles() }));
}
