/**
 * `tabswarm zk`: a local ZooKeeper for development, in the foreground until SIGINT or SIGTERM.
 * Prints one line to parse: `tabswarm: zookeeper ready: --zk <connection string> ...`.
 * Options: see HELP in server/cli.ts.
 */
import { parseArgs } from 'node:util';
import { TabswarmError } from '../../shared/errors.ts';
import { startZooKeeper } from './launcher.ts';

function positiveInt(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new TabswarmError('CONFIG_INVALID', { option, detail: `'${value}' is not a positive integer` });
  return n;
}

export async function zkCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ensemble: { type: 'string', default: '1' },
      port: { type: 'string' },
      'data-dir': { type: 'string' },
      keep: { type: 'boolean', default: false },
      'tick-ms': { type: 'string' },
    },
  });
  const servers = positiveInt('--ensemble', values.ensemble)!;
  const port = positiveInt('--port', values.port);
  if (port !== undefined && port + servers - 1 > 65535) throw new TabswarmError('CONFIG_INVALID', { option: '--port', detail: `${port} leaves no room for ${servers} client ports` });
  const zk = await startZooKeeper({
    servers,
    ...(port !== undefined ? { port } : {}),
    ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}),
    keep: values.keep,
    ...(values['tick-ms'] !== undefined ? { tickTimeMs: positiveInt('--tick-ms', values['tick-ms'])! } : {}),
  });
  const shape = servers === 1 ? 'standalone' : `ensemble of ${servers}`;
  console.log(`tabswarm: zookeeper ready: --zk ${zk.connectionString} (${shape}; data in ${zk.dataDir}${values.keep ? ', kept' : ', removed at exit'})`);
  for (const s of zk.servers) console.log(`tabswarm: zookeeper server ${s.id} pid ${s.pid} on ${s.address}, log ${s.logFile}`);

  let stopping = false;
  for (const s of zk.servers) {
    // Said once, so an operator sees a server die; the others (a quorum) may serve on.
    const timer = setInterval(() => {
      if (s.running || stopping) return;
      clearInterval(timer);
      console.error(`tabswarm: zookeeper server ${s.id} exited; see ${s.logFile}`);
    }, 1000);
    timer.unref();
  }
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`tabswarm: ${signal}: stopping zookeeper`);
    await zk.stop();
    console.log('tabswarm: zookeeper stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  // Stay in the foreground: the JVMs are children, but their exit must not end this process.
  setInterval(() => {}, 1 << 30);
}
