/**
 * Chain replication, `npm run bench:chain [-- --seconds 10 --clients 4 --kills 20 --zk-session-ms 1500]`.
 *
 * 1. Throughput and ack latency on fashion-cnn (3.25 MB gradients, synthetic data): chains of 1,
 *    2 and 3 `tabswarm node` processes, sync and async, one after the other in one run against
 *    one local ZooKeeper. The clients (this process) keep one pre-encoded push in flight each over
 *    /ws to the head; updates/s and push-to-ack latency in a window after a warm-up. At the end of
 *    each window the head is SIGKILLed under load: the acknowledged versions the new head does not
 *    hold are what that head failure lost (sync: none; async: at most --async-window).
 * 2. Failover: a chain of 3 (sync, mnist-logreg) and a real worker loop (client/loop.ts, tfjs cpu,
 *    in this process) training through --kills SIGKILLs of the head; each killed node restarted
 *    (it rejoins at the tail). Failover time = SIGKILL to the first ack from the new head, as the
 *    worker saw it. Twice: with --fast-detect on (the head's successor sees the link drop and the
 *    port refuse connections, and removes it at once) and off (only the ZooKeeper session
 *    timeout, --zk-session-ms, drops it: what a machine crash or partition costs).
 * Every child is killed on exit; ZooKeeper's data is removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import type { ClusterInfo } from '../shared/api.ts';
import { deriveLayout } from '../shared/layout.ts';
import { getModel } from '../shared/models.ts';
import { MsgType, encodeFrame, writeHeader } from '../shared/protocol.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { machineLine, printTable } from './sys.ts';

const BIN = fileURLToPath(new URL('../bin/tabswarm.mjs', import.meta.url));
const SECRET = 'bench-chain-secret-0123456789';
const OPTIONS = defineOptions({
  part: { type: 'choice', values: ['all', 'throughput', 'failover'], default: 'all', help: 'which half to run' },
  seconds: { type: 'number', min: 0, exclusive: 'min', arg: 'S', default: 10, help: 'throughput: seconds per cell' },
  clients: { type: 'int', min: 1, default: 4, help: 'throughput: load clients, one push in flight each' },
  kills: { type: 'int', min: 1, default: 20, help: 'failover: SIGKILLs of the head' },
  zkSessionMs: { type: 'int', min: 1, arg: 'MS', default: 1500, help: 'failover: the nodes\' --zk-session-ms' },
  fastDetect: { type: 'list', of: 'string', arg: 'on,off', default: ['on', 'off'], help: 'failover: the --fast-detect settings to measure' },
});
const opts = parseCommandLine(OPTIONS, 'npm run bench:chain -- [options]: chain replication throughput and failover (docs/benchmarks.md)');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const children = new Set<ChildProcess>();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });
process.on('SIGINT', () => process.exit(130));

interface Node { child: ChildProcess; url: string; out: () => string }

async function startNode(zk: string, cluster: string, args: string[]): Promise<Node> {
  const child = spawn(process.execPath, [BIN, 'node', '--zk', zk, '--cluster', cluster, '--secret', SECRET, '--log-level', 'error', '--eval-every', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  for (const deadline = Date.now() + 60000; Date.now() < deadline; await sleep(50)) {
    const url = /join at (http:\/\/\S+)/.exec(out)?.[1];
    if (url) return { child, url, out: () => out };
    if (child.exitCode !== null) break;
  }
  throw new Error(`node did not start: ${out}`);
}

async function cluster(url: string): Promise<ClusterInfo | undefined> {
  try {
    const res = await fetch(new URL('/api/cluster', url), { signal: AbortSignal.timeout(2000) });
    return res.ok ? ((await res.json()) as ClusterInfo) : undefined;
  } catch {
    return undefined;
  }
}

async function settled(nodes: Node[], size: number): Promise<ClusterInfo> {
  for (const deadline = Date.now() + 60000; Date.now() < deadline; await sleep(50)) {
    const live = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
    const infos = await Promise.all(live.map((n) => cluster(n.url)));
    const first = infos[0];
    if (first && live.length === size && first.nodes.length === size && infos.every((c) => c && c.epoch === first.epoch && !c.node.fresh)) return first;
  }
  throw new Error(`no settled chain of ${size}`);
}

async function kill(n: Node): Promise<void> {
  if (n.child.exitCode !== null || n.child.signalCode !== null) return;
  const exited = once(n.child, 'exit');
  n.child.kill('SIGKILL');
  await exited;
}

// ---- 1. throughput, latency, async loss -------------------------------------------------

const CNN = deriveLayout(getModel('fashion-cnn'));

/**
 * One load client: one pre-encoded push in flight at a time over /ws to the head. A push the
 * node refuses (an async head that stops taking writes while ZooKeeper is silent) or a dropped
 * socket is not counted: the client joins the head again and goes on, as a worker would.
 */
