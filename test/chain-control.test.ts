/**
 * Replicated control (issue 13, docs/chain.md "Replicated control"): an admin change of lr and
 * rule is made at the head only (another node answers CHAIN_NOT_HEAD) and travels down the chain
 * with the updates, so every replica applies each update under the lr and rule the head used.
 * Real ZooKeeper, 3 sync `tabswarm node` processes with momentum (so the change shows in the
 * velocity too), 2 Node workers; lr and rule changed mid-run; a 4th node joins after the change.
 * After quiescence every node holds the same state digest and the same control block, and
 * every acknowledged push is applied exactly once at the version its ack named.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { ADMIN, SECRET, assertReplicasAgree, byUrl, headVersion, nodeWorkerAcks, quiet, settled, startNode, type NodeProc } from './chain-tools.ts';
import { exitWithin, spawnCli, until, type Proc } from './helpers.ts';

let zk: ZooKeeperCluster;
const nodes: NodeProc[] = [];
const workers: Proc[] = [];

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
});

after(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

interface Control {
  version: number;
  rule: number;
  lr: number;
}

const control = async (n: NodeProc): Promise<Control> => ((await (await fetch(new URL('/api/status', n.url))).json()) as { strategy: { control: Control } }).strategy.control;

async function setRun(n: NodeProc, change: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(new URL('/api/admin/run', n.url), { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(change), signal: AbortSignal.timeout(10000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('an lr and rule change made at the head reaches every replica in order with the updates', { timeout: 150_000 }, async () => {
  const args = ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync', '--momentum', '0.9', '--lr', '0.05'];
  for (let i = 0; i < 3; i++) nodes.push(await startNode(zk.connectionString, 'control', args));
  const chain = await settled(nodes, 3);
  const head = byUrl(nodes, chain.head!);
  const other = nodes.find((n) => n !== head)!;
  for (let i = 0; i < 2; i++) workers.push(spawnCli(['worker', '--url', head.url, '--log-acks', '--seed', String(i + 1)]));
  await until(async () => (await headVersion(nodes)) >= 15, 'training before the change', 60000, 200);

  // Not the head: refused, nothing changed anywhere.
  const refused = await setRun(other, { lr: 0.01 });
  assert.equal(refused.status, 421, JSON.stringify(refused.body));
  assert.equal(refused.body.code, 'CHAIN_NOT_HEAD');
  assert.equal((await control(other)).version, 0);

  // At the head, mid-run: an lr whose float32 is not itself (it must travel exactly), then the rule.
  const lr = 0.0123456789;
  const changed = await setRun(head, { lr });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  assert.equal(changed.body.lr, lr);
  const v1 = await headVersion(nodes);
  await until(async () => (await headVersion(nodes)) >= v1 + 10, 'updates under the new lr', 60000, 200);
  assert.equal((await setRun(head, { rule: 'staleness' })).status, 200);
  const v2 = await headVersion(nodes);
  await until(async () => (await headVersion(nodes)) >= v2 + 10, 'updates under the new rule', 60000, 200);

  // A node that joins after the changes takes them with its state transfer.
  nodes.push(await startNode(zk.connectionString, 'control', args));
  await settled(nodes, 4);
  const v3 = await headVersion(nodes);
  await until(async () => (await headVersion(nodes)) >= v3 + 10, 'updates with the new node in the chain', 60000, 200);

  for (const w of workers) await w.kill('SIGTERM');
  const histories = await quiet(nodes);
  assertReplicasAgree(histories, workers.flatMap(nodeWorkerAcks));
  const controls = await Promise.all(nodes.map(control));
  for (const c of controls) assert.deepEqual(c, { version: 2, rule: controls[0]!.rule, lr }, 'every node holds the head\'s control block');
  // Each node's console reports the rule its store applies, the replicas' included.
  for (const n of nodes) assert.deepEqual((await n.admin<{ run: { rule: string; lr: number } }>('GET', '/api/admin/console')).run, { ...(await n.admin<{ run: object }>('GET', '/api/admin/console')).run, rule: 'staleness', lr });
});

test('the cluster\'s run id: fixed in ZooKeeper when it was created, taken by every node, a node with another --run-id refused', { timeout: 60_000 }, async () => {
  assert.ok(nodes.length >= 4, 'runs after the control test, on its cluster');
  // One run, one signing key: every node signs with the key derived from the cluster's run id.
  const keys = await Promise.all(nodes.map(async (n) => ((await (await fetch(new URL('/api/model', n.url))).json()) as { weightsKey: { publicKey: string } }).weightsKey.publicKey));
  assert.equal(new Set(keys).size, 1, 'every node of the cluster signs with one key');
  const other = spawnCli(['node', '--zk', zk.connectionString, '--cluster', 'control', '--secret', SECRET, '--admin-token', ADMIN, '--log-level', 'warn', '--eval-every', '0', '--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync', '--run-id', 'some-other-run']);
  workers.push(other);
  assert.ok(await exitWithin(other.child, 30_000), 'a node of another run exits');
  assert.notEqual(other.child.exitCode, 0);
  assert.match(other.output(), /CHAIN_CONFIG_MISMATCH/, other.output());
  assert.match(other.output(), /run/);
});
