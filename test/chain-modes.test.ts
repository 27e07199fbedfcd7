/**
 * The other replication modes, each on a real chain of 2 with one Node worker. What was lost is
 * derived from the new head's history (/api/admin/chain/history: the (worker, seq) that made
 * each version) against every ack the worker printed, never from versions read at a moment:
 * - async: acks do not wait for the tail; a SIGKILL of the head loses at most the async window
 *   of acknowledged pushes (the newest ones), and the chain carries on from what the tail held;
 * - snapshot: the tail only ever holds whole-state snapshots (versions that are multiples of K);
 *   after the head dies the new head resumes exactly at the last snapshot the tail received,
 *   and the acknowledged pushes after it are the ones lost.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { byUrl, nodeWorkerAcks, settled, startNode, type History, type NodeProc } from './chain-tools.ts';
import { spawnCli, until, type Proc } from './helpers.ts';

let zk: ZooKeeperCluster | undefined;
const procs: (NodeProc | Proc)[] = [];
after(async () => {
  for (const p of procs) await p.kill('SIGKILL');
  await zk?.stop();
});

async function chainOf2(cluster: string, args: string[]): Promise<{ nodes: NodeProc[]; worker: Proc }> {
  zk ??= await startZooKeeper({ servers: 1 });
  const nodes: NodeProc[] = [];
  for (let i = 0; i < 2; i++) {
    const n = await startNode(zk.connectionString, cluster, ['--model', 'mnist-logreg', '--dataset', 'mnist', ...args]);
    nodes.push(n);
    procs.push(n);
  }
  await settled(nodes, 2);
  const worker = spawnCli(['worker', '--url', nodes[0]!.url, '--log-acks']);
  procs.push(worker);
  return { nodes, worker };
}

/** (worker, seq) -> the version it made, on `node`'s history, which must go back to version 1. */
async function appliedAt(node: NodeProc): Promise<{ history: History; at: Map<string, number> }> {
  const history = await node.admin<History>('GET', '/api/admin/chain/history');
  assert.equal(history.start, 1, 'the history goes back to the first update');
  assert.equal(history.entries.length, history.version, 'one history entry per version');
  const at = new Map<string, number>();
  history.entries.forEach(([w, s], i) => {
    assert.ok(!at.has(`${w}:${s}`), `push (worker ${w}, seq ${s}) applied once`);
    at.set(`${w}:${s}`, history.start + i);
  });
  return { history, at };
}

test('async: a head failure loses at most the async window of acknowledged pushes, the newest ones', { timeout: 180000 }, async () => {
  const WINDOW = 8;
  const { nodes, worker } = await chainOf2('modes-async', ['--replication', 'async', '--async-window', String(WINDOW)]);
  const chain = await settled(nodes, 2);
  const head = byUrl(nodes, chain.head);
  const tail = byUrl(nodes, chain.tail);
  await until(async () => (await tail.cluster()).node.version >= 100, 'the tail to apply 100 updates', 90000, 200);
  await head.kill('SIGKILL');
  const after = await until(async () => {
    const c = await tail.cluster();
    return c.nodes.length === 1 && c.head === tail.url ? c : undefined;
  }, 'the tail to become the head', 30000, 50);
  await until(async () => (await tail.cluster()).node.version >= after.node.version + 30, 'training to go on under the new head', 60000, 200);
  // Stopped, the worker prints its last acks; none after this can be missing from the count.
  await worker.kill('SIGTERM');
  const acks = nodeWorkerAcks(worker);
  const { at } = await appliedAt(tail);
  assert.ok(acks.length >= 130, `the worker saw ${acks.length} acks`);
  const lost = acks.map((a, i) => ({ a, i })).filter(({ a: [w, s] }) => !at.has(`${w}:${s}`));
  console.log(`async: ${acks.length} acks, ${lost.length} acknowledged pushes lost: ${lost.map(({ a }) => `seq ${a[1]}@v${a[2]}`).join(' ')}`);
  assert.ok(lost.length <= WINDOW, `${lost.length} acknowledged pushes lost > window ${WINDOW}`);
  // The lost ones are the last the old head acked: one run in ack order, every one fresh.
  if (lost.length) {
    assert.equal(lost.at(-1)!.i - lost[0]!.i + 1, lost.length, 'the lost acks are consecutive');
    assert.ok(lost.every(({ a }) => a[3] === 0), 'a lost ack is a fresh one');
  }
  for (const [w, s, v, dup] of acks) if (!dup && at.has(`${w}:${s}`)) assert.equal(at.get(`${w}:${s}`), v, `push (worker ${w}, seq ${s}) made the version its ack named`);
});

