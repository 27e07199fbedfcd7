/**
 * A Chromium tab whose page was loaded from the chain's head keeps training when that head is
 * SIGKILLed and stays down. The tab's origin is the dead node, so every HTTP request it makes
 * to the survivors (the search for the new head, a join, a report) is cross-origin. Before,
 * the survivors allowed only the origins of the current chain, which no longer held the dead
 * node: the tab could not find the new head, and trained into its buffer until the dead node
 * came back (about 30 s per kill in the reference experiment). Each node now allows every
 * node it has seen in the chain (server/plugins/cors.ts).
 *
 * A real ZooKeeper, two `tabswarm node` processes, one headless Chromium tab (wasm backend).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { Page } from 'playwright';
import { launchWorkerTabs, type WorkerTabs } from '../server/browsers.ts';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { byUrl, currentChain, settled, startNode, type NodeProc } from './chain-tools.ts';
import { until } from './helpers.ts';

const NODE_ARGS = ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync', '--zk-session-ms', '4000'];

let zk: ZooKeeperCluster | undefined;
const nodes: NodeProc[] = [];
let tabs: WorkerTabs | undefined;

after(async () => {
  await tabs?.close().catch(() => {});
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

type Tab = { state: string; psUrl: string; failovers: number; acks: number; lastError?: string };
const tabOf = (page: Page) => page.evaluate(() => {
  const t = (window as unknown as { tabswarm: { status?: { state: string; psUrl: string; failovers: number; lastError?: string }; ledger?: { acks: unknown[] } } }).tabswarm;
  return t.status ? { state: t.status.state, psUrl: t.status.psUrl, failovers: t.status.failovers, acks: t.ledger?.acks.length ?? 0, lastError: t.status.lastError } : undefined;
}) as Promise<Tab | undefined>;

test('a tab loaded from the head trains on at the new head when that head dies and stays down', { timeout: 240_000 }, async () => {
  zk = await startZooKeeper({ servers: 1 });
  for (let i = 0; i < 2; i++) nodes.push(await startNode(zk.connectionString, 'origin', NODE_ARGS));
  const chain = await settled(nodes, 2);
  const head = byUrl(nodes, chain.head);
  const survivor = nodes.find((n) => n !== head)!;
  const origin = new URL(head.url).origin;

  tabs = await launchWorkerTabs({ url: `${head.url}?acks=1&mesh=off`, count: 1, backend: 'wasm' });
  const page = tabs.pages[0]!;
  await until(async () => ((await tabOf(page))?.acks ?? 0) >= 20, 'the tab to get 20 acks from the head', 120_000, 250)
    .catch(async (err) => assert.fail(`${(err as Error).message}; tab: ${JSON.stringify(await tabOf(page))}`));

  await head.kill('SIGKILL');
  await until(async () => {
    const c = await currentChain(nodes);
    return c.nodes.length === 1 && c.head === survivor.url ? c : undefined;
  }, 'the chain to drop the killed head', 30_000, 100);
  // The survivor still allows the dead node's origin, which is the tab's.
  const preflight = await fetch(new URL('/api/join', survivor.url), { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
  assert.equal(preflight.headers.get('access-control-allow-origin'), origin, 'the survivor allows the origin of a node it saw in the chain');
  const foreign = await fetch(new URL('/api/join', survivor.url), { method: 'OPTIONS', headers: { origin: 'http://127.0.0.1:1', 'access-control-request-method': 'POST' } });
  assert.equal(foreign.headers.get('access-control-allow-origin'), null, 'an origin no node of the chain had is still refused');

  const atKill = (await tabOf(page))!.acks;
  const v0 = (await survivor.cluster()).node.version;
  await until(async () => {
    const t = await tabOf(page);
    return t && t.psUrl === survivor.url && t.acks >= atKill + 20 && (await survivor.cluster()).node.version >= v0 + 20;
  }, `the tab to train at the new head ${survivor.url}, its page's node (${head.url}) dead`, 30_000, 250)
    .catch(async (err) => assert.fail(`${(err as Error).message}; tab: ${JSON.stringify(await tabOf(page))}`));
  assert.ok(!head.alive(), 'the dead node stayed down throughout');
});
