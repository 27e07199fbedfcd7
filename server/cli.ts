/**
 * The `tabswarm` command.
 *   tabswarm start  [options]   the embedded parameter server (default command)
 *   tabswarm worker --url URL   a headless Node worker (tfjs cpu backend)
 *   tabswarm zk [--ensemble N]  a local ZooKeeper for development (server/zk)
 *   tabswarm cluster | swarm | experiment   see server/cluster-supervisor, server/swarm, server/experiment
 */
import { parseArgs } from 'node:util';
import { networkInterfaces } from 'node:os';
import { TabswarmError } from '../shared/errors.ts';
import { MODEL_NAMES } from '../shared/models.ts';
import { buildServer, type Built } from './app.ts';
import { chromiumAvailable, launchWorkerTabs, type WorkerTabs } from './browsers.ts';
import { DATASET_NAMES } from './data.ts';
import { RULE_NAMES } from './ps/rules.ts';
import { STRATEGY_NAMES } from './strategies/index.ts';

const HELP = `tabswarm: train a model on volunteer browser tabs

Usage:
  tabswarm start [options]        start the embedded parameter server (the default)
  tabswarm worker --url URL       run a headless Node worker against a PS
  tabswarm node --zk HOST:PORT     start one PS node of a chain-replicated cluster
  tabswarm zk [options]           run a local ZooKeeper (standalone or an ensemble) for development
  tabswarm cluster [options]      PS node(s) under a local supervisor, with the cluster's admin console
  tabswarm swarm --url URL        headless Chromium worker tabs against a PS (docs/console.md)
  tabswarm experiment [options]   the failure-schedule experiment harness (docs/experiments.md)
  tabswarm help

start options:
  --port N            port to listen on (default 8080; 0 picks a free one)
  --host H            address to bind (default 127.0.0.1; 0.0.0.0 to let other machines join)
  --model M           ${MODEL_NAMES.join(' | ')} (default fashion-cnn)
  --dataset D         ${DATASET_NAMES.join(' | ')} (default mnist)
  --shards N          training shards handed out to workers (default 16)
  --lr X              SGD learning rate (default: the model's, 0.01 for fashion-cnn)
  --momentum X        SGD momentum (default 0)
  --batch N           worker batch size (default: the model's, 32 for fashion-cnn)
  --pull-every N      workers pull weights every N steps (default 1)
  --seed N            seed of initial weights and shard split (default 1)
  --eval-every MS     test-set evaluation period in ms, 0 = off (default 5000)
  --eval-examples N   evaluate on the first N test examples (default 10000)
  --idle-ms MS        drop a worker silent this long and reassign its shards (default 30000)
  --strategy S        recovery strategy: ${STRATEGY_NAMES().join(' | ')} (default none)
  --secret S          HMAC secret shared by all PS processes of a deployment (default: env
                      TABSWARM_SECRET, else random: then nothing workers hold survives a restart)
  --adopt-window-ms MS stateless: collect workers' weight copies this long before adopting (default 3500)
  --buffer-mode M     while the PS is down workers sum gradients against their last weights
                      (frozen, the default) or also apply them locally (local)
  --mesh-peers K      worker mesh: data channels each worker keeps to other workers (default 3; 0 = no mesh)
  --mesh-port N       port of the mesh's PeerJS signaling server (default 0: a free one, see /api/mesh)
  --gossip-every-ms T local buffer mode: average weights with a peer every T ms during outages (default 2000; 0 = off)
  --relay on|off      while the PS is up, take signed weights from peers before pulling (default off)
  --relay-max-lag N   relay: accept a peer's weights at most N versions behind the last ack (default 8)
  --checkpoint-mode M sync | async: stop applying while writing, or copy and write in the background (default async)
  --checkpoint-every N  checkpoint every N applied updates, 0 = not by count (default 100)
  --checkpoint-every-ms T  also once T ms have passed since the last checkpoint, 0 = off (default 0)
  --checkpoint-dir DIR  where the checkpoint streams live, one folder per PS shard (default checkpoints)
  --checkpoint-keep N   full checkpoints kept per PS shard (default 3)
  --checkpoint-block B  values per block, the unit of prioritized checkpoints (default 256)
  --checkpoint-full-every C  with --priority-fraction < 1, every C-th checkpoint is full (default 10; 0 = only the first)
  --ps-shards S       key-range shards of the PS state, each with its own checkpoint stream (default 1)
  --priority-fraction R  prioritized checkpoints save the fraction R of blocks that changed most (default 1 = full)
  --recovery M        after a lost PS shard: partial (that shard only) | full (roll back all) (default partial)
  --admin-token T     bearer token of /api/admin/* (default env TABSWARM_ADMIN_TOKEN, else random, printed)
  --rule R            stale-update rule: ${RULE_NAMES.join(' | ')} (default mean)
  --workers N         headless Chromium worker tabs to launch (default 2; 0 = none)
  --worker-backend B  backend for those tabs: auto | webgpu | webgl | wasm | cpu (default auto)
  --log-level L       fatal | error | warn | info | debug (default info)

node options (every start option too, except --strategy; --secret or TABSWARM_SECRET is required):
  --zk HOSTS          ZooKeeper ensemble, host:port,host:port[/chroot] (required)
  --cluster NAME      nodes with the same name form one chain (default tabswarm)
  --replication M     sync (ack once the tail applied) | async (ack at once, window below) |
                      snapshot (whole state every --snapshot-every updates) (default sync)
  --reads R           strict (workers read from the tail) | relaxed (from their node) (default relaxed)
  --snapshot-every K  snapshot replication: updates between shipments (default 100)
  --async-window N    async: most acked updates not yet at the tail, the most a head failure loses (default 32)
  --zk-session-ms MS  ZooKeeper session timeout: failover floor vs false suspicion (default 1500)
  --fast-detect on|off  drop a neighbour at once when its link breaks and its port refuses
                      connections (a crashed process); off: only its session timeout (default on)
  --port N            (default 0: a free port)

worker options:
  --url URL           the PS's base URL, e.g. http://127.0.0.1:8080/
  --steps N           stop after N steps (default: run until stopped)
  --seed N            batch sampling seed
  --buffer-mode M     override the run's buffer mode: frozen | local
  --log-every-ms MS   status line period (default 2000; also printed on every state change)
  --log-acks          print every acknowledged push as {"worker":W,"acks":[[seq,version,duplicate],...]}

zk options (prints 'zookeeper ready: --zk host:port,...'; production points --zk at its own ensemble):
  --ensemble N        run N servers as a quorum ensemble (default 1: standalone)
  --port N            client port of server 1, then N+1, ... (default: free ports)
  --data-dir D        put server-1/, server-2/, ... (data, zoo.cfg, zookeeper.log) under D (default: a temp folder)
  --keep              keep the servers' data and logs at exit (default: removed)
  --tick-ms MS        ZooKeeper tickTime; sessions may be as short as 2 ticks (default 250)

cluster options (every other option goes to each node, e.g. --model, --strategy, --lr):
  --nodes N           node processes (default 1 without --replication, 3 with)
  --replication R     sync | async | snapshot: a ZooKeeper chain of \`tabswarm node\`s (default: one \`tabswarm start\` PS)
  --snapshot-every K, --reads strict|relaxed, --cluster NAME  passed to the chain's nodes
  --zk HOST:PORT,...  an existing ZooKeeper (default: a local one is started)
  --port N            the console's port (default 8090); --base-port N: node i listens on N+i-1
  --admin-token T     one token for the console and every node (default env, else random, printed)
  --secret S          shared HMAC secret of the nodes (default env TABSWARM_SECRET, else random)
  --log-dir D         each node's output in D/node-i.log (--log-level goes to the nodes;
                      --console-log-level is the supervisor's own, default warn)

swarm options:
  --url URL           the PS (or any node) to join
  --workers N         headless Chromium worker tabs (default 2)
  --browsers M        spread over M browser processes (default 1)
  --backend B         auto | webgpu | webgl | wasm | cpu (default auto)
  --duration S        stop after S seconds (default: until Ctrl-C)
  --churn R           close and reopen R random tabs per minute (default 0)
  --json              print one JSON status line per second instead of the live line

experiment options: see docs/experiments.md (\`tabswarm experiment --help\`)
`;

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new TabswarmError('CONFIG_INVALID', { option: `--${name}`, detail: `'${value}' is not a number` });
  return n;
}

