/**
 * The admin console's API, registered inside a scope guarded by requireAdminToken:
 *
 *   GET  /api/admin/console?since=T        mode, capabilities, run settings, the latest
 *                                          snapshot, and samples and events after t = T
 *   GET  /api/admin/series.json | .csv     the whole time series (download)
 *   POST /api/admin/run                    { lr?, rule? }: change the run's learning rate / rule
 *   POST /api/admin/nodes/:name/kill       SIGKILL a node (supervisor only)
 *   POST /api/admin/nodes/:name/restart    start a killed node again (supervisor only)
 *   POST /api/admin/nodes/:name/expire     expire the node's ZooKeeper session (cluster only)
 *   POST /api/admin/nodes/:name/shards/:k/drop   lose PS shard k's state (checkpoint mode)
 *   POST /api/admin/workers/:id/disconnect end a worker's session
 *
 * Every action is logged and marked on the time axis.
 */
import type { FastifyInstance } from 'fastify';
import { TabswarmError } from '../../shared/errors.ts';
import type { ConsoleControl } from './control.ts';
import type { Recorder } from './recorder.ts';
import type { Static } from '@sinclair/typebox';
import {
  ConsoleQuerySchema, NodeParamsSchema, NodeShardParamsSchema, RunChangeSchema, WorkerParamsSchema, type ConsoleState, type EventKind, type RunChange,
} from '../../shared/admin-api.ts';

export interface ConsoleRoutesOptions {
  recorder: Recorder;
  control: ConsoleControl;
}

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

export async function consoleRoutes(app: FastifyInstance, { recorder, control }: ConsoleRoutesOptions): Promise<void> {
  // Every action is logged and marked on the time axis.
  const act = (log: FastifyInstance['log'], kind: EventKind, detail: string, node?: string): void => {
    recorder.event(kind, detail, node);
    log.warn({ action: kind, node, detail }, 'admin console action');
  };

  app.get('/api/admin/console', { schema: { querystring: ConsoleQuerySchema } }, async (request): Promise<ConsoleState> => {
    recorder.start();
    const since = Number((request.query as Static<typeof ConsoleQuerySchema>).since ?? -1);
    const { samples, events } = recorder.since(Number.isFinite(since) ? since : -1);
    return {
      now: recorder.now(),
      startedAt: recorder.startedAt,
      capabilities: control.capabilities(),
      run: await control.run(),
      snapshot: recorder.latest,
      samples,
      events,
    };
  });

  app.get('/api/admin/series.json', async (_request, reply) => {
    recorder.start();
    reply.header('content-disposition', 'attachment; filename="tabswarm-series.json"');
    return { ...recorder.toJSON(), run: await control.run() };
  });

  app.get('/api/admin/series.csv', async (_request, reply) => {
    recorder.start();
    return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="tabswarm-series.csv"').send(recorder.toCSV());
  });

  app.post('/api/admin/run', { schema: { body: RunChangeSchema } }, async (request) => {
    const change = request.body as RunChange;
    const run = await control.setRun(change);
    act(request.log, 'set-run', `${change.lr !== undefined ? `lr ${change.lr}` : ''}${change.lr !== undefined && change.rule ? ', ' : ''}${change.rule ? `rule ${change.rule}` : ''}`);
    return run;
  });

  const nodeName = (params: unknown): string => {
    const { name } = params as Static<typeof NodeParamsSchema>;
    if (!NAME.test(name)) throw new TabswarmError('ADMIN_NO_NODE', { node: name, nodes: '(see the console)' });
    return name;
  };

  app.post('/api/admin/nodes/:name/kill', { schema: { params: NodeParamsSchema } }, async (request) => {
    const name = nodeName(request.params);
    const result = await control.killNode(name);
    act(request.log, 'kill', `${name} killed (SIGKILL)`, name);
    return result;
  });

  app.post('/api/admin/nodes/:name/restart', { schema: { params: NodeParamsSchema } }, async (request) => {
    const name = nodeName(request.params);
    const result = await control.restartNode(name);
    act(request.log, 'restart', `${name} restarted`, name);
    return result;
  });

  app.post('/api/admin/nodes/:name/expire', { schema: { params: NodeParamsSchema } }, async (request) => {
    const name = nodeName(request.params);
    const result = await control.expireNode(name);
    act(request.log, 'expire', `${name}'s ZooKeeper session expired`, name);
    return result;
  });

  app.post('/api/admin/nodes/:name/shards/:k/drop', { schema: { params: NodeShardParamsSchema } }, async (request) => {
    const name = nodeName(request.params);
    const { k } = request.params as Static<typeof NodeShardParamsSchema>;
    if (!/^\d{1,6}$/.test(k)) throw new TabswarmError('ADMIN_NO_SHARD', { shard: k, shards: '?' });
    const result = await control.dropShard(name, Number(k));
    act(request.log, 'drop-shard', `${name} lost PS shard ${k}`, name);
    return result;
  });

  app.post('/api/admin/workers/:id/disconnect', { schema: { params: WorkerParamsSchema } }, async (request) => {
    const { id } = request.params as Static<typeof WorkerParamsSchema>;
    if (!/^\d{1,10}$/.test(id)) throw new TabswarmError('ADMIN_NO_WORKER', { worker: id });
    const result = await control.disconnectWorker(Number(id));
    act(request.log, 'disconnect', `worker ${id} disconnected`);
    return result;
  });
}
