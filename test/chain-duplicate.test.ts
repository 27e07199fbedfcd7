/**
 * docs/chain.md: "A push the head recognises as already applied (a worker's retry) is
 * acknowledged with the version of its first apply only once that version is as safe as a fresh
 * ack (`durable`)." On a real two-node sync chain: the tail is stopped (SIGSTOP: its sockets stay
 * open, it answers nothing), a push is applied at the head and waits for the tail; the worker's
 * retry of that push is recognised as a duplicate and must wait too, since acking it at once
 * would acknowledge an update only the head holds. Once the tail runs again both are
 * acknowledged, with the same version; a retry after that is acknowledged at once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { JoinResponse } from '../shared/api.ts';
import { Flag, MsgType, decodeFrame, encodeFrame } from '../shared/protocol.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { byUrl, settled, startNode, type NodeProc } from './chain-tools.ts';
import { killGroup, until } from './helpers.ts';

let zk: ZooKeeperCluster;
const nodes: NodeProc[] = [];
let stopped: number | undefined;

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
});

after(async () => {
  if (stopped) killGroup(stopped, 'SIGCONT');
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

async function metric(node: NodeProc, name: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', node.url), { signal: AbortSignal.timeout(5000) })).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
}

test('sync chain: a retried push is acknowledged with its first version only once the tail holds it', { timeout: 180000 }, async () => {
  // A long session timeout: the tail is stopped for a few seconds and must stay a member.
  for (let i = 0; i < 2; i++) {
    nodes.push(await startNode(zk.connectionString, 'dup', ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync', '--zk-session-ms', '30000']));
  }
  const chain = await settled(nodes, 2);
  const head = byUrl(nodes, chain.head!);
  const tail = nodes.find((n) => n !== head)!;

  const j = (await (await fetch(new URL('/api/join', head.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as JoinResponse;
  const frame = Buffer.from(encodeFrame({ type: MsgType.PUSH, layoutHash: j.layoutHash, modelVersion: 0, workerId: j.workerId, seq: 1, count: 1 }, new Float32Array(j.layoutSize).fill(0.01)));
  const push = () =>
    fetch(new URL('/api/push', head.url), { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${j.token}` }, body: frame, signal: AbortSignal.timeout(120000) }).then(async (res) => {
      assert.equal(res.status, 200);
      return decodeFrame(new Uint8Array(await res.arrayBuffer()), { layoutHash: j.layoutHash, layoutSize: j.layoutSize });
    });
  const applied = () => metric(head, 'tabswarm_updates_applied_total');
  const duplicates = () => metric(head, 'tabswarm_updates_duplicate_total');
  const appliedBefore = await applied();

  killGroup(tail.child.pid!, 'SIGSTOP');
  stopped = tail.child.pid!;
  const answered: string[] = [];
  const first = push().then((f) => (answered.push('first'), f));
  await until(async () => (await applied()) === appliedBefore + 1, 'the head to apply the push');
  const retry = push().then((f) => (answered.push('retry'), f));
  await until(async () => (await duplicates()) === 1, 'the head to recognise the retry as a duplicate');
  // One more round trip to the head, so an ack sent at once would have arrived by now.
  await head.cluster();
  assert.deepEqual(answered, [], 'neither the push nor its retry is acknowledged while only the head holds it');

  killGroup(stopped, 'SIGCONT');
  stopped = undefined;
  const [a, b] = await Promise.all([first, retry]);
  assert.equal(a.type, MsgType.ACK);
  assert.equal(a.flags & Flag.DUPLICATE, 0, 'the first ack is a fresh one');
  assert.equal(b.flags & Flag.DUPLICATE, Flag.DUPLICATE, 'the retry is acked as a duplicate');
  assert.equal(b.modelVersion, a.modelVersion, "the retry carries the first apply's version");

  // Now durable: another retry is answered at once, with the same version, and nothing is applied again.
  const c = await push();
  assert.equal(c.flags & Flag.DUPLICATE, Flag.DUPLICATE);
  assert.equal(c.modelVersion, a.modelVersion);
  assert.equal(await applied(), appliedBefore + 1, 'applied once');
  const versions = await Promise.all(nodes.map(async (n) => (await n.cluster()).node.version));
  assert.deepEqual(versions, [a.modelVersion, a.modelVersion], 'head and tail hold the acknowledged version');
});
