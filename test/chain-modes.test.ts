/**
 * The other replication modes, each on a real chain of 2 with one Node worker:
 * - async: acks do not wait for the tail; a SIGKILL of the head loses at most the async window
 *   of acknowledged updates, and the chain carries on from what the tail held;
 * - snapshot: the tail only ever holds whole-state snapshots (versions that are multiples of K),
 *   and after the head dies training resumes from the last one.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { byUrl, nodeWorkerAcks, settled, startNode, type NodeProc } from './chain-tools.ts';
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

test('async: a head failure loses at most the async window of acknowledged updates', { timeout: 180000 }, async () => {
  const WINDOW = 8;
  const { nodes, worker } = await chainOf2('modes-async', ['--replication', 'async', '--async-window', String(WINDOW)]);
  const chain = await settled(nodes, 2);
  const head = byUrl(nodes, chain.head);
  const tail = byUrl(nodes, chain.tail);
  await until(async () => (await tail.cluster()).node.version >= 100, 'the tail to apply 100 updates', 90000, 200);
  const mark = worker.output().length;
  await head.kill('SIGKILL');
  // The worker prints a status line when it notices; every ack from the old head precedes it.
  const noticed = await until(() => {
    const m = /"state":"(connecting|buffering|joining)"/.exec(worker.output().slice(mark));
    return m ? worker.output().lastIndexOf('\n', mark + m.index) + 1 : undefined;
  }, 'the worker to notice the dead head', 30000, 20);
  const ackedBefore = Math.max(...nodeWorkerAcks({ ...worker, output: () => worker.output().slice(0, noticed) }).map(([, , v]) => v));
  const after = await until(async () => {
    const c = await tail.cluster();
    return c.nodes.length === 1 && c.head === tail.url ? c : undefined;
  }, 'the tail to become the head', 30000, 50);
  const holds = after.node.version;
  assert.ok(ackedBefore - holds <= WINDOW, `acked up to ${ackedBefore}, the new head holds ${holds}: lost ${ackedBefore - holds} > window ${WINDOW}`);
  await until(async () => (await tail.cluster()).node.version >= holds + 30, 'training to go on under the new head', 60000, 200);
});

test('snapshot: the tail holds only whole-state snapshots every K updates, and training resumes from the last one', { timeout: 180000 }, async () => {
  const K = 20;
  const { nodes } = await chainOf2('modes-snapshot', ['--replication', 'snapshot', '--snapshot-every', String(K)]);
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
  const [before, snapshot] = await Promise.all([head.cluster(), tail.cluster()]);
  await head.kill('SIGKILL');
  const held = snapshot.node.version;
  assert.equal(held % K, 0);
  const lost = before.node.version - held;
  assert.ok(lost >= 0 && lost <= K + 10, `the head was at ${before.node.version}, the tail held the snapshot at ${held}: ${lost} updates lost, at most about K`);
  await until(async () => {
    const c = await tail.cluster();
    return c.nodes.length === 1 && c.head === tail.url ? c : undefined;
  }, 'the tail to become the head', 30000, 50);
  await until(async () => (await tail.cluster()).node.version >= held + 30, 'training to go on from the snapshot', 60000, 200);
});