/** The embedded PS's options, shared by `start` and `node`. */
const SERVER_OPTIONS = {
  port: { type: 'string', default: '8080' },
  host: { type: 'string', default: '127.0.0.1' },
  model: { type: 'string' },
  dataset: { type: 'string' },
  shards: { type: 'string' },
  lr: { type: 'string' },
  momentum: { type: 'string' },
  batch: { type: 'string' },
  'pull-every': { type: 'string' },
  seed: { type: 'string' },
  'eval-every': { type: 'string' },
  'eval-examples': { type: 'string' },
  'idle-ms': { type: 'string' },
  strategy: { type: 'string' },
  rule: { type: 'string' },
  'checkpoint-mode': { type: 'string' },
  'checkpoint-every': { type: 'string' },
  'checkpoint-every-ms': { type: 'string' },
  'checkpoint-dir': { type: 'string' },
  'checkpoint-keep': { type: 'string' },
  'checkpoint-block': { type: 'string' },
  'checkpoint-full-every': { type: 'string' },
  'ps-shards': { type: 'string' },
  'priority-fraction': { type: 'string' },
  recovery: { type: 'string' },
  'admin-token': { type: 'string' },
  secret: { type: 'string' },
  'adopt-window-ms': { type: 'string' },
  'buffer-mode': { type: 'string' },
  'mesh-peers': { type: 'string' },
  'mesh-port': { type: 'string' },
  'gossip-every-ms': { type: 'string' },
  relay: { type: 'string' },
  'relay-max-lag': { type: 'string' },
  workers: { type: 'string', default: '2' },
  'worker-backend': { type: 'string', default: 'auto' },
  'log-level': { type: 'string', default: 'info' },
} as const;

