/**
 * Chain faults around ZooKeeper, on one real cluster (3 sync nodes, one Node worker):
 * - the head's ZooKeeper session is expired (a second client opens the head's session with its
 *   id and password and closes it): the old head refuses writes with a clear, catalogued error,
 *   nothing sent to it is applied, and it rejoins at the tail;
 * - the node-to-node link refuses a foreign secret, a node that is not the predecessor, and a
 *   frame from an old epoch (a partitioned old head);
 * - the ZooKeeper server is SIGKILLed and restarted during training: the cluster recovers
 *   without operator action.
 * The cluster runs with strict reads: the worker pulls its weights from the tail.
 * Every test ends with the chain's promise: replicas bitwise identical, every acked push
 * applied exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { encodeForward } from '../server/chain/frames.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { MsgType, encodeFrame } from '../shared/protocol.ts';
import { SECRET, assertReplicasAgree, type History, byUrl, currentChain, nodeWorkerAcks, quiet, settled, startNode, type NodeProc, headVersion } from './chain-tools.ts';
import { spawnCli, until, type Proc } from './helpers.ts';
import { dialLink } from './link-tools.ts';

const NODE_ARGS = ['--model', 'mnist-logreg', '--dataset', 'mnist', '--replication', 'sync', '--reads', 'strict'];
const CLUSTER = 'chain-faults';

let zk: ZooKeeperCluster;
const nodes: NodeProc[] = [];
let worker: Proc;

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
  for (let i = 0; i < 3; i++) nodes.push(await startNode(zk.connectionString, CLUSTER, NODE_ARGS));
  worker = spawnCli(['worker', '--url', nodes[0]!.url, '--log-acks']);
});

after(async () => {
  await worker?.kill('SIGKILL');
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

/** Every live node's history (the worker keeps training: not necessarily at one version). */
function histories(): Promise<History[]> {
  return Promise.all(nodes.filter((n) => n.alive()).map((n) => n.admin<History>('GET', '/api/admin/chain/history')));
}

/** Closes with code and reason, or undefined if the socket stayed open `ms`. */
function closed(ws: WebSocket, ms = 10000): Promise<{ code: number; reason: string } | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString() });
    });
  });
}

