/**
 * A chain whose every node also checkpoints (`tabswarm node --strategy checkpoint`: the chain
 * wraps the checkpoint strategy), on a real ZooKeeper, with Node workers training:
 * - every node writes checkpoints, the head from its own applies and the others from what they
 *   apply for their predecessor;
 * - every node is SIGKILLed at once; they come back on their ports and checkpoint folders, the
 *   one with the oldest checkpoint first: it must not become head with its older state (the
 *   cold-start rule, docs/chain.md), and the cluster resumes from the newest checkpoint any
 *   node holds;
 * - after the resume, nothing the resumed checkpoint contains is applied again, every push
 *   acknowledged after the restart is applied exactly once, and the replicas are bitwise equal.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { type History, currentChain, nodeWorkerAcks, quiet, settled, startNode, type NodeProc } from './chain-tools.ts';
import { freePort, readCheckpoint } from './checkpoint-tools.ts';
import { spawnCli, until, type Proc } from './helpers.ts';

const CLUSTER = 'chain-checkpoint';
const EVERY = 5;

let zk: ZooKeeperCluster;
const ports: number[] = [];
const dirs: string[] = [];
let nodes: NodeProc[] = [];
const workers: Proc[] = [];

const nodeArgs = (i: number): string[] => [
  '--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync', '--port', String(ports[i]),
  '--strategy', 'checkpoint', '--checkpoint-dir', dirs[i]!, '--checkpoint-every', String(EVERY), '--checkpoint-mode', 'sync',
];

interface InnerStatus {
  name: string;
  lastCheckpoint: { storeVersion: number } | null;
  restored: { version: number } | null;
}

const innerStatus = async (n: NodeProc): Promise<InnerStatus> => {
  const res = await fetch(new URL('/api/status', n.url), { signal: AbortSignal.timeout(3000) });
  if (!res.ok) throw new Error(`GET /api/status: ${res.status}`);
  return ((await res.json()) as { strategy: { inner: InnerStatus } }).strategy.inner;
};

/** The newest checkpoint in a node's folder that decodes: its store version and applied record. */
async function newestOnDisk(dir: string): Promise<{ version: number; applied: Map<number, number> }> {
  const folder = join(dir, 'shard-000');
  let best = { version: -1, applied: new Map<number, number>() };
  for (const name of await readdir(folder)) {
    if (!name.endsWith('.ckpt')) continue;
    const c = await readCheckpoint(folder, name).catch(() => undefined);
    if (c && c.meta.storeVersion > best.version) best = { version: c.meta.storeVersion, applied: new Map(c.meta.applied.map(([w, s]) => [w, s])) };
  }
  return best;
}

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
  for (let i = 0; i < 3; i++) {
    ports.push(await freePort());
    dirs.push(await mkdtemp(join(tmpdir(), `tabswarm-chain-ckpt-${i}-`)));
  }
  for (let i = 0; i < 3; i++) nodes.push(await startNode(zk.connectionString, CLUSTER, nodeArgs(i)));
});