class LoadClient {
  private socket: WebSocket | undefined;
  private pending: (() => void) | undefined;
  private seq = 0;
  reconnects = 0;
  private readonly grad: Float32Array;

  constructor(private readonly head: () => string, index: number, private readonly acked: { max: number }) {
    this.grad = Float32Array.from({ length: CNN.size }, (_, i) => 1e-4 * Math.sin(i * 0.37 + index));
  }

  /** Pushes until `stop()`; `onAck(latencyMs)` for every real ack. */
  async run(isStopped: () => boolean, onAck: (ms: number) => void): Promise<void> {
    while (!isStopped()) {
      try {
        const { socket, frame, workerId } = await this.connect();
        while (!isStopped() && socket.readyState === WebSocket.OPEN) {
          const seq = ++this.seq;
          writeHeader(frame, { type: MsgType.PUSH, layoutHash: CNN.hash, modelVersion: 0, workerId, seq, count: 1 }, CNN.size);
          const sent = performance.now();
          const ok = await new Promise<boolean>((resolve) => {
            this.pending = () => resolve(true);
            socket.once('close', () => resolve(false));
            socket.send(frame, { binary: true });
          });
          if (ok) onAck(performance.now() - sent);
        }
      } catch {
        // The head is changing: try again shortly.
      }
      if (!isStopped()) {
        this.reconnects += 1;
        await sleep(100);
      }
    }
    this.socket?.close();
  }

  private async connect() {
    const head = this.head();
    const join = (await (await fetch(new URL('/api/join', head), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(5000) })).json()) as { workerId: number; token: string };
    if (!join.token) throw new Error('join refused');
    const frame = encodeFrame({ type: MsgType.PUSH, layoutHash: CNN.hash, modelVersion: 0, workerId: join.workerId, seq: 0, count: 1 }, this.grad);
    const socket = new WebSocket(`${head.replace('http', 'ws')}ws?token=${join.token}`, { maxPayload: 64 << 20 });
    this.socket = socket;
    socket.on('error', () => {});
    await once(socket, 'open');
    socket.on('message', (ack: Buffer, isBinary: boolean) => {
      if (!isBinary) return;
      this.acked.max = Math.max(this.acked.max, ack.readUInt32LE(12));
      this.pending?.();
    });
    return { socket, frame, workerId: join.workerId };
  }
}

