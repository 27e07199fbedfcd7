/**
 * Two claims of docs/chain.md, on a real ZooKeeper:
 * - "In async and snapshot modes a node also refuses writes as soon as ZooKeeper has been silent
 *   for 2/3 of the session timeout, before ZooKeeper can have expired it ... In sync mode a short
 *   ZooKeeper hiccup does not stop writes." The ZooKeeper JVM is stopped (SIGSTOP: silent, its
 *   sockets open) under one single-node cluster of each mode; the async and snapshot nodes
 *   refuse writes (CHAIN_FENCED) after at least 1/3 and before the whole session timeout (the
 *   client hears from ZooKeeper every third of it, so silence starts up to 1/3 before the stop),
 *   the sync node stays writable; after SIGCONT all take writes again in the same session.
 * - "A node started with anything else is refused with CHAIN_CONFIG_MISMATCH": other model,
 *   other replication mode, other applied-record bound, other secret; the node exits with the catalogued message.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { ADMIN, SECRET, settled, startNode, type NodeProc } from './chain-tools.ts';
import { spawnCli, until, type Proc } from './helpers.ts';

const SESSION_MS = 6000;
let zk: ZooKeeperCluster;
let stopped: number | undefined;
const procs: (NodeProc | Proc)[] = [];

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
});

after(async () => {
  if (stopped) process.kill(stopped, 'SIGCONT');
  for (const p of procs) await p.kill('SIGKILL');
  await zk?.stop();
});

/** POST /api/join: the write every worker starts with. */
async function join(node: NodeProc): Promise<{ status: number; code?: string }> {
  const res = await fetch(new URL('/api/join', node.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(5000) });
  return { status: res.status, code: ((await res.json()) as { code?: string }).code };
}

test('ZooKeeper silent: async and snapshot heads refuse writes before the session timeout, a sync head does not', { timeout: 180000 }, async () => {
  const modes = ['async', 'snapshot', 'sync'] as const;
  const byMode = {} as Record<(typeof modes)[number], NodeProc>;
  for (const mode of modes) {
    const node = await startNode(zk.connectionString, `fencing-${mode}`, ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', mode, '--zk-session-ms', String(SESSION_MS)]);
    procs.push(node);
    await settled([node], 1);
    assert.equal((await join(node)).status, 200, `${mode}: writable before`);
    byMode[mode] = node;
  }
  const pid = zk.server(1).pid!;
  const t0 = Date.now();
  process.kill(pid, 'SIGSTOP');
  stopped = pid;
  const refusedAfter: Record<string, number> = {};
  try {
    await until(async () => {
      for (const mode of ['async', 'snapshot'] as const) {
        if (refusedAfter[mode] === undefined && !(await byMode[mode].cluster()).node.writable) refusedAfter[mode] = Date.now() - t0;
      }
      return refusedAfter.async !== undefined && refusedAfter.snapshot !== undefined;
    }, 'the async and snapshot nodes to stop taking writes', SESSION_MS, 25);
    // Still inside the session timeout: the refusal is the 2/3 rule, not an expiry.
    for (const mode of ['async', 'snapshot'] as const) {
      const refused = await join(byMode[mode]);
      assert.deepEqual(refused, { status: 503, code: 'CHAIN_FENCED' }, `${mode}: a write while ZooKeeper is silent`);
    }
    const sync = await byMode.sync.cluster();
    assert.equal(sync.node.writable, true, 'sync: a ZooKeeper hiccup does not stop writes');
    assert.equal((await join(byMode.sync)).status, 200, 'sync: a write while ZooKeeper is silent');
    assert.ok(Date.now() - t0 < SESSION_MS, `all checked within the session timeout (${Date.now() - t0} ms)`);
  } finally {
    process.kill(pid, 'SIGCONT');
    stopped = undefined;
  }
  console.log(`ZooKeeper stopped: writes refused after ${refusedAfter.async} ms (async), ${refusedAfter.snapshot} ms (snapshot); session timeout ${SESSION_MS} ms`);
  for (const mode of ['async', 'snapshot'] as const) {
    assert.ok(refusedAfter[mode]! >= SESSION_MS / 3 && refusedAfter[mode]! < SESSION_MS, `${mode}: refused after ${refusedAfter[mode]} ms, not within [1/3, 1) of the ${SESSION_MS} ms session timeout`);
  }
  // ZooKeeper answers again: the same session, so the same registration; writes are taken again.
  for (const mode of modes) {
    const before = await byMode[mode].cluster();
    await until(async () => (await byMode[mode].cluster()).node.writable, `${mode}: writable again`, SESSION_MS, 50);
    const now = await byMode[mode].cluster();
    assert.equal(now.self, before.self, `${mode}: the same registration (the session survived)`);
    assert.equal((await join(byMode[mode])).status, 200, `${mode}: writable after`);
  }
});

test('a node whose options differ from the cluster\'s is refused with CHAIN_CONFIG_MISMATCH', { timeout: 120000 }, async () => {
  const cluster = 'fencing-config';
  const base = ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync'];
  procs.push(await startNode(zk.connectionString, cluster, base));
  const cases: [string, string[], RegExp][] = [
    ['model', ['--secret', SECRET, '--model', 'mnist-mlp', '--dataset', 'synthetic', '--replication', 'sync'], /model is "mnist-mlp" here but "mnist-logreg" in the cluster/],
    ['replication', ['--secret', SECRET, '--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'async'], /replication is "async" here but "sync" in the cluster/],
    ['record bound', ['--secret', SECRET, '--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync', '--record-max', '100'], /recordMax is 100 here but 65535 in the cluster/],
    ['secret', ['--secret', 'another-secret-0123456789abcdef', '--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync'], /the secret differs from the one its other nodes use/],
  ];
  for (const [what, args, detail] of cases) {
    const proc = spawnCli(['node', '--zk', zk.connectionString, '--cluster', cluster, '--admin-token', ADMIN, '--log-level', 'warn', '--eval-every', '0', ...args]);
    procs.push(proc);
    await until(() => proc.child.exitCode !== null, `the node with another ${what} to exit`, 60000, 100);
    assert.equal(proc.child.exitCode, 2, `${what}: exit code of a catalogued error; ${proc.output().slice(-1000)}`);
    // CHAIN_CONFIG_MISMATCH's message template (shared/errors.ts).
    assert.match(proc.output(), new RegExp(`Node options do not match cluster ${cluster}: `), what);
    assert.match(proc.output(), detail, what);
    assert.doesNotMatch(proc.output(), /join at http/, `${what}: never served`);
  }
});