type ServerValues = { [K in keyof typeof SERVER_OPTIONS]?: string };

function serverOptions(values: ServerValues) {
  return {
    logger: { level: values['log-level'] },
    model: values.model,
    dataset: values.dataset,
    shards: int('shards', values.shards),
    lr: int('lr', values.lr),
    momentum: int('momentum', values.momentum),
    batch: int('batch', values.batch),
    pullEvery: int('pull-every', values['pull-every']),
    seed: int('seed', values.seed),
    evalEveryMs: int('eval-every', values['eval-every']),
    evalExamples: int('eval-examples', values['eval-examples']),
    idleMs: int('idle-ms', values['idle-ms']),
    strategy: values.strategy,
    rule: values.rule,
    checkpointMode: values['checkpoint-mode'] as 'sync' | 'async' | undefined,
    checkpointEvery: int('checkpoint-every', values['checkpoint-every']),
    checkpointEveryMs: int('checkpoint-every-ms', values['checkpoint-every-ms']),
    checkpointDir: values['checkpoint-dir'],
    checkpointKeep: int('checkpoint-keep', values['checkpoint-keep']),
    checkpointBlock: int('checkpoint-block', values['checkpoint-block']),
    checkpointFullEvery: int('checkpoint-full-every', values['checkpoint-full-every']),
    psShards: int('ps-shards', values['ps-shards']),
    priorityFraction: int('priority-fraction', values['priority-fraction']),
    recovery: values.recovery as 'partial' | 'full' | undefined,
    adminToken: values['admin-token'],
    secret: values.secret,
    adoptWindowMs: int('adopt-window-ms', values['adopt-window-ms']),
    bufferMode: values['buffer-mode'] as 'frozen' | 'local' | undefined,
    meshPeers: int('mesh-peers', values['mesh-peers']),
    meshPort: int('mesh-port', values['mesh-port']),
    gossipEveryMs: int('gossip-every-ms', values['gossip-every-ms']),
    relay: values.relay as 'on' | 'off' | undefined,
    relayMaxLag: int('relay-max-lag', values['relay-max-lag']),
  };
}

