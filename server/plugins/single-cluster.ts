/**
 * GET /api/cluster on a single PS (not a chain node): 404, "no cluster here", without a log line.
 *
 * Every worker asks once, after its first join, whether its PS is a node of a chain-replicated
 * cluster (client/head-locator.ts `refresh`), and the console's probe asks on every look
 * (server/admin/probe.ts); a chain node answers ClusterInfo (server/chain/plugin.ts). Both read a
 * 404 as "a single PS": the locator keeps no cluster view (no failover search against a lone
 * PS), the probe shows the node as `single`. What changes is only the log: Fastify's catch-all
 * 404 logs "Route GET:/api/cluster not found" for every probe, where this route's level is
 * `warn`, so the probe leaves no line at the default `info`.
 */
import type { FastifyInstance } from 'fastify';

export async function singleClusterPlugin(app: FastifyInstance): Promise<void> {
  app.get('/api/cluster', { logLevel: 'warn' }, async (_request, reply) => reply.code(404).send({
    statusCode: 404,
    error: 'Not Found',
    message: 'This PS is a single server, not a node of a chain-replicated cluster (`tabswarm node`): there is no cluster to describe',
  }));
}
