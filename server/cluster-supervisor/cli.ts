/**
 * `tabswarm cluster`: starts PS nodes under a local supervisor and serves the cluster's admin
 * console. Supervisor options are listed in SUPERVISOR_OPTIONS; every other option is passed to
 * each node (`--model`, `--dataset`, `--strategy`, `--lr`, ...).
 *
 * Prints `tabswarm: cluster ready: console at URL/admin; nodes URL1 URL2 ...` once every node
 * serves, then `tabswarm: admin token ...` when the token was generated.
 */
import { randomBytes } from 'node:crypto';
import { TabswarmError } from '../../shared/errors.ts';
import { resolveAdminToken } from '../admin/auth.ts';
import { buildSupervisorServer } from './server.ts';
import { Supervisor } from './supervisor.ts';

const SUPERVISOR_OPTIONS = ['nodes', 'replication', 'snapshot-every', 'reads', 'zk', 'cluster', 'host', 'port', 'base-port', 'admin-token', 'secret', 'log-dir', 'console-log-level'] as const;
type SupervisorOption = (typeof SUPERVISOR_OPTIONS)[number];

/** Splits argv into the supervisor's options and the options passed through to every node. */
export function splitArgs(argv: readonly string[]): { own: Partial<Record<SupervisorOption, string>>; nodeArgs: string[] } {
  const own: Partial<Record<SupervisorOption, string>> = {};
  const nodeArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    // --name value, or --name=value (needed for values that start with '-', e.g. a random token).
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = a.startsWith('--') ? a.slice(2, eq > 0 ? eq : undefined) : undefined;
    if (name && (SUPERVISOR_OPTIONS as readonly string[]).includes(name)) {
      const value = eq > 0 ? a.slice(eq + 1) : argv[i + 1];
      if (value === undefined || (eq < 0 && value.startsWith('--'))) throw new TabswarmError('CONFIG_INVALID', { option: a, detail: 'needs a value' });
      own[name as SupervisorOption] = value;
      if (eq < 0) i++;
    } else {
      nodeArgs.push(a);
    }
  }
  return { own, nodeArgs };
}

const int = (option: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new TabswarmError('CONFIG_INVALID', { option, detail: `must be an integer >= ${min}, got '${v}'` });
  return n;
};

export async function clusterCommand(argv: string[]): Promise<void> {
  const { own, nodeArgs } = splitArgs(argv);
  const replication = own.replication;
  if (replication !== undefined && !['sync', 'async', 'snapshot'].includes(replication)) throw new TabswarmError('CONFIG_INVALID', { option: '--replication', detail: `must be sync, async or snapshot, got '${replication}'` });
  const nodes = int('--nodes', own.nodes, 1) ?? (replication ? 3 : 1);
  if (!replication && nodes !== 1) throw new TabswarmError('CONFIG_INVALID', { option: '--nodes', detail: 'more than one node needs --replication sync|async|snapshot (a chain)' });
  if (own.reads !== undefined && own.reads !== 'strict' && own.reads !== 'relaxed') throw new TabswarmError('CONFIG_INVALID', { option: '--reads', detail: `must be strict or relaxed, got '${own.reads}'` });
  const admin = resolveAdminToken(own['admin-token']);
  const sup = new Supervisor({
    nodes,
    ...(replication ? { replication: replication as 'sync' | 'async' | 'snapshot' } : {}),
    ...(own['snapshot-every'] !== undefined ? { snapshotEvery: int('--snapshot-every', own['snapshot-every'], 1)! } : {}),
    ...(own.reads ? { reads: own.reads as 'strict' | 'relaxed' } : {}),
    ...(own.zk ? { zk: own.zk } : {}),
    ...(own.cluster ? { cluster: own.cluster } : {}),
    host: own.host ?? '127.0.0.1',
    ...(own['base-port'] !== undefined ? { basePort: int('--base-port', own['base-port'], 1)! } : {}),
    secret: own.secret ?? process.env.TABSWARM_SECRET ?? randomBytes(24).toString('base64url'),
    adminToken: admin.token,
    nodeArgs,
    ...(own['log-dir'] ? { logDir: own['log-dir'] } : {}),
  });
  const shutdown = async (code: number) => {
    await sup.stop().catch(() => {});
    process.exit(code);
  };
  process.once('SIGINT', () => void shutdown(0));
  process.once('SIGTERM', () => void shutdown(0));
  try {
    await sup.start();
  } catch (err) {
    await sup.stop().catch(() => {});
    throw err;
  }
  const { app } = await buildSupervisorServer(sup, { logger: { level: own['console-log-level'] ?? 'warn' } });
  const address = await app.listen({ port: int('--port', own.port ?? '8090', 0)!, host: own.host ?? '127.0.0.1' });
  console.log(`tabswarm: cluster ready: console at ${address}/admin; ${sup.mode === 'chain' ? `chain (${replication}) via --zk ${sup.zkConnection}` : 'single PS'}; nodes ${sup.nodes.map((n) => n.url).join(' ')}`);
  if (admin.generated) console.log(`tabswarm: admin token (Authorization: Bearer ... on /api/admin/*, and the console's login): ${admin.token}`);
}
