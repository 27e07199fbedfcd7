/**
 * The supervisor's own HTTP server: the admin console for the whole cluster (/admin, the
 * console API) plus GET /api/admin/nodes (names, URLs, PIDs, health) for scripts and the
 * experiment harness. Everything under /api/admin/ needs the admin token.
 */
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { join } from 'node:path';
import { TabswarmError } from '../../shared/errors.ts';
import { requireAdminToken } from '../admin/auth.ts';
import { consoleRoutes } from '../admin/console.ts';
import { adminPageRoute } from '../admin/page.ts';
import { httpFetchJson, probe } from '../admin/probe.ts';
import { Recorder } from '../admin/recorder.ts';
import { PUBLIC_DIR } from '../plugins/static.ts';
import { SupervisorControl } from './control.ts';
import type { Supervisor } from './supervisor.ts';

export function nodeTargets(sup: Supervisor) {
  return sup.nodes.map((n) => ({ name: n.name, url: n.url, health: n.health, ...(n.child?.pid !== undefined ? { pid: n.child.pid } : {}) }));
}

export async function buildSupervisorServer(sup: Supervisor, opts: { logger?: FastifyServerOptions['logger']; sampleEveryMs?: number } = {}): Promise<{ app: FastifyInstance; recorder: Recorder }> {
  const app = Fastify({ logger: opts.logger ?? false, ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: true } } });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (err instanceof TabswarmError) return reply.code(err.spec.http).send(err.toJSON());
    // A node's refusal, passed on with its own status and code.
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return reply.code(err.statusCode).send({ code: err.code ?? 'PS_BAD_REQUEST', message: err.message, retryable: false });
    request.log.error({ err }, 'supervisor: unhandled error');
    return reply.code(500).send({ code: 'INTERNAL', message: err.message, retryable: true });
  });
  const fetchJson = httpFetchJson(1500);
  const recorder = new Recorder({ look: () => probe(nodeTargets(sup), fetchJson), everyMs: opts.sampleEveryMs ?? 1000 });
  await app.register(adminPageRoute);
  await app.register(fastifyStatic, { root: join(PUBLIC_DIR, 'admin'), prefix: '/admin/' });
  await app.register(async (guarded) => {
    requireAdminToken(guarded, sup.opts.adminToken);
    guarded.get('/api/admin/nodes', async () => ({ mode: sup.mode, zk: sup.zkConnection ?? null, nodes: nodeTargets(sup) }));
    await guarded.register(consoleRoutes, { recorder, control: new SupervisorControl(sup) });
  });
  app.get('/', async (_request, reply) => reply.redirect('/admin'));
  app.addHook('onReady', async () => recorder.start());
  app.addHook('onClose', async () => recorder.stop());
  return { app, recorder };
}
