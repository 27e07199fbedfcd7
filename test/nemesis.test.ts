/**
 * The nemesis (server/nemesis/) on a short schedule: a real ZooKeeper, a sync chain of three
 * `tabswarm node` processes and two Node workers pushing throughout, while a fixed schedule
 * SIGKILLs the head, the middle and the tail (each replaced by a fresh node at the tail), stops
 * the tail for two session timeouts (SIGSTOP: it must be dropped, then fenced and back at the
 * tail when it runs again), stops ZooKeeper for part of a session and crashes and restarts it.
 * Workers compute batches of 512 (a light load for the 2-core CI machine; `npm run bench:nemesis`
 * runs the model's 64, docs/chain.md#nemesis);
 * they keep the default 10 s request timeout, longer than any pause here.
 * Then the workers drain and stop, and the ledger checker (server/nemesis/checker.ts, unit-tested
 * beside it on fabricated ledgers) must find every acknowledged push applied exactly once,
 * versions 1..V without gap or repeat and every replica bitwise identical. `npm run
 * bench:nemesis` runs the long schedules.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { checkLedger, describeVerdict } from '../server/nemesis/checker.ts';
import { fault } from '../server/nemesis/faults.ts';
import { Nemesis } from '../server/nemesis/runner.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { nodeWorkerAcks, startNode } from './chain-tools.ts';
import { exitWithin, spawnCli, workerLines, type Proc } from './helpers.ts';

const SESSION_MS = 2000;
const NODE_ARGS = ['--model', 'mnist-mlp', '--dataset', 'synthetic', '--replication', 'sync', '--zk-session-ms', String(SESSION_MS), '--mesh-peers', '0', '--batch', '512'];

let zk: ZooKeeperCluster;
let nemesis: Nemesis | undefined;
const workers: Proc[] = [];

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
});

after(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  await nemesis?.stop();
  await zk?.stop();
});

test('sync chain under a nemesis: node kills and pauses, ZooKeeper pause and crash; every acknowledged push applied exactly once', { timeout: 180_000 }, async () => {
  const lines: string[] = [];
  nemesis = new Nemesis({ zk, size: 3, sessionMs: SESSION_MS, startNode: () => startNode(zk.connectionString, 'nemesis', NODE_ARGS), log: (l) => lines.push(l), timeoutMs: 60_000 });
  const chain = await nemesis.start();
  for (let i = 0; i < 2; i++) {
    workers.push(spawnCli(['worker', '--url', chain.nodes[i]!.url, '--log-acks', '--seed', String(i + 1), '--log-every-ms', '200']));
  }
  const schedule = ['kill-head', 'pause-zk', 'kill-middle', 'pause-tail', 'kill-tail', 'kill-zk', 'kill-head'] as const;
  try {
    await nemesis.run(schedule.map(fault));
  } catch (err) {
    console.log(`nodes:\n${await nemesis.describe()}\nworkers:\n${workers.map((w) => w.output().slice(-1500)).join('\n---\n')}`);
    throw err;
  } finally {
    console.log(lines.join('\n'));
  }
  const records = nemesis.records;
  assert.deepEqual(records.map((r) => r.name), [...schedule]);
  for (const r of records) assert.ok(r.recoveredMs !== null && r.recoveredMs < 30_000, `updates commit again after ${r.name}: ${JSON.stringify(r)}`);

  // The workers drain what they owe and exit; then the replicas stop moving.
  for (const w of workers) await w.kill('SIGTERM', 30_000);
  const drains = workers.map((w) => workerLines(w).find((l) => l.done === true) as { drain: { outcome: string } } | undefined);
  for (const [i, d] of drains.entries()) assert.ok(d, `worker ${i} printed its done line: ${workers[i]!.output().slice(-600)}`);
  for (const w of workers) assert.ok(await exitWithin(w.child, 1000));
  const histories = await nemesis.histories();
  const acks = workers.flatMap(nodeWorkerAcks).map(([worker, seq, version, dup]) => ({ worker, seq, version, duplicate: !!dup }));
  const verdict = checkLedger(acks, histories);
  console.log(`nemesis verdict: ${describeVerdict(verdict)}; drains ${drains.map((d) => d!.drain.outcome).join(', ')}`);
  assert.equal(verdict.ok, true, describeVerdict(verdict));
  assert.equal(verdict.replicas, 3);
  assert.ok(verdict.acked >= records.length * 5, `the workers were acknowledged throughout (${verdict.acked} pushes)`);
  // Drained workers hold an ack for every update the chain applied (a retry gets the first apply's version).
  if (drains.every((d) => d!.drain.outcome === 'drained')) assert.equal(verdict.unacknowledged, 0, 'every applied version was acknowledged to its worker');
});