async function throughput(zk: ZooKeeperCluster): Promise<void> {
  const { seconds, clients } = opts;
  const rows: string[][] = [['chain', 'mode', 'updates/s', 'p50 ack ms', 'p99 ack ms', 'client reconnects', 'acked at the kill', 'new head holds', 'acked updates lost']];
  for (const length of [1, 2, 3]) {
    for (const mode of ['sync', 'async'] as const) {
      const name = `bench-${length}-${mode}-${Date.now()}`;
      const nodes: Node[] = [];
      for (let i = 0; i < length; i++) nodes.push(await startNode(zk.connectionString, name, ['--model', 'fashion-cnn', '--dataset', 'synthetic', '--replication', mode, '--mesh-peers', '0']));
      let chain = await settled(nodes, length);
      const acked = { max: 0 };
      const cs = Array.from({ length: clients }, (_, i) => new LoadClient(() => chain.head!, i, acked));
      const latencies: number[] = [];
      let timing = false;
      let stopped = false;
      const loops = cs.map((c) => c.run(() => stopped, (ms) => timing && latencies.push(ms)));
      await sleep(2000);
      timing = true;
      await sleep(seconds * 1000);
      timing = false;
      const reconnects = cs.reduce((n, c) => n + c.reconnects, 0);
      let killedAt = NaN;
      let holds = NaN;
      if (length > 1) {
        // SIGKILL the head under load; what the new head holds once the chain has reconfigured.
        const head = nodes.find((n) => n.url === chain.head)!;
        await kill(head);
        killedAt = acked.max;
        chain = await settled(nodes, length - 1);
        holds = (await cluster(chain.head!))!.node.version;
      }
      stopped = true;
      await Promise.all(loops);
      latencies.sort((x, y) => x - y);
      const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
      const rate = latencies.length / seconds;
      const lost = length === 1 ? '-' : String(Math.max(0, killedAt - holds));
      rows.push([String(length), mode, rate.toFixed(1), q(0.5).toFixed(1), q(0.99).toFixed(1), String(reconnects), length === 1 ? '-' : String(killedAt), length === 1 ? '-' : String(holds), lost]);
      console.log(`chain ${length} ${mode}: ${rate.toFixed(1)} updates/s, p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, ${reconnects} reconnects${length > 1 ? `; head killed: acked up to ${killedAt}, new head at ${holds}` : ''}`);
      for (const n of nodes) await kill(n);
    }
  }
  printTable(rows, 2);
}

// ---- 2. failover ----------------------------------------------------------------------

async function failover(zk: ZooKeeperCluster, fastDetect: 'on' | 'off'): Promise<void> {
  const kills = opts.kills;
  const session = String(opts.zkSessionMs);
  const name = `bench-failover-${fastDetect}-${Date.now()}`;
  const args = ['--model', 'mnist-logreg', '--dataset', 'mnist', '--replication', 'sync', '--zk-session-ms', session, '--fast-detect', fastDetect, '--mesh-peers', '0'];
  const nodes: Node[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await startNode(zk.connectionString, name, args));
  await settled(nodes, 3);
  const { createNodeWorker } = await import('../client/node.ts');
  // Ack times as the worker sees them: the ledger's acks grow inside the loop; stamped per step.
  const ackTimes: { at: number; psUrl: string }[] = [];
  let seen = 0;
  let acks: readonly unknown[] = [];
  const loop = await createNodeWorker({
    url: nodes[1]!.url,
    logAcks: true,
    onStatus: (s) => {
      const now = performance.now();
      for (; seen < acks.length; seen++) ackTimes.push({ at: now, psUrl: s.psUrl });
    },
  });
  acks = loop.ledger.acks;
  const running = loop.run().catch((err: Error) => console.error('worker failed:', err.message));
  const times: number[] = [];
  for (let k = 0; k < kills; k++) {
    const chain = await settled(nodes, 3);
    while (!ackTimes.some((a) => a.psUrl === chain.head)) await sleep(50);
    await sleep(500);
    const head = nodes.find((n) => n.url === chain.head)!;
    const t0 = performance.now();
    await kill(head);
    while (!ackTimes.some((a) => a.at > t0 && a.psUrl !== head.url)) await sleep(5);
    const first = ackTimes.find((a) => a.at > t0 && a.psUrl !== head.url)!;
    times.push(first.at - t0);
    console.log(`kill ${k + 1}/${kills}: first ack from the new head ${(first.at - t0).toFixed(0)} ms after SIGKILL`);
    nodes.push(await startNode(zk.connectionString, name, args));
  }
  loop.stop();
  await running;
  for (const n of nodes) await kill(n);
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  console.log(`failover over ${times.length} SIGKILLs of the head (--fast-detect ${fastDetect}, ZooKeeper session timeout ${session} ms, tick 250 ms): median ${median.toFixed(0)} ms, min ${times[0]!.toFixed(0)} ms, max ${times.at(-1)!.toFixed(0)} ms`);
  console.log(`all: ${times.map((t) => t.toFixed(0)).join(' ')}`);
}

async function main(): Promise<void> {
  console.log(machineLine());
  const zk = await startZooKeeper({ servers: 1 });
  try {
    if (opts.part !== 'failover') await throughput(zk);
    if (opts.part !== 'throughput') {
      for (const fd of opts.fastDetect) await failover(zk, fd as 'on' | 'off');
    }
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await zk.stop();
  }
}

await main();
