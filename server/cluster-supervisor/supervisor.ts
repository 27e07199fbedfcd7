/**
 * A local process supervisor for PS nodes: the kill and restart buttons of the console and the
 * experiment harness's fault injection. It owns the node processes (and, for a chain, a local
 * ZooKeeper), so a node can be SIGKILLed and started again on the same port, with the same
 * secret and admin token, which a node cannot do to itself.
 *
 *   single: one `tabswarm start` child (any --strategy); kill/restart it.
 *   chain:  a local ZooKeeper (server/zk) and N `tabswarm node --zk ... --replication R` children.
 *
 * Children are reaped by PID; stop() kills every one of them (and ZooKeeper) whatever happened.
 * Each node is tied to the supervisor (server/spawn.ts), so a SIGKILLed supervisor, which runs
 * no stop(), leaves no node behind either.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '../spawn.ts';
import { freePorts } from '../zk/config.ts';
import type { ZooKeeperCluster } from '../zk/launcher.ts';
import type { NodeHealth } from '../admin/types.ts';

const BIN = fileURLToPath(new URL('../../bin/tabswarm.mjs', import.meta.url));

export interface SupervisorOptions {
  /** Node processes: 1 with no replication is a supervised single PS. @default 1 */
  nodes: number;
  /** Chain replication mode; undefined = single PS (`tabswarm start`). */
  replication?: 'sync' | 'async' | 'snapshot';
  /** Extra chain options passed to every node. */
  snapshotEvery?: number;
  reads?: 'strict' | 'relaxed';
  /** An existing ZooKeeper (`host:port,...`); else one is started locally for a chain. */
  zk?: string;
  /** Cluster name in ZooKeeper. @default 'tabswarm' */
  cluster?: string;
  /** Address the nodes bind. @default '127.0.0.1' */
  host?: string;
  /** Port of node 1; node i gets basePort+i-1. @default free ports */
  basePort?: number;
  /** Shared by every node so tags survive restarts. */
  secret: string;
  adminToken: string;
  /** Options passed through to every node (`--model`, `--strategy`, `--lr`, ...). */
  nodeArgs: string[];
  /** Where each node's output goes (`node-1.log`, ...); undefined = discarded. */
  logDir?: string;
  /** How long a node may take to print its join URL. @default 90000 */
  readyTimeoutMs?: number;
  /** Called with every line a node prints. */
  onLine?: (node: string, line: string) => void;
}

export interface SupervisedNode {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  health: NodeHealth;
  child: ChildProcess | undefined;
  /** Times started. */
  starts: number;
}

export class Supervisor {
  readonly nodes: SupervisedNode[] = [];
  zk: ZooKeeperCluster | undefined;
  zkConnection: string | undefined;
  /** Extra node arguments for restarts (the console's run changes: --lr, --rule). */
  overrides: Record<string, string> = {};
  private logs = new Map<string, WriteStream>();
  private stopping = false;

  constructor(readonly opts: SupervisorOptions) {}

  get mode(): 'single' | 'chain' {
    return this.opts.replication ? 'chain' : 'single';
  }

  async start(): Promise<void> {
    const host = this.opts.host ?? '127.0.0.1';
    if (this.mode === 'chain') {
      if (this.opts.zk) {
        this.zkConnection = this.opts.zk;
      } else {
        const { startZooKeeper } = await import('../zk/launcher.ts');
        this.zk = await startZooKeeper({ servers: 1, host });
        this.zkConnection = this.zk.connectionString;
      }
    }
    const ports = this.opts.basePort ? Array.from({ length: this.opts.nodes }, (_, i) => this.opts.basePort! + i) : await freePorts(this.opts.nodes, host);
    if (this.opts.logDir) mkdirSync(this.opts.logDir, { recursive: true });
    for (let i = 0; i < this.opts.nodes; i++) {
      const name = `node-${i + 1}`;
      this.nodes.push({ name, port: ports[i]!, url: `http://${host}:${ports[i]}/`, health: 'down', child: undefined, starts: 0 });
    }
    // Nodes start one after another, so node-1 registers first (the head of a fresh chain).
    for (const n of this.nodes) await this.spawnNode(n);
  }

  node(name: string): SupervisedNode | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  private args(n: SupervisedNode): string[] {
    const o = this.opts;
    const common = ['--port', String(n.port), '--host', o.host ?? '127.0.0.1', '--workers', '0', `--secret=${o.secret}`, `--admin-token=${o.adminToken}`];
    const overrides = Object.entries(this.overrides).flatMap(([k, v]) => [`--${k}`, v]);
    if (this.mode === 'single') return ['start', ...common, ...o.nodeArgs, ...overrides];
    return ['node', '--zk', this.zkConnection!, '--cluster', o.cluster ?? 'tabswarm', '--replication', o.replication!,
      ...(o.snapshotEvery !== undefined ? ['--snapshot-every', String(o.snapshotEvery)] : []), ...(o.reads ? ['--reads', o.reads] : []),
      ...common, ...o.nodeArgs, ...overrides];
  }

  /** Starts the node's process and waits for its join URL. */
  private async spawnNode(n: SupervisedNode): Promise<void> {
    n.health = 'starting';
    n.starts += 1;
    const child = spawnTied(process.execPath, [BIN, ...this.args(n)], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    n.child = child;
    let log = this.logs.get(n.name);
    if (!log && this.opts.logDir) this.logs.set(n.name, (log = createWriteStream(join(this.opts.logDir, `${n.name}.log`), { flags: 'a' })));
    log?.write(`--- start ${n.starts} at ${new Date().toISOString()}: tabswarm ${this.args(n).map((a) => (a === this.opts.secret || a === this.opts.adminToken ? '***' : a.replace(/^(--secret|--admin-token)=.*/, '$1=***'))).join(' ')}\n`);
    let out = '';
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        const text = d.toString();
        log?.write(text);
        for (const line of text.split('\n')) if (line) this.opts.onLine?.(n.name, line);
        if (out.length < 65536) out += text;
        if (/join at http/.test(out)) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code, signal) => reject(new Error(`${n.name} exited (${signal ?? code}) before it was ready: ${out.slice(-2000)}`)));
    });
    child.once('exit', () => {
      if (n.child === child) {
        n.health = 'down';
        n.child = undefined;
      }
    });
    const timeout = this.opts.readyTimeoutMs ?? 90000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([ready, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${n.name} printed no join URL within ${timeout} ms: ${out.slice(-2000)}`)), timeout)))]);
      n.health = 'up';
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL: the node gets no chance to save or hand anything over. */
  async kill(name: string): Promise<{ node: string; pid: number | undefined }> {
    const n = this.node(name);
    if (!n) throw new Error(`no node ${name}`);
    const child = n.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return { node: name, pid: undefined };
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
    return { node: name, pid: child.pid };
  }

  /** Starts a killed node again on its port; resolves when it prints its join URL. */
  async restart(name: string): Promise<{ node: string; pid: number | undefined; url: string }> {
    const n = this.node(name);
    if (!n) throw new Error(`no node ${name}`);
    if (n.child) await this.kill(name);
    await this.spawnNode(n);
    return { node: name, pid: n.child?.pid, url: n.url };
  }

  /** Kills every node and stops ZooKeeper. Safe to call twice and on a half-started supervisor. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await Promise.all(this.nodes.map(async (n) => {
      const child = n.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }));
    for (const log of this.logs.values()) log.end();
    await this.zk?.stop();
  }
}
