/**
 * No stale head after a mass expiry (issue 13, docs/chain.md "Mass expiry"): ZooKeeper is stopped
 * (SIGSTOP) under a training 3-node sync chain for longer than the session timeout, so every
 * node's session expires at once; meanwhile a fresh node (nothing in its store) is started
 * against the same cluster; then ZooKeeper runs again (SIGCONT). Whatever order the nodes
 * register in, the fresh node never heads the chain over the nodes that hold its state (the
 * head records the committed version in ZooKeeper before it acks, server/chain/committed.ts),
 * training goes on, and every push any worker saw acknowledged is applied exactly once on every
 * node, at the version its ack named, with the replicas bitwise identical. To make the worst
 * order certain, the old nodes are themselves stopped across the SIGCONT until the fresh node has
 * registered: it is then the only live member of a warm chain whose members all expired.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { SECRET, ADMIN, assertReplicasAgree, headVersion, nodeWorkerAcks, quiet, settled, startNode, currentChain, type NodeProc } from './chain-tools.ts';
import { joinUrl, killGroup, spawnCli, until, type Proc } from './helpers.ts';

const SESSION_MS = 2000;
let zk: ZooKeeperCluster;
let stopped: number | undefined;
const nodes: NodeProc[] = [];
const workers: Proc[] = [];
const others: Proc[] = [];

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
});

after(async () => {
  if (stopped) killGroup(stopped, 'SIGCONT');
  for (const w of workers) await w.kill('SIGKILL');
  for (const p of others) await p.kill('SIGKILL');
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

test('every session expires at once while a fresh node starts: no acknowledged update is lost', { timeout: 150_000 }, async () => {
  const args = ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync', '--zk-session-ms', String(SESSION_MS)];
  for (let i = 0; i < 3; i++) nodes.push(await startNode(zk.connectionString, 'expiry', args));
  const chain = await settled(nodes, 3);
  for (let i = 0; i < 2; i++) workers.push(spawnCli(['worker', '--url', chain.head!, '--log-acks', '--seed', String(i + 1)]));
  await until(async () => (await headVersion(nodes)) >= 30, 'training before the stop', 60000, 200);

  const pid = zk.server(1).pid!;
  process.kill(pid, 'SIGSTOP');
  stopped = pid;
  const t0 = Date.now();
  // A fresh node started while ZooKeeper is silent: it registers whenever ZooKeeper answers again.
  const fresh = spawnCli(['node', '--zk', zk.connectionString, '--cluster', 'expiry', '--secret', SECRET, '--admin-token', ADMIN, '--log-level', 'warn', '--eval-every', '0', ...args]);
  others.push(fresh);
  // Every old node has given its session up (fenced) and ZooKeeper stayed silent past the timeout.
  await until(async () => {
    const states = await Promise.all(nodes.map(async (n) => (await n.cluster()).node.state));
    return states.every((s) => s === 'fenced') && Date.now() - t0 > SESSION_MS * 1.5;
  }, 'every node to fence itself', 20000, 100);
  const paused = nodes.map((n) => n.child.pid!);
  for (const p of paused) killGroup(p, 'SIGSTOP');
  process.kill(pid, 'SIGCONT');
  stopped = undefined;
  let freshUrl: string;
  try {
    freshUrl = await joinUrl(fresh);
    // Registered, and alone in the chain: every old member's session is gone.
    await until(async () => {
      const c = (await (await fetch(new URL('/api/cluster', freshUrl), { signal: AbortSignal.timeout(3000) })).json()) as { nodes: { url: string }[] };
      return c.nodes.length === 1 && c.nodes[0]!.url === freshUrl;
    }, 'the fresh node to be the only member', 30000, 100);
  } finally {
    for (const p of paused) killGroup(p, 'SIGCONT');
  }
  const all: NodeProc[] = [...nodes, { ...fresh, url: freshUrl, alive: () => fresh.child.exitCode === null, cluster: async () => (await (await fetch(new URL('/api/cluster', freshUrl), { signal: AbortSignal.timeout(3000) })).json()) as never, admin: async (method, path) => (await (await fetch(new URL(path, freshUrl), { method, headers: { authorization: `Bearer ${ADMIN}` }, signal: AbortSignal.timeout(20000) })).json()) as never }];
  const after4 = await settled(all, 4, 60000);
  assert.notEqual(after4.head, freshUrl, 'the fresh node does not head the chain');
  const v0 = await headVersion(all);
  assert.ok(v0 >= 30, `the chain kept its state (head at version ${v0})`);
  await until(async () => (await headVersion(all)) >= v0 + 20, 'training to go on after the mass expiry', 60000, 200);

  for (const w of workers) await w.kill('SIGTERM');
  const histories = await quiet(all);
  const acks = workers.flatMap(nodeWorkerAcks);
  assert.ok(acks.length >= 30, `the workers saw ${acks.length} acks`);
  assertReplicasAgree(histories, acks);
  console.log(`mass expiry: head ${(await currentChain(all)).head} at version ${histories[0]!.version}; ${acks.length} acks, all applied exactly once`);
});
