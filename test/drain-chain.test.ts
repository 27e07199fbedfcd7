/**
 * Workers that stop on their own (`--steps`) through repeated failovers of a sync chain: a real
 * ZooKeeper, three `tabswarm node` processes, two Node workers. The head is SIGKILLed twice
 * while the workers run: early on, and close to their last step, so that they often reach
 * --steps with pushes owed while the chain reconfigures (logged: whether they do depends on
 * the machine's speed; test/drain.test.ts makes it certain). Each worker drains before it exits (client/loop.ts `drain`), so the
 * acknowledgements in the workers' logs account for the chain's final version exactly: as many
 * distinct acknowledged (worker, seq) as versions, nothing left undelivered, every one applied
 * exactly once on the replicas.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { DrainReport } from '../client/status.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { assertReplicasAgree, byUrl, currentChain, nodeWorkerAcks, quiet, settled, startNode, type NodeProc, headVersion } from './chain-tools.ts';
import { exitWithin, spawnCli, until, workerLines, type Proc } from './helpers.ts';

const NODE_ARGS = ['--model', 'mnist-mlp', '--dataset', 'mnist', '--rule', 'staleness', '--replication', 'sync'];
const CLUSTER = 'drain-chain';
/** Long enough that both failovers happen while the workers run (checked below). */
const STEPS = 600;

let zk: ZooKeeperCluster;
const nodes: NodeProc[] = [];
const workers: Proc[] = [];

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
  for (let i = 0; i < 3; i++) nodes.push(await startNode(zk.connectionString, CLUSTER, NODE_ARGS));
});

after(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

test('workers run to --steps through two head failovers: their acknowledged pushes sum to the final version exactly', { timeout: 240_000 }, async () => {
  await settled(nodes, 3);
  for (let i = 0; i < 2; i++) workers.push(spawnCli(['worker', '--url', nodes[0]!.url, '--steps', String(STEPS), '--log-acks', '--seed', String(i + 1), '--log-every-ms', '100']));

  // The first kill once the chain holds 30 updates; the second when a worker is 15 steps from its last.
  const near = () => workers.some((w) => workerLines(w).some((l) => typeof l.steps === 'number' && l.steps >= STEPS - 15 && l.done === undefined));
  for (const [kill, due] of [[1, async () => (await headVersion(nodes)) >= 30], [2, near]] as const) {
    await until(due, `the moment of head kill ${kill}`, 120_000, 50)
      .catch((err) => assert.fail(`${(err as Error).message}; workers: ${workers.map((w) => w.output().slice(-600)).join(' | ')}`));
    const before = await currentChain(nodes);
    const size = before.nodes.length;
    assert.ok(workers.some((w) => w.child.exitCode === null), `a worker is still running at head kill ${kill}`);
    await byUrl(nodes, before.head).kill('SIGKILL');
    await until(async () => {
      const c = await currentChain(nodes);
      return c.epoch > before.epoch && c.nodes.length === size - 1 && c.head ? c : undefined;
    }, `the chain to drop head ${kill}`, 30_000, 100);
  }

  // The workers stop by themselves at --steps, draining what they owe.
  for (const w of workers) assert.ok(await exitWithin(w.child, 120_000), `a worker reaches --steps and exits; output: ${w.output().slice(-800)}`);
  const histories = await quiet(nodes);
  const version = histories[0]!.version;

  for (const w of workers) {
    assert.equal(w.child.exitCode, 0);
    const end = workerLines(w).find((l) => l.done === true) as { steps: number; failovers: number; drain: DrainReport } | undefined;
    assert.ok(end, `a done line: ${w.output().slice(-600)}`);
    console.log(`worker drained ${JSON.stringify(end.drain)}`);
    assert.equal(end.steps, STEPS);
    assert.ok(end.failovers >= 1, `the worker followed the head (${end.failovers} failovers)`);
    assert.equal(end.drain.outcome, 'drained', `nothing left: ${JSON.stringify(end.drain)}`);
    assert.equal(end.drain.left.outbox, undefined);
    assert.equal(end.drain.left.buffered, 0);
  }
  const acks = workers.flatMap(nodeWorkerAcks);
  const distinct = new Set(acks.map(([w, s]) => `${w}:${s}`));
  assert.equal(distinct.size, version, `distinct acknowledged pushes ${distinct.size} = the chain's final version ${version}`);
  assertReplicasAgree(histories, acks);
});
