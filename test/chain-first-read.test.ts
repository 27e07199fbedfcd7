/**
 * A worker whose first read of its node's /api/cluster went unanswered (a loaded machine, a
 * node busy forming the chain) still learns the cluster, and so still fails over: it reads
 * again on its reports until a read answers. Before, one timed-out read left the worker
 * thinking it wrote to a single PS, retrying the dead head for as long as that node stayed
 * down. (First suspected of the reference experiment's 30 s failovers; those turned out to be
 * CORS, test/chain-origin.test.ts. This one is real all the same: the test fails without it.)
 *
 * A real ZooKeeper and two `tabswarm node` processes; the worker runs in this process so that
 * its first /api/cluster request can be held until the worker's own timeout drops it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startZooKeeper, type ZooKeeperCluster } from '../server/zk/launcher.ts';
import { createNodeWorker } from '../client/node.ts';
import type { WorkerLoop, WorkerStatus } from '../client/loop.ts';
import { byUrl, headVersion, settled, startNode, type NodeProc } from './chain-tools.ts';
import { until } from './helpers.ts';

const SESSION_MS = 4000;
const NODE_ARGS = ['--model', 'mnist-logreg', '--dataset', 'synthetic', '--replication', 'sync', '--zk-session-ms', String(SESSION_MS)];

let zk: ZooKeeperCluster | undefined;
const nodes: NodeProc[] = [];
let loop: WorkerLoop | undefined;

after(async () => {
  loop?.stop();
  for (const n of nodes) await n.kill('SIGKILL');
  await zk?.stop();
});

test('a worker whose first /api/cluster read timed out reads again, and fails over when the head dies', { timeout: 180_000 }, async () => {
  zk = await startZooKeeper({ servers: 1 });
  for (let i = 0; i < 2; i++) nodes.push(await startNode(zk.connectionString, 'first-read', NODE_ARGS));
  const chain = await settled(nodes, 2);
  const head = byUrl(nodes, chain.head);

  // The first /api/cluster request hangs until the worker's timeout aborts it; later ones pass.
  let clusterReads = 0;
  const held: typeof fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.pathname === '/api/cluster' && ++clusterReads === 1) {
      return new Promise<Response>((_, reject) => {
        const signal = init?.signal;
        assert.ok(signal, 'the read has a timeout');
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    return fetch(input, init);
  };
  let status: Readonly<WorkerStatus> | undefined;
  loop = await createNodeWorker({ url: head.url, fetch: held, seed: 5, reportEveryMs: 300, backoffMinMs: 100, onStatus: (s) => (status = s) });
  const running = loop.run();

  await until(async () => (await headVersion(nodes)) >= 30, 'the head to apply 30 updates', 60_000, 200);
  await until(() => clusterReads >= 2, 'the worker to read /api/cluster again after the first read timed out', 30_000, 100);
  const v0 = await headVersion(nodes);
  await head.kill('SIGKILL');
  const survivor = nodes.find((n) => n !== head)!;
  await until(async () => (await survivor.cluster()).node.version > v0 + 10 && status?.psUrl === survivor.url, `the worker to move to the new head ${survivor.url} and train there`, 60_000, 200)
    .catch((err) => assert.fail(`${(err as Error).message}; worker: ${JSON.stringify({ state: status?.state, psUrl: status?.psUrl, failovers: status?.failovers, lastError: status?.lastError, clusterReads })}`));
  assert.ok(status!.failovers >= 1);
  loop.stop();
  await running;
});
