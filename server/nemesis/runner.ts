/**
 * The nemesis scheduler: drives a schedule of named faults (faults.ts) against real processes,
 * a chain of `tabswarm node`s and the ZooKeeper servers of startZooKeeper, while workers push.
 * Before each fault it waits for a settled chain (the configured length, one epoch, every node
 * serving, every ZooKeeper server up) and for updates to commit; after it, it measures how long
 * until an update commits again (`recoveredMs`: for a node fault, the failover time) and puts
 * the target back (a fresh node joins at the tail, SIGCONT, a ZooKeeper restart). Conditions
 * with timeouts throughout: a chain that does not recover in time ends the run with the fault
 * that stuck it, which is itself a finding.
 *
 * Node processes come from the caller (`startNode`), so the tests' and the bench's spawning,
 * secrets and cleanup stay theirs.
 */
import type { ChildProcess } from 'node:child_process';
import type { ClusterInfo } from '../../shared/api.ts';
import { sleep } from '../../shared/backoff.ts';
import type { ZooKeeperCluster } from '../zk/launcher.ts';
import { serverMode } from '../zk/four-letter.ts';
import type { ReplicaHistory } from './checker.ts';
import { downMs, hitsNode, type Fault } from './faults.ts';

/** What the nemesis needs of a node process (test/chain-tools.ts NodeProc has it). */
export interface NemesisNode {
  readonly url: string;
  readonly child: ChildProcess;
  alive(): boolean;
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  cluster(): Promise<ClusterInfo>;
  admin<T>(method: 'GET' | 'POST', path: string): Promise<T>;
}

export interface NemesisOptions {
  zk: ZooKeeperCluster;
  /** Starts one more node of the cluster and resolves once it printed its URL. */
  startNode(): Promise<NemesisNode>;
  /** Chain length restored before every fault. */
  size: number;
  /** The nodes' --zk-session-ms: pause lengths are in these. */
  sessionMs: number;
  /** Updates that must commit before each fault, so every fault hits a chain under load. @default 5 */
  progress?: number;
  /** Longest wait for recovery, for a settled chain, or for progress. @default 90000 */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface FaultRecord {
  readonly index: number;
  readonly name: Fault['name'];
  /** The node URL or `zk-N` it hit. */
  readonly target: string;
  /** The highest committed version before the fault. */
  readonly committed: number;
  /** Fault to the first update committed after it (null when it did not commit in time). */
  readonly recoveredMs: number | null;
  /** Fault to the chain settled at full length again, target restored. */
  readonly settledMs: number;
}

/** Polls `check` every `everyMs` until it returns a value; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined>, what: string, timeoutMs: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`nemesis: timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}

/** SIGSTOP/SIGCONT one process group (a node) or process (a JVM); false when it is gone. */
function signal(pid: number, sig: NodeJS.Signals, group: boolean): boolean {
  try {
    process.kill(group ? -pid : pid, sig);
    return true;
  } catch {
    return false;
  }
}

export class Nemesis {
  /** Every node started, dead ones included (their output is evidence). */
  readonly nodes: NemesisNode[] = [];
  readonly records: FaultRecord[] = [];
  /** Stopped processes: [pid, whether a group], continued by stop() if a run ends early. */
  private readonly stopped = new Map<number, boolean>();
  private readonly timeoutMs: number;
  private readonly log: (line: string) => void;

  constructor(private readonly o: NemesisOptions) {
    this.timeoutMs = o.timeoutMs ?? 90_000;
    this.log = o.log ?? (() => {});
  }

  /** Starts the chain and waits until it is settled. */
  async start(): Promise<ClusterInfo> {
    for (let i = 0; i < this.o.size; i++) this.nodes.push(await this.o.startNode());
    return this.settled();
  }

  /** Live nodes that are not stopped. */
  live(): NemesisNode[] {
    return this.nodes.filter((n) => n.alive() && !this.stopped.has(n.child.pid!));
  }

  /** The chain as the answering live nodes agree on it (highest epoch), with each one's view. */
  async view(): Promise<{ chain: ClusterInfo; infos: ClusterInfo[] }> {
    const infos = (await Promise.all(this.live().map((n) => n.cluster().catch(() => undefined)))).filter((c): c is ClusterInfo => !!c);
    const chain = [...infos].sort((a, b) => b.epoch - a.epoch)[0];
    if (!chain) throw new Error('no live node answers /api/cluster');
    return { chain, infos };
  }

  /** The highest version any answering node knows to be committed (acknowledged in sync mode). */
  async committed(): Promise<number> {
    const { infos } = await this.view();
    return Math.max(...infos.map((c) => Math.max(c.node.committed, c.node.role === 'tail' || c.node.role === 'single' ? c.node.version : 0)));
  }

  /** Waits for `size` live serving nodes in one epoch and every ZooKeeper server up. */
  async settled(): Promise<ClusterInfo> {
    return waitFor(async () => {
      if (this.o.zk.servers.some((s) => !s.running) || this.stopped.size > 0) return undefined;
      const live = this.live();
      const infos = await Promise.all(live.map((n) => n.cluster()));
      const first = infos[0];
      if (!first || live.length !== this.o.size || first.nodes.length !== this.o.size || !first.head) return undefined;
      return infos.every((c) => c.epoch === first.epoch && !c.node.fresh) ? first : undefined;
    }, `a settled chain of ${this.o.size}`, this.timeoutMs);
  }

  /** Waits until an update past `version` commits; resolves with that version. */
  async progressPast(version: number): Promise<number> {
    return waitFor(async () => {
      const c = await this.committed();
      return c > version ? c : undefined;
    }, `an update committed past version ${version}`, this.timeoutMs, 20);
  }