test('an expired head refuses writes with CHAIN_FENCED / CHAIN_NOT_HEAD, applies nothing sent to it, and rejoins at the tail', { timeout: 180000 }, async () => {
  const chain = await settled(nodes, 3);
  await until(async () => (await headVersion(nodes)) >= 30, 'the head to apply 30 updates', 90000, 200);
  const head = byUrl(nodes, chain.head);

  // A session of our own on the head, opened while it is head.
  const join = await (await fetch(new URL('/api/join', head.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json() as { workerId: number; token: string; layoutHash: number; layoutSize: number };
  const ws = new WebSocket(`${head.url.replace('http', 'ws')}ws?token=${join.token}`);
  await new Promise((r) => ws.once('message', r)); // the hello

  const expired = await head.admin<{ expired: string }>('POST', '/api/admin/zk/expire');
  assert.match(expired.expired, /^[0-9a-f]+$/);

  // At once: a push to the old head is refused with a catalogued error, not lost silently.
  const seq = 7;
  const grad = new Float32Array(join.layoutSize).fill(0.001);
  const outcome = closed(ws);
  ws.send(encodeFrame({ type: MsgType.PUSH, layoutHash: join.layoutHash, modelVersion: 0, workerId: join.workerId, seq, count: 1 }, grad));
  const close = await outcome;
  assert.ok(close, 'the old head closed the socket rather than acknowledging');
  assert.ok(close.code === 4021 || close.code === 4020, `close code ${close.code} (${close.reason})`);
  assert.match(close.reason, /^CHAIN_(FENCED|NOT_HEAD): /);
  const rejoin = await fetch(new URL('/api/join', head.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const body = await rejoin.json() as { code: string; retryable: boolean };
  assert.ok(body.code === 'CHAIN_FENCED' || body.code === 'CHAIN_NOT_HEAD', `join at the old head: ${rejoin.status} ${body.code}`);
  assert.equal(body.retryable, true);

  // The chain reconfigures: a new head, the old one back at the tail with a new registration.
  const after = await until(async () => {
    const c = await settled(nodes, 3, 5000).catch(() => undefined);
    return c && c.epoch > chain.epoch && c.head !== head.url && c.tail === head.url ? c : undefined;
  }, 'the expired head to rejoin at the tail', 60000, 250);
  assert.notEqual(after.head, head.url);
  const v0 = await headVersion(nodes);
  await until(async () => (await headVersion(nodes)) >= v0 + 30, 'training to go on under the new head', 60000, 200);

  for (const h of await histories()) assert.ok(!h.entries.some(([w, s]) => w === join.workerId && s === seq), 'the push sent to the fenced head was applied nowhere');
});

test('the chain link refuses a foreign secret, a node that is not the predecessor, and an old epoch', { timeout: 60000 }, async () => {
  const chain = await settled(nodes, 3);
  const tail = byUrl(nodes, chain.tail);
  const middle = chain.nodes[1]!;
  const open = (from: string, epoch: number, secret: string) => dialLink(tail.url, { from, to: chain.nodes.at(-1)!.name, epoch, secret });
  const refusal = async (p: ReturnType<typeof open>) => {
    const r = await p;
    if (r.ok) r.socket.terminate();
    return r.ok ? undefined : r;
  };

  const foreign = await refusal(open(middle.name, chain.epoch, 'another-clusters-secret-000'));
  assert.equal(foreign?.code, 4490);
  assert.match(foreign!.reason, /^CHAIN_BAD_LINK: .*proof does not verify/);

  const notPred = await refusal(open(chain.nodes[0]!.name, chain.epoch, SECRET));
  assert.equal(notPred?.code, 4490);
  assert.match(notPred!.reason, /not this node's predecessor/);

  const stale = await refusal(open(middle.name, chain.epoch - 1, SECRET));
  assert.equal(stale?.code, 4023);
  assert.match(stale!.reason, /^CHAIN_STALE_EPOCH: /);

  // A frame from an old epoch on a link: refused, never applied. (A real predecessor replaces
  // this link right after, and the chain carries on.)
  const before = await tail.admin<{ version: number }>('GET', '/api/admin/chain/history');
  const layout = await (await fetch(new URL('/api/model', tail.url))).json() as { layout: { hash: number; size: number } };
  const link = await open(middle.name, chain.epoch, SECRET);
  assert.ok(link.ok, 'a link with the cluster\'s secret from the predecessor\'s name');
  assert.ok(link.hello.version >= before.version);
  const outcome = closed(link.socket);
  link.socket.send(link.auth.seal(encodeForward(layout.layout.hash, { control: { version: 0, rule: 0, lr: 0.1 }, epoch: chain.epoch - 1, version: link.hello.version + 1, workerId: 1, seq: 1, count: 1, baseVersion: 0, flags: 0, grad: new Float32Array(layout.layout.size) })));
  const refused = await outcome;
  assert.equal(refused?.code, 4023, refused?.reason);
  await settled(nodes, 3);
  for (const h of await histories()) assert.ok(!h.entries.some(([w, s]) => w === 1 && s === 1), 'the stale frame was applied nowhere');
});

test('strict reads: the tail serves weights to a worker id tag, refuses a bad one, and the worker reads there', { timeout: 60000 }, async () => {
  const chain = await settled(nodes, 3);
  assert.equal(chain.reads, 'strict');
  const head = byUrl(nodes, chain.head);
  const tail = byUrl(nodes, chain.tail);
  const join = await (await fetch(new URL('/api/join', head.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json() as { workerId: number; idTag: string };
  const good = await fetch(new URL('/api/weights', tail.url), { headers: { authorization: `Worker ${join.workerId}:${join.idTag}` } });
  assert.equal(good.status, 200);
  const bytes = new Uint8Array(await good.arrayBuffer());
  assert.equal(bytes[5], MsgType.WEIGHTS);
  const forged = await fetch(new URL('/api/weights', tail.url), { headers: { authorization: `Worker ${join.workerId}:${'0'.repeat(64)}` } });
  assert.equal(forged.status, 401);
  assert.equal((await forged.json() as { code: string }).code, 'PS_NO_SESSION');
  // The tail has no worker sessions: weights it sent went to strict reads.
  const sent = async () => Number(/^tabswarm_weights_bytes_sent_total (\d+)/m.exec(await (await fetch(new URL('/metrics', tail.url))).text())?.[1] ?? 0);
  const before = await sent();
  await until(async () => (await sent()) > before + 10 * bytes.byteLength, 'the worker to read weights from the tail', 30000, 200);
});

test('a ZooKeeper server restart during training: the cluster recovers by itself', { timeout: 180000 }, async () => {
  const before = await settled(nodes, 3);
  const v0 = await headVersion(nodes);
  await zk.restartServer(1, 'SIGKILL');
  await until(async () => (await headVersion(nodes)) >= v0 + 40, 'training to go on after the ZooKeeper restart', 90000, 250);
  const after = await settled(nodes, 3, 90000);
  assert.ok(after.epoch >= before.epoch);

  await worker.kill('SIGTERM');
  const histories = await quiet(nodes);
  const acks = nodeWorkerAcks(worker);
  assert.ok(acks.length >= 50, `${acks.length} acks`);
  assertReplicasAgree(histories, acks);
});
