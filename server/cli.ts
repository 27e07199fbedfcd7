/**
 * The `tabswarm` command. Every option is declared once in server/options/ (type, default,
 * allowed values, help, symptom); the parsing and the help text below are generated from there.
 *   tabswarm start  [options]   the embedded parameter server (default command)
 *   tabswarm worker --url URL   a headless Node worker (tfjs cpu backend)
 *   tabswarm zk [--ensemble N]  a local ZooKeeper for development (server/zk)
 *   tabswarm cluster | swarm | experiment   see server/cluster-supervisor, server/swarm, server/experiment
 */
import type { CodecName } from '../shared/codec/index.ts';
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { TabswarmError } from '../shared/errors.ts';
import { buildServer, type Built } from './app.ts';
import { FASHION_MNIST_DIR } from './data.ts';
import { loggerOptions, resolveLogFormat, type LogSink } from './start/logger.ts';
import { Sampler, StatusLine } from './start/view.ts';
import { installSystemPackages, launchWorkers, type LaunchedWorkers } from './start/workers.ts';
import { parseOptions, renderHelp, wantsHelp, type Values } from './options/schema.ts';
import { CHAIN_OPTIONS, NODE_OPTIONS, PS_OPTIONS, START_OPTIONS, WORKER_OPTIONS } from './options/server.ts';
import { CLUSTER_OPTIONS, DOCTOR_OPTIONS, EXPERIMENT_OPTIONS, SWARM_OPTIONS, ZK_OPTIONS } from './options/tools.ts';

const USAGE = `tabswarm: train a model on volunteer browser tabs

Usage:
  tabswarm start [options]        start the embedded parameter server (the default)
  tabswarm worker --url URL       run a headless Node worker against a PS
  tabswarm node --zk HOST:PORT    start one PS node of a chain-replicated cluster
  tabswarm zk [options]           run a local ZooKeeper (standalone or an ensemble) for development
  tabswarm cluster [options]      PS node(s) under a local supervisor, with the cluster's admin console
  tabswarm swarm --url URL        headless Chromium worker tabs against a PS (docs/console.md)
  tabswarm experiment [options]   the failure-schedule experiment harness (docs/experiments.md)
  tabswarm doctor [options]       check what tabswarm needs here (Node, Chromium and its backends,
                                  ZooKeeper, data sets, the port) and print the command fixing each gap
  tabswarm --version              the version (package.json)
  tabswarm help                   this text; \`tabswarm COMMAND --help\`: one command's options

Each option: what it does (allowed values; default), then, where there is one, the symptom that calls for it.`;

const CHAIN_KEYS = Object.keys(CHAIN_OPTIONS);
const SECTIONS = {
  start: () => `start options:\n${renderHelp(START_OPTIONS)}`,
  node: () => `node options (every start option too, --strategy included: the strategy the chain wraps; --secret or TABSWARM_SECRET is required):\n${renderHelp(NODE_OPTIONS, { keys: ['port', 'workers', 'strategy', ...CHAIN_KEYS] })}`,
  worker: () => `worker options:\n${renderHelp(WORKER_OPTIONS)}`,
  zk: () => `zk options (prints 'zookeeper ready: --zk host:port,...'; production points --zk at its own ensemble):\n${renderHelp(ZK_OPTIONS)}`,
  cluster: () => `cluster options (every other option goes to each node, e.g. --model, --strategy, --lr):\n${renderHelp(CLUSTER_OPTIONS)}`,
  swarm: () => `swarm options:\n${renderHelp(SWARM_OPTIONS)}`,
  experiment: () => `experiment options (docs/experiments.md):\n${renderHelp(EXPERIMENT_OPTIONS)}`,
  doctor: () => `doctor options (exit 1 when something required is missing):\n${renderHelp(DOCTOR_OPTIONS)}`,
};

/** The whole help, generated from the declarations in server/options/. */
export function helpText(): string {
  return [USAGE, ...Object.values(SECTIONS).map((section) => section())].join('\n\n');
}

/** One command's options; `node` lists all of its own, the start options included. */
export function commandHelp(command: keyof typeof SECTIONS): string {
  if (command === 'node') return `tabswarm node [options] (--secret or TABSWARM_SECRET is required)\n${renderHelp(NODE_OPTIONS)}`;
  return `tabswarm ${SECTIONS[command]()}`;
}

/**
 * Where the PS's log and `start`'s own lines go: stdout, until the live status line takes over
 * the terminal (then above it).
 */