  /** Runs the faults in order; each record is also kept in `records`. */
  async run(faults: readonly Fault[]): Promise<FaultRecord[]> {
    for (const f of faults) await this.inject(f);
    return this.records;
  }

  async inject(f: Fault): Promise<FaultRecord> {
    const chain = await this.settled();
    // Under load: a few updates commit between faults.
    const base = await this.committed();
    const committed = await waitFor(async () => {
      const c = await this.committed();
      return c >= base + (this.o.progress ?? 5) ? c : undefined;
    }, `${this.o.progress ?? 5} updates to commit before fault ${this.records.length + 1}`, this.timeoutMs, 20);
    const down = downMs(f, this.o.sessionMs);
    const index = this.records.length + 1;
    let target: string;
    let restore: () => Promise<void>;
    const t0 = performance.now();
    if (hitsNode(f)) {
      const url = f.target === 'head' ? chain.head : f.target === 'tail' ? chain.tail : chain.nodes[Math.floor(chain.nodes.length / 2)]?.url;
      const node = this.nodes.find((n) => n.url === url && n.alive());
      if (!node || (f.target === 'middle' && chain.nodes.length < 3)) throw new Error(`nemesis: fault ${f.name} has no ${f.target} in a chain of ${chain.nodes.length}`);
      target = node.url;
      if (f.action === 'kill') {
        await node.kill('SIGKILL');
        restore = async () => void this.nodes.push(await this.o.startNode());
      } else {
        const pid = node.child.pid!;
        this.stopped.set(pid, true);
        signal(pid, 'SIGSTOP', true);
        restore = async () => this.resume(pid);
      }
    } else {
      const id = f.target === 'zk-leader' ? await this.zkLeader() : ((index - 1) % this.o.zk.servers.length) + 1;
      const server = this.o.zk.server(id);
      target = `zk-${id}`;
      if (f.action === 'kill') {
        await this.o.zk.stopServer(id, 'SIGKILL');
        restore = () => this.o.zk.startServer(id);
      } else {
        const pid = server.pid!;
        this.stopped.set(pid, false);
        signal(pid, 'SIGSTOP', false);
        restore = async () => this.resume(pid);
      }
    }
    this.log(`fault ${index} ${f.name} -> ${target} (committed ${committed}, down ${down} ms)`);
    // Recovery is measured while the target is still down: a paused node must be routed around.
    const recovery = this.progressPast(committed).then(() => performance.now() - t0, (err: Error) => {
      this.log(`fault ${index} ${f.name}: ${err.message}`);
      return null;
    });
    await sleep(down);
    await restore();
    const recoveredMs = await recovery;
    await this.settled().catch((err: Error) => {
      throw new Error(`nemesis: the chain did not settle after fault ${index} ${f.name} on ${target}: ${err.message}`);
    });
    const record: FaultRecord = { index, name: f.name, target, committed, recoveredMs, settledMs: performance.now() - t0 };
    this.records.push(record);
    this.log(`fault ${index} ${f.name}: committed again after ${recoveredMs === null ? 'never' : `${recoveredMs.toFixed(0)} ms`}, settled after ${record.settledMs.toFixed(0)} ms`);
    if (recoveredMs === null) throw new Error(`nemesis: nothing committed within ${this.timeoutMs} ms of fault ${index} ${f.name} on ${target}`);
    return record;
  }

  /** The ensemble's leader, found with `srvr` on every running server. */
  async zkLeader(): Promise<number> {
    return waitFor(async () => {
      for (const s of this.o.zk.servers) {
        const [host, port] = s.address.split(':');
        if (s.running && (await serverMode(host!, Number(port))) === 'leader') return s.id;
      }
      return undefined;
    }, 'a ZooKeeper ensemble leader (srvr: Mode: leader)', this.timeoutMs, 100);
  }

  /** Every live node's /api/cluster (or its error), for a failure's report. */
  async describe(): Promise<string> {
    const views = await Promise.all(this.live().map(async (n) => {
      const c = await n.cluster().catch((err: Error) => err.message);
      return typeof c === 'string' ? `${n.url}: ${c}` : `${n.url}: epoch ${c.epoch} head ${c.head} tail ${c.tail} nodes ${c.nodes.map((x) => x.url).join(' ')} node ${JSON.stringify(c.node)}`;
    }));
    return views.join('\n');
  }

  private resume(pid: number): void {
    signal(pid, 'SIGCONT', this.stopped.get(pid) ?? false);
    this.stopped.delete(pid);
  }

  /**
   * Every live node at one version twice in a row (nothing in flight), then each one's history:
   * call once the workers have stopped.
   */
  async histories(): Promise<ReplicaHistory[]> {
    let last = '';
    return waitFor(async () => {
      const hs = await Promise.all(this.live().map(async (n) => ({ node: n.url, ...(await n.admin<Omit<ReplicaHistory, 'node'>>('GET', '/api/admin/chain/history')) })));
      const key = hs.map((h) => h.version).join(',');
      const stable = hs.length > 0 && hs.every((h) => h.version === hs[0]!.version) && key === last;
      last = key;
      return stable ? hs : undefined;
    }, 'the replicas to reach one version', this.timeoutMs, 500);
  }

  /** Continues anything still stopped and SIGKILLs every node (ZooKeeper is the caller's). */
  async stop(): Promise<void> {
    for (const pid of [...this.stopped.keys()]) this.resume(pid);
    for (const n of this.nodes) await n.kill('SIGKILL').catch(() => {});
  }
}

/** Median and 99th percentile (nearest rank) of `values`; NaN for none. */
export function percentiles(values: readonly number[]): { n: number; median: number; p99: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] ?? NaN;
  return { n: s.length, median: at(0.5), p99: at(0.99), max: s.at(-1) ?? NaN };
}