function onOff(option: string, value: string): boolean {
  if (value !== 'on' && value !== 'off') throw new TabswarmError('CONFIG_INVALID', { option, detail: `must be on or off; got '${value}'` });
  return value === 'on';
}

async function start(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, strict: true, options: SERVER_OPTIONS });
  const built = await buildServer(serverOptions(values));
  const address = await built.app.listen({ port: int('port', values.port)!, host: values.host });
  await serve(built, joinUrl(address, values.host!), values, async () => {});
}

/** `tabswarm node`: one PS node of a chain-replicated cluster (server/chain). */
async function node(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...SERVER_OPTIONS,
      port: { type: 'string', default: '0' },
      workers: { type: 'string', default: '0' },
      zk: { type: 'string' },
      cluster: { type: 'string', default: 'tabswarm' },
      replication: { type: 'string', default: 'sync' },
      reads: { type: 'string', default: 'relaxed' },
      'snapshot-every': { type: 'string' },
      'async-window': { type: 'string' },
      'zk-session-ms': { type: 'string' },
      'fast-detect': { type: 'string', default: 'on' },
    },
  });
  if (!values.zk) throw new TabswarmError('CONFIG_INVALID', { option: '--zk', detail: 'is required: host:port,... of the ZooKeeper ensemble (for development, start one with `tabswarm zk`)' });
  if (values.strategy !== undefined) throw new TabswarmError('CONFIG_INVALID', { option: '--strategy', detail: 'a cluster node replicates by chain; --replication picks sync, async or snapshot' });
  const { startChainNode } = await import('./chain/node.ts');
  const { strategy: _s, secret: _secret, ...rest } = serverOptions(values);
  const host = values.host!;
  const chain = await startChainNode({
    zk: values.zk,
    cluster: values.cluster!,
    replication: values.replication as 'sync',
    reads: values.reads as 'strict',
    snapshotEvery: int('snapshot-every', values['snapshot-every']),
    asyncWindow: int('async-window', values['async-window']),
    zkSessionMs: int('zk-session-ms', values['zk-session-ms']),
    fastDetect: onOff('--fast-detect', values['fast-detect']!),
    secret: values.secret ?? process.env.TABSWARM_SECRET ?? '',
    port: int('port', values.port),
    host,
    advertise: (address) => joinUrl(address, host),
    server: rest,
  });
  const status = chain.replica.replicaStatus();
  console.log(`tabswarm: chain node ${status.name} of cluster ${values.cluster} (${values.replication} replication, epoch ${status.epoch}, role ${status.role})`);
  await serve(chain.built, joinUrl(chain.url, host), values, () => chain.coord.close());
}

