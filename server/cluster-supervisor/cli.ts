/**
 * `tabswarm cluster`: starts PS nodes under a local supervisor and serves the cluster's admin
 * console. The supervisor's options are declared in CLUSTER_OPTIONS (server/options/tools.ts);
 * every other option is passed to each node (`--model`, `--dataset`, `--strategy`, `--lr`, ...).
 *
 * Prints `tabswarm: cluster ready: console at URL/admin; nodes URL1 URL2 ...` once every node
 * serves, then `tabswarm: admin token ...` when the token was generated.
 */
import { randomBytes } from 'node:crypto';
import { TabswarmError } from '../../shared/errors.ts';
import { resolveAdminToken } from '../admin/auth.ts';
import { flagOf, parseOptions, type OptionTable } from '../options/schema.ts';
import { CLUSTER_OPTIONS } from '../options/tools.ts';
import { buildSupervisorServer } from './server.ts';
import { Supervisor } from './supervisor.ts';

/** The supervisor's flags (CLUSTER_OPTIONS), and whether each takes a value. */
const OWN = new Map(Object.entries(CLUSTER_OPTIONS as OptionTable).map(([key, spec]) => [flagOf(key, spec), spec.type !== 'flag']));

/**
 * Splits argv into the supervisor's own options (CLUSTER_OPTIONS) and the options passed through
 * to every node; the node parses and checks its own.
 */
export function splitArgs(argv: readonly string[]): { own: string[]; nodeArgs: string[] } {
  const own: string[] = [];
  const nodeArgs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    // --name value, or --name=value (needed for values that start with '-', e.g. a random token).
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = a.startsWith('--') ? a.slice(2, eq > 0 ? eq : undefined) : undefined;
    const takesValue = name === undefined ? undefined : OWN.get(name);
    if (takesValue === undefined) {
      nodeArgs.push(a);
      continue;
    }
    own.push(a);
    // A missing value (end of line, or the next option) is left for parseOptions to name.
    if (takesValue && eq < 0 && i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) own.push(argv[++i]!);
  }
  return { own, nodeArgs };
}

export async function clusterCommand(argv: string[]): Promise<void> {
  const split = splitArgs(argv);
  const own = parseOptions(CLUSTER_OPTIONS, split.own);
  const replication = own.replication;
  const nodes = own.nodes ?? (replication ? 3 : 1);
  if (!replication && nodes !== 1) throw new TabswarmError('CONFIG_INVALID', { option: '--nodes', detail: 'more than one node needs --replication sync|async|snapshot (a chain)' });
  const admin = resolveAdminToken(own.adminToken);
  const sup = new Supervisor({
    nodes,
    ...(replication ? { replication } : {}),
    ...(own.snapshotEvery !== undefined ? { snapshotEvery: own.snapshotEvery } : {}),
    ...(own.reads ? { reads: own.reads } : {}),
    ...(own.zk ? { zk: own.zk } : {}),
    ...(own.cluster ? { cluster: own.cluster } : {}),
    host: own.host,
    ...(own.basePort !== undefined ? { basePort: own.basePort } : {}),
    secret: own.secret ?? process.env.TABSWARM_SECRET ?? randomBytes(24).toString('base64url'),
    adminToken: admin.token,
    nodeArgs: split.nodeArgs,
    ...(own.logDir ? { logDir: own.logDir } : {}),
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
  const { app } = await buildSupervisorServer(sup, { logger: { level: own.consoleLogLevel } });
  const address = await app.listen({ port: own.port, host: own.host });
  console.log(`tabswarm: cluster ready: console at ${address}/admin; ${sup.mode === 'chain' ? `chain (${replication}) via --zk ${sup.zkConnection}` : 'single PS'}; nodes ${sup.nodes.map((n) => n.url).join(' ')}`);
  if (admin.generated) console.log(`tabswarm: admin token (Authorization: Bearer ... on /api/admin/*, and the console's login): ${admin.token}`);
}