const STDOUT: LogSink = { write: (text) => void process.stdout.write(text) };
let sink: LogSink = STDOUT;
/** One line of `start`'s own, through the same sink as the log. */
const say = (line: string): void => sink.write(`${line}\n`);

/** The embedded PS's options out of a parsed `start` or `node` command line. */
function serverOptions(values: Values<typeof START_OPTIONS>) {
  const ps = Object.fromEntries(Object.keys(PS_OPTIONS).map((key) => [key, values[key as keyof typeof values]])) as Values<typeof PS_OPTIONS>;
  return { logger: loggerOptions(values.logLevel, resolveLogFormat(values.logFormat), () => sink), ...ps };
}

async function start(argv: string[]): Promise<void> {
  const values = parseOptions(START_OPTIONS, argv);
  // As root, what this run needs from Debian comes first (Chromium comes with the workers).
  const fashion = `${FASHION_MNIST_DIR}/train-images-idx3-ubyte.gz`;
  if (values.dataset === 'fashion-mnist' && values.installDeps === 'auto' && !existsSync(fashion)) installSystemPackages(['dataset-fashion-mnist'], say);
  const built = await buildServer(serverOptions(values));
  const address = await built.app.listen({ port: values.port, host: values.host });
  await serve(built, joinUrl(address, values.host), values, async () => {});
}

/** `tabswarm node`: one PS node of a chain-replicated cluster (server/chain). */
async function node(argv: string[]): Promise<void> {
  const values = parseOptions(NODE_OPTIONS, argv);
  const { startChainNode } = await import('./chain/node.ts');
  // --strategy travels in the embedded PS's options: the chain wraps it (server/chain/node.ts).
  const { secret: _secret, ...server } = serverOptions(values);
  const host = values.host;
  const chain = await startChainNode({
    zk: values.zk,
    cluster: values.cluster,
    replication: values.replication,
    reads: values.reads,
    snapshotEvery: values.snapshotEvery,
    asyncWindow: values.asyncWindow,
    zkSessionMs: values.zkSessionMs,
    fastDetect: values.fastDetect === 'on',
    secret: values.secret ?? process.env.TABSWARM_SECRET ?? '',
    port: values.port,
    host,
    advertise: (address) => joinUrl(address, host),
    server,
  });
  const status = chain.replica.replicaStatus();
  console.log(`tabswarm: chain node ${status.name} of cluster ${values.cluster} (${values.replication} replication, epoch ${status.epoch}, role ${status.role})`);
  await serve(chain.built, joinUrl(chain.url, host), values, () => chain.coord.close());
}

/**
 * After listen: the ready line, the workers (server/start/workers.ts), on a terminal the live
 * status line (server/start/view.ts), and a clean shutdown on signals.
 */