after(async () => {
  for (const w of workers) await w.kill('SIGKILL');
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('chain + checkpoint: every node checkpoints; after all die, the cluster resumes from the newest checkpoint, nothing applied twice', { timeout: 300000 }, async () => {
  const chain = await settled(nodes, 3);
  assert.deepEqual(chain.nodes.map((n) => n.role), ['head', 'middle', 'tail']);
  const strategy = (await (await fetch(new URL('/api/status', nodes[0]!.url))).json() as { strategy: { inner: { name: string } } }).strategy.inner.name;
  assert.equal(strategy, 'checkpoint', 'the chain wraps the checkpoint strategy');

  for (let i = 0; i < 2; i++) workers.push(spawnCli(['worker', '--url', nodes[0]!.url, '--log-acks', '--seed', String(i + 1)]));
  // Every node checkpoints, not only the head: the replicas from what they apply for their predecessor.
  await until(async () => {
    const s = await Promise.all(nodes.map(innerStatus));
    return s.every((x) => (x.lastCheckpoint?.storeVersion ?? 0) >= 8 * EVERY) ? s : undefined;
  }, 'every node to write checkpoints past version 40', 120000, 250)
    .catch((err) => assert.fail(`${(err as Error).message}; workers: ${workers.map((w) => w.output().slice(-600)).join(' | ')}`));

  const printed = workers.map((w) => w.output().length);
  await Promise.all(nodes.map((n) => n.kill('SIGKILL')));
  // A worker prints the acks it holds before each status line: once it reports that it lost
  // its PS, every ack from before the kill is printed.
  await until(() => workers.every((w, i) => /"state":"(?!connected")/.test(w.output().slice(printed[i]))) || undefined, 'the workers to notice the outage', 30000, 100);
  const acksBefore = workers.map((w) => nodeWorkerAcks(w).length);
  const onDisk = await Promise.all(dirs.map(newestOnDisk));
  const newest = Math.max(...onDisk.map((d) => d.version));
  assert.ok(newest >= 8 * EVERY, `checkpoints on disk: ${onDisk.map((d) => d.version).join(', ')}`);

  // The node with the oldest checkpoint comes back first, alone.
  const order = [0, 1, 2].sort((a, b) => onDisk[a]!.version - onDisk[b]!.version);
  const restarted: NodeProc[] = [];
  restarted[order[0]!] = await startNode(zk.connectionString, CLUSTER, nodeArgs(order[0]!));
  const first = restarted[order[0]!]!;
  if (onDisk[order[0]!]!.version < newest) {
    // Once the dead nodes' sessions are gone it heads a cold chain, and waits: it neither serves
    // its older state nor takes writes.
    const waiting = await until(async () => {
      const c = await first.cluster();
      return c.nodes.length === 1 && c.node.role === 'single' ? c : undefined;
    }, 'the first restarted node to be alone in the chain', 30000, 100);
    assert.equal(waiting.node.fresh, true, `a node with an older checkpoint than the newest published does not serve: ${JSON.stringify(waiting)}; on disk ${onDisk.map((d) => d.version).join(', ')}; ${first.output().slice(-1500)}`);
    assert.equal(waiting.node.writable, false);
    const refused = await fetch(new URL('/api/join', first.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(refused.status, 503);
    assert.equal(((await refused.json()) as { code: string }).code, 'CHAIN_NOT_READY');
  }
  for (const i of order.slice(1)) restarted[i] = await startNode(zk.connectionString, CLUSTER, nodeArgs(i));
  nodes = restarted;

  const resumed = await settled(nodes, 3, 60000);
  const headIndex = nodes.findIndex((n) => n.url === resumed.head);
  assert.ok(headIndex >= 0, 'a head after the restart');
  const head = nodes[headIndex]!;
  assert.equal(onDisk[headIndex]!.version, newest, `a node holding the newest checkpoint (${newest}) is head; on disk: ${onDisk.map((d) => d.version).join(', ')}`);
  assert.equal((await innerStatus(head)).restored?.version, newest, 'the cluster resumed from the newest checkpoint any node holds');

  // Training resumes through the new chain.
  await until(async () => ((await currentChain(nodes)).node.version >= newest + 4 * EVERY ? true : undefined), 'training to resume past the checkpoint', 120000, 250)
    .catch((err) => assert.fail(`${(err as Error).message}; workers: ${workers.map((w) => w.output().slice(-600)).join(' | ')}`));
  for (const w of workers) await w.kill('SIGKILL');
  const histories: History[] = await quiet(nodes);

  // Replicas agree bitwise and remember the same updates since the resume.
  for (const h of histories) {
    assert.equal(h.version, histories[0]!.version, 'replicas at one version');
    assert.equal(h.digest, histories[0]!.digest, 'replica weights and velocity bitwise identical');
    assert.equal(h.start, newest + 1, 'the history starts after the resumed checkpoint');
    assert.deepEqual(h.entries, histories[0]!.entries, 'replicas applied the same updates in the same order');
  }
  const h = histories[0]!;
  assert.equal(h.entries.length, h.version - newest, 'one history entry per version since the resume');
  const record = onDisk[headIndex]!.applied;
  const at = new Map<string, number[]>();
  h.entries.forEach(([w, s], i) => {
    assert.ok(s > (record.get(w) ?? 0), `push (worker ${w}, seq ${s}) is in the resumed checkpoint (seq ${record.get(w)}) and was applied again at version ${newest + 1 + i}`);
    const key = `${w}:${s}`;
    at.set(key, [...(at.get(key) ?? []), newest + 1 + i]);
  });
  for (const [key, versions] of at) assert.equal(versions.length, 1, `push ${key} applied once (at versions ${versions.join(', ')})`);
  // Every push acknowledged after the restart is in the chain, exactly once, at the version its ack named.
  let after = 0;
  workers.forEach((w, i) => {
    for (const [wid, seq, version, dup] of nodeWorkerAcks(w).slice(acksBefore[i])) {
      after += 1;
      const v = at.get(`${wid}:${seq}`);
      if (!v) {
        assert.ok(seq <= (record.get(wid) ?? 0) && dup, `acknowledged push (worker ${wid}, seq ${seq}, version ${version}) is applied on the replicas`);
        continue;
      }
      if (!dup) assert.equal(v[0], version, `push (worker ${wid}, seq ${seq}) made the version its ack named`);
    }
  });
  assert.ok(after > 0, 'the workers were acknowledged after the restart');
});