test('snapshot: the tail holds only whole-state snapshots every K updates; the new head resumes exactly at the last one', { timeout: 180000 }, async () => {
  const K = 20;
  const { nodes, worker } = await chainOf2('modes-snapshot', ['--replication', 'snapshot', '--snapshot-every', String(K)]);
  const chain = await settled(nodes, 2);
  const head = byUrl(nodes, chain.head);
  const tail = byUrl(nodes, chain.tail);
  const seen = new Set<number>();
  await until(async () => {
    const [h, t] = await Promise.all([head.cluster(), tail.cluster()]);
    seen.add(t.node.version);
    return h.node.version >= 5 * K && t.node.version >= 3 * K;
  }, 'snapshots to reach the tail', 90000, 50);
  for (const v of seen) assert.equal(v % K, 0, `the tail holds version ${v}, not a snapshot (multiple of ${K})`);

  // With the worker stopped the head's version stands still, so the last snapshot is known
  // (the last multiple of K at or below it) rather than read at some moment before a kill.
  await worker.kill('SIGTERM');
  const acks = nodeWorkerAcks(worker);
  let last = -1;
  const headAt = await until(async () => {
    const v = (await head.cluster()).node.version;
    const still = v === last;
    last = v;
    return still ? v : undefined;
  }, 'the head to stand still', 30000, 500);
  const snapshot = Math.floor(headAt / K) * K;
  await until(async () => (await tail.cluster()).node.version === snapshot, `the tail to hold the snapshot at ${snapshot} (head at ${headAt})`, 30000, 100);
  const old = await appliedAt(head);
  await head.kill('SIGKILL');
  const after = await until(async () => {
    const c = await tail.cluster();
    return c.nodes.length === 1 && c.head === tail.url ? c : undefined;
  }, 'the tail to become the head', 30000, 50);
  assert.equal(after.node.version, snapshot, 'the new head resumes exactly at the last snapshot');
  const resumed = await appliedAt(tail);
  assert.deepEqual(resumed.history.entries, old.history.entries.slice(0, snapshot), 'the snapshot is the old head\'s state at that version');
  const lost = acks.filter(([w, s]) => !resumed.at.has(`${w}:${s}`));
  const made = new Map(acks.filter(([, , , dup]) => !dup).map(([w, s, v]) => [`${w}:${s}`, v]));
  const expected = acks.filter(([w, s]) => made.get(`${w}:${s}`)! > snapshot);
  assert.ok(expected.every(([, , v, dup]) => dup || v <= headAt), 'the old head acked nothing beyond what it held');
  assert.deepEqual(lost, expected, 'the acknowledged pushes lost are exactly those after the snapshot');
  assert.ok(lost.length < K, `${lost.length} lost, fewer than K`);
  console.log(`snapshot: head at ${headAt}, resumed at the snapshot ${snapshot}; ${lost.length} acknowledged pushes lost`);

  // Training resumes from there: a new worker's pushes follow the snapshot.
  const next = spawnCli(['worker', '--url', tail.url, '--log-acks']);
  procs.push(next);
  await until(async () => (await tail.cluster()).node.version >= snapshot + 30, 'training to go on from the snapshot', 60000, 200);
  const now = await appliedAt(tail);
  assert.deepEqual(now.history.entries.slice(0, snapshot), resumed.history.entries, 'what the snapshot held stays');
});
