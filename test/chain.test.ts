/**
 * Chain replication end to end: a real ZooKeeper, three `tabswarm node` processes in sync mode,
 * two Node workers and one headless Chromium worker pushing a stream of updates. The head is
 * SIGKILLed, then (after it rejoined) the middle, then the tail. Each time the chain
 * reconfigures, training goes on, and the killed node restarted rejoins at the tail and catches
 * up by state transfer. At the end, with the workers stopped: every replica at one version with
 * bitwise identical weights, and every push any worker saw acknowledged applied exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright';
import { launchWorkerTabs, type WorkerTabs } from '../server/browsers.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { assertReplicasAgree, byUrl, currentChain, nodeWorkerAcks, quiet, settled, startNode, type NodeProc, headVersion } from './chain-tools.ts';
import { spawnCli, until, type Proc } from './helpers.ts';

const NODE_ARGS = ['--model', 'mnist-mlp', '--dataset', 'mnist', '--rule', 'staleness', '--replication', 'sync'];
const CLUSTER = 'chain-e2e';

let zk: ZooKeeperCluster;
const nodes: NodeProc[] = [];
const workers: Proc[] = [];
let tabs: WorkerTabs | undefined;

type TabAcks = { workerId: number; acks: [number, number, number][]; failovers: number; state: string };
const tabStatus = (page: Page) => page.evaluate(() => {
  const t = (window as unknown as { tabswarm: { status?: { workerId: number; failovers: number; state: string }; ledger?: { acks: [number, number, number][] } } }).tabswarm;
  const s = t.status;
  return s ? { workerId: s.workerId, acks: t.ledger?.acks ?? [], failovers: s.failovers, state: s.state } : undefined;
}) as Promise<TabAcks | undefined>;

before(async () => {
  zk = await startZooKeeper({ servers: 1 });
  for (let i = 0; i < 3; i++) nodes.push(await startNode(zk.connectionString, CLUSTER, NODE_ARGS));
});

after(async () => {
  await tabs?.close().catch(() => {});
  for (const w of workers) await w.kill('SIGKILL');
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

test('sync chain of 3: SIGKILL head, middle, tail in turn; no acknowledged update lost; rejoined replicas bitwise identical', { timeout: 420000 }, async () => {
  const chain = await settled(nodes, 3);
  assert.deepEqual(chain.nodes.map((n) => n.url), nodes.map((n) => n.url), 'chain order is registration order');
  assert.deepEqual(chain.nodes.map((n) => n.role), ['head', 'middle', 'tail']);

  // A write to a node that is not the head is refused with the head's address, not dropped.
  const misdirected = await fetch(new URL('/api/join', nodes[1]!.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(misdirected.status, 421);
  const redirect = await misdirected.json() as { code: string; message: string; retryable: boolean; details: { head?: string } };
  assert.equal(redirect.code, 'CHAIN_NOT_HEAD');
  assert.ok(redirect.message.includes(nodes[0]!.url), redirect.message);
  assert.equal(redirect.retryable, true);
  assert.equal(redirect.details.head, nodes[0]!.url, 'the head travels in details: the worker never parses the message');

  // CORS on a chain node: a page loaded from another node of the chain writes to the head, so the
  // head allows the chain's own origins; an origin that is neither a node nor --cors-origin gets
  // no allow header (the browser then refuses the response), and the admin API none at all.
  const preflight = (origin: string, path = '/api/push') => fetch(new URL(path, nodes[0]!.url), { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
  for (const peer of [nodes[1]!, nodes[2]!]) {
    const origin = new URL(peer.url).origin;
    const res = await preflight(origin);
    assert.equal(res.headers.get('access-control-allow-origin'), origin, `the head allows its peer ${origin}`);
    assert.match(res.headers.get('access-control-allow-methods') ?? '', /POST/);
  }
  const foreign = await preflight('http://evil.example');
  assert.equal(foreign.headers.get('access-control-allow-origin'), null, 'an origin outside the chain is not allowed');
  const peerOrigin = new URL(nodes[1]!.url).origin;
  assert.equal((await preflight(peerOrigin, '/api/admin/status')).headers.get('access-control-allow-origin'), null, 'the admin API never answers cross-origin');
  const status = await fetch(new URL('/api/status', nodes[0]!.url), { headers: { origin: peerOrigin } });
  assert.equal(status.headers.get('access-control-allow-origin'), peerOrigin, 'a simple request from a peer origin is allowed too');

  // Workers start on nodes that are not the head: they are redirected (CHAIN_NOT_HEAD) to it.
  // The second worker codes its pushes (int8, error feedback) and overlaps upload and compute:
  // exactly-once through the kills must hold for it as for the plain one.
  for (let i = 0; i < 2; i++) workers.push(spawnCli(['worker', '--url', nodes[1 + i]!.url, '--log-acks', '--seed', String(i + 1), ...(i === 1 ? ['--codec', 'int8', '--overlap'] : [])]));
  tabs = await launchWorkerTabs({ url: `${nodes[2]!.url}?acks=1`, count: 1, backend: 'webgl' });
  const page = tabs.pages[0]!;
  await until(async () => (await headVersion(nodes)) >= 60, 'the head to apply 60 updates', 120000, 250)
    .catch((err) => assert.fail(`${(err as Error).message}; workers: ${workers.map((w) => w.output().slice(-600)).join(' | ')}; nodes: ${nodes.map((n) => n.output().slice(-400)).join(' | ')}`));
  await until(async () => ((await tabStatus(page))?.acks.length ?? 0) > 0, 'the Chromium worker to get an ack', 120000, 250)
    .catch(async (err) => assert.fail(`${(err as Error).message}; the tab: ${JSON.stringify(await page.evaluate(() => (window as unknown as { tabswarm: unknown }).tabswarm))}`));

  for (const role of ['head', 'middle', 'tail'] as const) {
    const before = await settled(nodes, 3);
    const victim = byUrl(nodes, before.nodes.find((n) => n.role === role)!.url);
    const v0 = await headVersion(nodes);
    await victim.kill('SIGKILL');
    const after = await until(async () => {
      const c = await currentChain(nodes);
      return c.epoch > before.epoch && c.nodes.length === 2 && !c.nodes.some((n) => n.url === victim.url) ? c : undefined;
    }, `the chain to drop the killed ${role}`, 30000, 100);
    assert.ok(after.head, 'a head after the reconfiguration');
    // Training goes on through the new chain.
    await until(async () => (await headVersion(nodes)) >= v0 + 40, `40 more updates after killing the ${role}`, 90000, 250);
    // The killed node, restarted, rejoins at the tail and catches up.
    const again = await startNode(zk.connectionString, CLUSTER, NODE_ARGS);
    nodes.push(again);
    const rejoined = await settled(nodes, 3);
    assert.equal(rejoined.tail, again.url, `the restarted ${role} rejoins at the tail`);
    await until(async () => (await again.cluster()).node.version >= v0 + 40, 'the rejoined node to catch up', 60000, 250);
  }

  // Stop the workers (the Node workers print their last acks) and let the replicas go quiet.
  const tab = (await tabStatus(page))!;
  await tabs.close();
  tabs = undefined;
  for (const w of workers) await w.kill('SIGTERM');
  const histories = await quiet(nodes);
  assert.equal(histories.length, 3);

  const acks = [...workers.flatMap(nodeWorkerAcks), ...tab.acks.map(([s, v, d]) => [tab.workerId, s, v, d] as [number, number, number, number])];
  const perWorker = new Map<number, number>();
  for (const [w] of acks) perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
  assert.equal(perWorker.size, 3, 'acks from the 2 Node workers and the Chromium worker');
  for (const [w, n] of perWorker) assert.ok(n >= 10, `worker ${w} saw ${n} acks`);
  assert.ok(tab.failovers >= 1, `the Chromium worker failed over to a new head (${tab.failovers})`);
  assertReplicasAgree(histories, acks);
});