async function serve(built: Built, url: string, values: Values<typeof START_OPTIONS>, afterClose: () => Promise<void>): Promise<void> {
  const { app, options, admin } = built;
  // One line a wrapper can parse: tests and scripts wait for it.
  say(`tabswarm: parameter server for ${options.model} on ${options.dataset} ready; join at ${url}`);
  if (admin.generated) say(`tabswarm: admin token (Authorization: Bearer ... on /api/admin/*; set --admin-token or TABSWARM_ADMIN_TOKEN to choose it): ${admin.token}`);

  let workers: LaunchedWorkers | undefined;
  let view: StatusLine | undefined;
  // Handled from here on, so a signal during the launch (a browser starting, apt-get) stops cleanly too.
  const shutdown = async (signal: string) => {
    view?.stop();
    sink = STDOUT;
    app.log.info({ signal }, 'shutting down');
    await workers?.close();
    await app.close();
    await afterClose().catch(() => {});
    process.exit(0);
  };
  process.once('SIGINT', () => void shutdown('SIGINT'));
  process.once('SIGTERM', () => void shutdown('SIGTERM'));

  workers = await launchWorkers({
    url, count: values.workers, backend: values.workerBackend, runtime: values.workerRuntime, installDeps: values.installDeps,
    say, warn: (line) => app.log.warn(line),
  });
  if (process.stdout.isTTY) {
    const line = (view = new StatusLine(process.stdout, new Sampler(built.ps, url)));
    sink = { write: (text) => line.print(text) };
    line.start();
    // However the process ends, the terminal is left on a fresh line.
    process.once('exit', () => line.stop());
  }
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
  const values = parseOptions(WORKER_OPTIONS, argv);
  const logEvery = values.logEveryMs;
  const bufferMode = values.bufferMode;
  const { createNodeWorker } = await import('../client/node.ts');
  let lastLog = 0;
  let lastState = '';
  // The ledger (acknowledged pushes and flushes) is the loop's, known once it is built.
  let ledger: { acks: unknown[]; flushes: unknown[] } | undefined;
  const loop = await createNodeWorker({
    url: values.url,
    maxSteps: values.steps,
    seed: values.seed,
    ...(bufferMode ? { bufferMode } : {}),
    logAcks: values.logAcks,
    ...(values.requestTimeoutMs !== undefined ? { requestTimeoutMs: values.requestTimeoutMs } : {}),
    ...(values.drainTimeoutMs !== undefined ? { drainTimeoutMs: values.drainTimeoutMs } : {}),
    codec: values.codec as CodecName,
    overlap: values.overlap,
    ...(values.topkRatio !== undefined ? { topkRatio: values.topkRatio } : {}),
    ...(values.int8Block !== undefined ? { int8Block: values.int8Block } : {}),
    ...(values.attack ? { attack: (await import('../client/attack.ts')).createAttack(values.attack, values.seed ?? 1) } : {}),
    onStatus: (s) => {
      if (ledger && ledger.acks.length > 0) console.log(JSON.stringify({ worker: s.workerId, acks: ledger.acks.splice(0) }));
      const now = Date.now();
      if (now - lastLog < logEvery && s.state === lastState) return;
      lastState = s.state;
      lastLog = now;
      // Started with --expose-gc (tests do), collect first so the figures are live memory only.
      (globalThis as { gc?: () => void }).gc?.();
      const mem = process.memoryUsage();
      console.log(JSON.stringify({
        worker: s.workerId, state: s.state, steps: s.steps, examplesPerSec: Math.round(s.examplesPerSec), version: s.serverVersion, loss: s.loss,
        codec: s.codec, pushBytes: s.pushBytes, psUrl: s.psUrl, failovers: s.failovers, shards: s.shards, buffered: s.buffered, outageSteps: s.outageSteps, flushes: ledger?.flushes.length ?? 0, lastFlush: s.lastFlush,
        ...(s.drain ? { drain: s.drain } : {}),
        heapUsed: mem.heapUsed, arrayBuffers: mem.arrayBuffers, rss: mem.rss, error: s.lastError || undefined,
      }));
    },
  });
  ledger = loop.ledger;
  // The first signal drains (delivers what is owed, within --drain-timeout-ms); the second ends
  // the drain at once, still reporting what was left; a third, or a loop that does not end
  // within a second of the second, exits without a word.
  let signals = 0;
  const onSignal = () => {
    signals += 1;
    if (signals === 1) return loop.stop();
    if (signals === 2) {
      loop.stop({ drain: false });
      return void setTimeout(() => process.exit(130), 1000).unref();
    }
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const final = await loop.run();
  // What the drain delivered and left: with the acks, reconciles this worker with the PS's version.
  console.log(JSON.stringify({ done: true, worker: final.workerId, steps: final.steps, version: final.serverVersion, flushLog: loop.ledger.flushes, acks: loop.ledger.acks.splice(0), failovers: final.failovers, drain: final.drain }));
}

/** package.json's version: what `tabswarm --version` prints. */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export async function main(argv: string[]): Promise<void> {
  const [command = 'start', ...rest] = argv;
  try {
    // `tabswarm COMMAND --help`: generated from the command's declaration, before any parsing.
    if (Object.hasOwn(SECTIONS, command) && wantsHelp(rest)) return void console.log(commandHelp(command as keyof typeof SECTIONS));
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
      case 'doctor':
        return void (process.exitCode = await (await import('./start/doctor.ts')).doctorCommand(parseOptions(DOCTOR_OPTIONS, rest)));
      case 'version':
      case '--version':
      case '-v':
        console.log(version());
        return;
      case 'help':
      case '--help':
      case '-h':
        console.log(helpText());
        return;
      default:
        if (command.startsWith('--')) return wantsHelp(argv) ? void console.log(commandHelp('start')) : await start(argv);
        throw new TabswarmError('CONFIG_INVALID', { option: 'command', detail: `unknown command '${command}'; run \`tabswarm help\`` });
    }
  } catch (err) {
    console.error(`tabswarm: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(err instanceof TabswarmError ? 2 : 1);
  }
}
