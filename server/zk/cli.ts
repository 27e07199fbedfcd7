/**
 * `tabswarm zk`: a local ZooKeeper for development, in the foreground until SIGINT or SIGTERM.
 * Prints one line to parse: `tabswarm: zookeeper ready: --zk <connection string> ...`.
 * Options: ZK_OPTIONS in server/options/tools.ts (`tabswarm zk --help`).
 */
import { TabswarmError } from '../../shared/errors.ts';
import { parseOptions } from '../options/schema.ts';
import { ZK_OPTIONS } from '../options/tools.ts';
import { startZooKeeper } from './launcher.ts';

export async function zkCommand(argv: string[]): Promise<void> {
  const values = parseOptions(ZK_OPTIONS, argv);
  const servers = values.ensemble;
  const port = values.port;
  if (port !== undefined && port + servers - 1 > 65535) throw new TabswarmError('CONFIG_INVALID', { option: '--port', detail: `${port} leaves no room for ${servers} client ports` });
  const zk = await startZooKeeper({
    servers,
    ...(port !== undefined ? { port } : {}),
    ...(values.dataDir !== undefined ? { dataDir: values.dataDir } : {}),
    keep: values.keep,
    ...(values.tickMs !== undefined ? { tickTimeMs: values.tickMs } : {}),
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
