/**
 * What a chain node serves beside the PS API:
 *
 *   GET  /api/cluster[?after=E&waitMs=T]  the chain: epoch, nodes in order with roles, head and
 *                                         tail; with `after`, answers once the epoch is above E
 *                                         (or after T ms, at most 10 s): how workers find a new
 *                                         head within milliseconds of the reconfiguration
 *   GET  /chain                           the node-to-node link (WebSocket; link.ts)
 *   POST /api/admin/zk/expire             fault injection: make ZooKeeper expire this node's session
 *   GET  /api/admin/chain/history         the applied (version, worker, seq) this node remembers, and
 *                                         a SHA-256 of its weights and velocity
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ClusterQuerySchema, type ClusterInfo, type ClusterQuery } from '../../shared/api.ts';
import { TabswarmError } from '../../shared/errors.ts';
import type { CoordinationClient } from '../coord/index.ts';
import { adminGuard } from '../plugins/admin.ts';
import type { ParameterServer } from '../ps/service.ts';
import { roleOf } from './membership.ts';
import type { ChainReplica } from './replica.ts';

export interface ChainPluginOptions {
  readonly ps: ParameterServer;
  readonly replica: ChainReplica;
  readonly coord: CoordinationClient;
  readonly cluster: string;
  readonly reads: 'strict' | 'relaxed';
  readonly adminToken: string;
}

export async function chainPlugin(app: FastifyInstance, o: ChainPluginOptions): Promise<void> {
  const { ps, replica } = o;

  const info = (): ClusterInfo => {
    const view = replica.currentView;
    const me = replica.replicaStatus();
    return {
      cluster: o.cluster,
      epoch: view.epoch,
      replication: me.mode,
      reads: o.reads,
      self: me.name,
      nodes: view.nodes.map((n) => ({ name: n.name, url: n.url, role: roleOf(view, n.name)!, version: n.name === me.name ? me.version : null })),
      head: view.nodes[0]?.url ?? null,
      tail: view.nodes.at(-1)?.url ?? null,
      node: { ...me },
    };
  };

  app.get('/api/cluster', { schema: { querystring: ClusterQuerySchema } }, async (request): Promise<ClusterInfo> => {
    const q = request.query as ClusterQuery;
    if (q.after !== undefined) await replica.waitForEpoch(Number(q.after) + 1, Math.min(Number(q.waitMs ?? 5000), 10000));
    return info();
  });

  app.get('/chain', { websocket: true }, (socket, request) => {
    void replica.accept(socket, request.query as { from?: string; to?: string; epoch?: string; nonce?: string });
  });

  await app.register(async (admin) => {
    admin.addHook('onRequest', adminGuard(o.adminToken));
    admin.post('/api/admin/zk/expire', async (request) => {
      const before = o.coord.session();
      if (before.state !== 'connected') throw new TabswarmError('COORD_FAILED', { op: 'expire', path: '', detail: `the session is ${before.state}, not connected` });
      request.log.warn({ session: before.id }, 'admin: expiring this node\'s ZooKeeper session');
      await o.coord.forceExpire();
      return { expired: before.id };
    });
    admin.get('/api/admin/chain/history', async () => {
      const h = replica.appliedHistory();
      // A digest of the whole replica state: equal digests = bitwise equal weights and velocity.
      const hash = createHash('sha256');
      hash.update(new Uint8Array(ps.store.weights.buffer, ps.store.weights.byteOffset, ps.store.weights.byteLength));
      hash.update(new Uint8Array(ps.store.optimizer.velocity.buffer, ps.store.optimizer.velocity.byteOffset, ps.store.optimizer.velocity.byteLength));
      return { start: h.start, version: ps.store.version, digest: hash.digest('hex'), record: ps.store.record(), entries: h.entries.map((e) => [e.workerId, e.seq]) };
    });
  });
}