/** After listen: the ready line, optional worker tabs, and a clean shutdown on signals. */
async function serve(built: Built, url: string, values: ServerValues, afterClose: () => Promise<void>): Promise<void> {
  const { app, options, admin } = built;
  // One line a wrapper can parse: tests and scripts wait for it.
  console.log(`tabswarm: parameter server for ${options.model} on ${options.dataset} ready; join at ${url}`);
  if (admin.generated) console.log(`tabswarm: admin token (Authorization: Bearer ... on /api/admin/*; set --admin-token or TABSWARM_ADMIN_TOKEN to choose it): ${admin.token}`);

  let tabs: WorkerTabs | undefined;
  const workers = int('workers', values.workers)!;
  if (workers > 0) {
    if (!chromiumAvailable()) {
      console.log('tabswarm: no Chromium at /usr/bin/chromium, so no worker tabs were launched; open the URL above in any browser (or install chromium: scripts/install-system-deps.sh)');
    } else {
      tabs = await launchWorkerTabs({ url, count: workers, backend: values['worker-backend'] });
      console.log(`tabswarm: launched ${workers} headless Chromium worker tab(s) (backend ${values['worker-backend']}); watch accuracy in the log or at ${url}api/series`);
    }
  }
  const shutdown = async (signal: string) => {
    app.log.info({ signal }, 'shutting down');
    await tabs?.close().catch(() => {});
    await app.close();
    await afterClose().catch(() => {});
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
}

function joinUrl(address: string, host: string): string {
  const url = new URL(address);
  if (host === '0.0.0.0' || host === '::') {
    const lan = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    url.hostname = lan?.address ?? '127.0.0.1';
  }
  return url.toString();
}

async function worker(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { url: { type: 'string' }, steps: { type: 'string' }, seed: { type: 'string' }, 'log-every-ms': { type: 'string', default: '2000' }, 'buffer-mode': { type: 'string' }, 'log-acks': { type: 'boolean', default: false } },
  });
  const logEvery = int('log-every-ms', values['log-every-ms'])!;
  const bufferMode = values['buffer-mode'];
  if (bufferMode !== undefined && bufferMode !== 'frozen' && bufferMode !== 'local') throw new TabswarmError('CONFIG_INVALID', { option: '--buffer-mode', detail: `must be frozen or local, got '${bufferMode}'` });
  if (!values.url) throw new TabswarmError('CONFIG_INVALID', { option: '--url', detail: 'is required, e.g. --url http://127.0.0.1:8080/' });
  const { createNodeWorker } = await import('../client/node.ts');
  let lastLog = 0;
  let lastState = '';
  const loop = await createNodeWorker({
    url: values.url,
    maxSteps: int('steps', values.steps),
    seed: int('seed', values.seed),
    ...(bufferMode ? { bufferMode } : {}),
    logAcks: values['log-acks'],
    onStatus: (s) => {
      if (s.acks.length > 0) console.log(JSON.stringify({ worker: s.workerId, acks: s.acks.splice(0) }));
      const now = Date.now();
      if (now - lastLog < logEvery && s.state === lastState) return;
      lastState = s.state;
      lastLog = now;
      // Started with --expose-gc (tests do), collect first so the figures are live memory only.
      (globalThis as { gc?: () => void }).gc?.();
      const mem = process.memoryUsage();
      console.log(JSON.stringify({
        worker: s.workerId, state: s.state, steps: s.steps, examplesPerSec: Math.round(s.examplesPerSec), version: s.serverVersion, loss: s.loss,
        psUrl: s.psUrl, failovers: s.failovers, shards: s.shards, buffered: s.buffered, outageSteps: s.outageSteps, flushes: s.flushes.length, lastFlush: s.lastFlush,
        heapUsed: mem.heapUsed, arrayBuffers: mem.arrayBuffers, rss: mem.rss, error: s.lastError || undefined,
      }));
    },
  });
  process.once('SIGINT', () => loop.stop());
  process.once('SIGTERM', () => loop.stop());
  const final = await loop.run();
  console.log(JSON.stringify({ done: true, worker: final.workerId, steps: final.steps, version: final.serverVersion, flushLog: final.flushes, acks: final.acks, failovers: final.failovers }));
}

export async function main(argv: string[]): Promise<void> {
  const [command = 'start', ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest);
      case 'worker':
        return await worker(rest);
      case 'node':
        return await node(rest);
      case 'zk':
        return await (await import('./zk/cli.ts')).zkCommand(rest);
      case 'cluster':
        return await (await import('./cluster-supervisor/cli.ts')).clusterCommand(rest);
      case 'swarm':
        return await (await import('./swarm/cli.ts')).swarmCommand(rest);
      case 'experiment':
        return await (await import('./experiment/cli.ts')).experimentCommand(rest);
      case 'help':
      case '--help':
      case '-h':
        console.log(HELP);
        return;
      default:
        if (command.startsWith('--')) return await start(argv);
        throw new TabswarmError('CONFIG_INVALID', { option: 'command', detail: `unknown command '${command}'; run \`tabswarm help\`` });
    }
  } catch (err) {
    console.error(`tabswarm: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(err instanceof TabswarmError ? 2 : 1);
  }
}
