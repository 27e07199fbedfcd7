/**
 * Tools for the chain tests: real `tabswarm node` processes against a real ZooKeeper, killed by
 * SIGKILL, and the checks every chain test ends with (no acknowledged update lost, every update
 * applied exactly once, surviving replicas bitwise identical).
 */
import assert from 'node:assert/strict';
import type { ClusterInfo } from '../shared/api.ts';
import { joinUrl, spawnCli, until, workerLines, type Proc } from './helpers.ts';

export const SECRET = 'chain-test-secret-0123456789';
export const ADMIN = 'chain-test-admin-0123456789';

export interface NodeProc extends Proc {
  readonly url: string;
  cluster(): Promise<ClusterInfo>;
  admin<T>(method: 'GET' | 'POST', path: string): Promise<T>;
  alive(): boolean;
}

export interface History {
  start: number;
  version: number;
  digest: string;
  entries: [number, number][];
}

/** Starts `tabswarm node` and waits for its join URL (it is then registered in the chain). */
export async function startNode(zk: string, cluster: string, args: string[] = []): Promise<NodeProc> {
  const proc = spawnCli(['node', '--zk', zk, '--cluster', cluster, '--secret', SECRET, '--admin-token', ADMIN, '--log-level', 'warn', '--eval-every', '0', ...args]);
  const url = await joinUrl(proc);
  return {
    ...proc,
    url,
    alive: () => proc.child.exitCode === null && proc.child.signalCode === null,
    async cluster() {
      const res = await fetch(new URL('/api/cluster', url), { signal: AbortSignal.timeout(3000) });
      if (!res.ok) throw new Error(`GET /api/cluster: ${res.status}`);
      return (await res.json()) as ClusterInfo;
    },
    async admin<T>(method: 'GET' | 'POST', path: string) {
      const res = await fetch(new URL(path, url), { method, headers: { authorization: `Bearer ${ADMIN}` }, signal: AbortSignal.timeout(20000) });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    },
  };
}

/** The chain as the live nodes agree on it: the highest epoch any of them reports. */
export async function currentChain(nodes: readonly NodeProc[]): Promise<ClusterInfo> {
  const infos = await Promise.all(nodes.filter((n) => n.alive()).map((n) => n.cluster().catch(() => undefined)));
  const best = infos.filter((c): c is ClusterInfo => !!c).sort((a, b) => b.epoch - a.epoch)[0];
  if (!best) throw new Error('no node answers /api/cluster');
  return best;
}

export function byUrl(nodes: readonly NodeProc[], url: string | null): NodeProc {
  const n = nodes.find((x) => x.url === url && x.alive());
  if (!n) throw new Error(`no live node at ${url}`);
  return n;
}

/** The version the chain's current head has applied. */
export async function headVersion(nodes: readonly NodeProc[]): Promise<number> {
  const chain = await currentChain(nodes);
  return (await byUrl(nodes, chain.head).cluster()).node.version;
}

/**
 * Waits until the live nodes agree on one chain of `size` nodes, every one of them has state,
 * and every one reports that configuration; returns it.
 */
export async function settled(nodes: readonly NodeProc[], size: number, timeoutMs = 60000): Promise<ClusterInfo> {
  return until(async () => {
    const live = nodes.filter((n) => n.alive());
    const infos = await Promise.all(live.map((n) => n.cluster()));
    const epoch = infos[0]!.epoch;
    if (infos.some((c) => c.epoch !== epoch || c.node.fresh) || infos[0]!.nodes.length !== size || live.length !== size) return undefined;
    return infos[0];
  }, `a settled chain of ${size}`, timeoutMs, 200);
}

/** Waits until every live node is at the same version twice in a row (no update in flight). */
export async function quiet(nodes: readonly NodeProc[]): Promise<History[]> {
  let last = '';
  return until(async () => {
    const hs = await Promise.all(nodes.filter((n) => n.alive()).map((n) => n.admin<History>('GET', '/api/admin/chain/history')));
    const key = hs.map((h) => h.version).join(',');
    const same = hs.every((h) => h.version === hs[0]!.version);
    const stable = same && key === last;
    last = key;
    return stable ? hs : undefined;
  }, 'the replicas to reach one version', 60000, 500);
}

/** [workerId, seq, version, duplicate] of every ack a `tabswarm worker --log-acks` printed. */
export function nodeWorkerAcks(proc: Proc): [number, number, number, number][] {
  const out: [number, number, number, number][] = [];
  for (const line of workerLines(proc)) {
    const acks = line.acks as [number, number, number][] | undefined;
    if (!acks) continue;
    for (const [seq, version, dup] of acks) out.push([line.worker as number, seq, version, dup]);
  }
  return out;
}

/**
 * The chain's promise, checked on quiet replicas: all at one version with one digest (bitwise
 * equal weights and velocity), one history, every acknowledged (worker, seq) applied exactly
 * once in it, and each fresh ack naming the version its update made.
 */
export function assertReplicasAgree(histories: History[], acks: [number, number, number, number][]): void {
  const [first, ...rest] = [...histories].sort((a, b) => a.start - b.start);
  assert.ok(first, 'at least one replica');
  for (const h of rest) {
    assert.equal(h.version, first.version, 'replicas at one version');
    assert.equal(h.digest, first.digest, 'replica weights and velocity bitwise identical');
    assert.deepEqual(h.entries, first.entries.slice(h.start - first.start), 'replicas applied the same updates in the same order');
  }
  const full = first;
  assert.equal(full.start, 1, 'the history goes back to the first update');
  assert.equal(full.entries.length, full.version, 'one history entry per version');
  const seen = new Map<string, number[]>();
  full.entries.forEach(([w, s], i) => {
    const key = `${w}:${s}`;
    seen.set(key, [...(seen.get(key) ?? []), i + full.start]);
  });
  for (const [w, s, version, dup] of acks) {
    const at = seen.get(`${w}:${s}`);
    assert.ok(at, `acknowledged push (worker ${w}, seq ${s}, ack version ${version}) is applied on the replicas`);
    assert.equal(at.length, 1, `push (worker ${w}, seq ${s}) applied exactly once (at versions ${at.join(', ')})`);
    if (!dup) assert.equal(at[0], version, `push (worker ${w}, seq ${s}) made the version its ack named`);
  }
}
