/**
 * The head locator against a fake fetch: what each node answers on /api/cluster is scripted,
 * every request is recorded with its signal, and a silent node hangs until its timeout fires.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterInfo } from '../shared/api.ts';
import { TabswarmError } from '../shared/errors.ts';
import { HeadLocator, MAX_NODES, fetchClusterInfo } from './head-locator.ts';

const A = 'http://127.0.0.1:9001/';
const B = 'http://127.0.0.1:9002/';
const C = 'http://127.0.0.1:9003/';

function info(epoch: number, head: string | null, nodes: string[], tail: string | null = nodes.at(-1) ?? null): ClusterInfo {
  return {
    cluster: 'test', epoch, replication: 'sync', reads: 'strict', self: 'n',
    nodes: nodes.map((url, i) => ({ name: `n${i}`, url, role: i === 0 ? 'head' : i === nodes.length - 1 ? 'tail' : 'middle', version: null })),
    head, tail, node: { role: 'head', version: 0, committed: 0, fresh: false, writable: true },
  };
}

/** What a node does: answer a ClusterInfo (or any body), refuse the connection, or say nothing. */
type Answer = ClusterInfo | { status: number; body: unknown } | 'refused' | 'silent' | unknown;
type Script = (node: string, wait: { after: number; waitMs: number } | undefined) => Answer;

function fakeFetch(script: Script) {
  const calls: { node: string; wait?: { after: number; waitMs: number }; signal: AbortSignal | undefined }[] = [];
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(String(input));
    assert.equal(url.pathname, '/api/cluster');
    const node = `${url.origin}/`;
    const after = url.searchParams.get('after');
    const wait = after === null ? undefined : { after: Number(after), waitMs: Number(url.searchParams.get('waitMs')) };
    const signal = init?.signal ?? undefined;
    calls.push({ node, ...(wait ? { wait } : {}), signal });
    const answer = script(node, wait);
    if (answer === 'refused') throw new TypeError('fetch failed: ECONNREFUSED');
    if (answer === 'silent') {
      return new Promise<Response>((_, reject) => {
        if (!signal) return; // never settles: the test would hang, which is the failure
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    }
    if (typeof answer === 'object' && answer !== null && 'status' in answer) {
      const a = answer as { status: number; body: unknown };
      return new Response(JSON.stringify(a.body), { status: a.status });
    }
    return new Response(JSON.stringify(answer), { status: 200 });
  }) as typeof fetch;
  return { fetchFn, calls };
}

test('the head of the highest epoch wins, and every node it names is learnt', async () => {
  const { fetchFn, calls } = fakeFetch((node) => (node === A ? info(2, B, [B, A]) : node === B ? info(3, C, [C, B]) : 'refused'));
  const locator = new HeadLocator({ fetch: fetchFn });
  locator.absorb(info(1, A, [A, B]), A);
  locator.suspect(A);
  assert.equal(locator.pending, true);
  assert.equal(await locator.locate(A), C);
  assert.equal(locator.pending, false);
  assert.equal(locator.view!.epoch, 3);
  assert.deepEqual(locator.view!.nodes, [A, B, C]);
  assert.equal(locator.view!.tail, B);
  assert.ok(calls.every((c) => c.wait === undefined), 'no long poll: a newer head was found at once');
});

test('when the best head is the node that just failed, the others are long-polled for the next epoch', async () => {
  const { fetchFn, calls } = fakeFetch((node, wait) => {
    if (node === A) return 'refused'; // the failed head
    if (!wait) return info(5, A, [A, B, C]); // the others still name it: not reconfigured yet
    return node === C ? info(6, B, [B, C]) : info(5, A, [A, B, C]);
  });
  const locator = new HeadLocator({ fetch: fetchFn, waitMs: 1234 });
  locator.absorb(info(5, A, [A, B, C]), A);
  locator.suspect(A);
  assert.equal(await locator.locate(A), B);
  const polls = calls.filter((c) => c.wait);
  assert.deepEqual(polls.map((c) => c.node).sort(), [B, C], 'only the other nodes are long-polled');
  for (const p of polls) assert.deepEqual(p.wait, { after: 5, waitMs: 1234 });
  assert.equal(locator.view!.epoch, 6);
});

test('no new epoch from the long poll: the failed head is kept (the next attempt asks again)', async () => {
  const { fetchFn } = fakeFetch((node, wait) => (node === A ? 'refused' : wait ? info(5, A, [A, B]) : info(5, A, [A, B])));
  const locator = new HeadLocator({ fetch: fetchFn });
  locator.absorb(info(5, A, [A, B]), A);
  assert.equal(await locator.locate(A), A);
});

test('older epochs change nothing', () => {
  const locator = new HeadLocator({ fetch: fakeFetch(() => 'refused').fetchFn });
  locator.absorb(info(5, A, [A, B]), A);
  const before = structuredClone(locator.view);
  locator.absorb({ ...info(4, C, [C]), reads: 'relaxed' }, A);
  assert.deepEqual(locator.view, before);
});

test('an older epoch never wins the search, and unreachable or malformed nodes are ignored', async () => {
  const D = 'http://127.0.0.1:9004/';
  const { fetchFn } = fakeFetch((node) => (node === A ? 'refused' : node === B ? info(7, B, [B, C]) : node === C ? info(4, C, [C]) : { epoch: 'nine', head: D }));
  const locator = new HeadLocator({ fetch: fetchFn });
  locator.absorb(info(6, A, [A, B, C, D]), A);
  assert.equal(await locator.locate(A), B);
  assert.equal(locator.view!.epoch, 7);
});

test('every request carries a timeout: silent nodes cannot hold the search', async () => {
  const { fetchFn, calls } = fakeFetch((node, wait) => (node === A ? 'silent' : wait ? 'silent' : info(3, A, [A, B])));
  const locator = new HeadLocator({ fetch: fetchFn, readTimeoutMs: 50, askTimeoutMs: 50, waitTimeoutMs: 100 });
  locator.absorb(info(3, A, [A, B]), A);
  const started = performance.now();
  // AbortSignal.timeout's timer does not keep Node's event loop alive on its own.
  const keepAlive = setInterval(() => {}, 1000);
  try {
    assert.equal(await locator.locate(A), A);
    assert.ok(performance.now() - started < 5000, 'the search ended on the timeouts');
    assert.ok(calls.length >= 3);
    await locator.refresh(A); // the write node's read too
  } finally {
    clearInterval(keepAlive);
  }
  for (const c of calls) assert.ok(c.signal instanceof AbortSignal, `a signal on the request to ${c.node}`);
});

test('fetchClusterInfo: a malformed answer is WORKER_BAD_RESPONSE, a catalogued error comes back whole', async () => {
  const bad = fakeFetch(() => ({ cluster: 'x' }));
  await assert.rejects(fetchClusterInfo(bad.fetchFn, A, 100), (e: unknown) => e instanceof TabswarmError && e.code === 'WORKER_BAD_RESPONSE');
  const sent = new TabswarmError('CHAIN_NOT_READY', { node: 'n1', epoch: 4 });
  const refusing = fakeFetch(() => ({ status: 503, body: sent.toJSON() }));
  await assert.rejects(fetchClusterInfo(refusing.fetchFn, A, 100), (e: unknown) => e instanceof TabswarmError && e.code === 'CHAIN_NOT_READY' && e.details.epoch === 4);
  const single = fakeFetch(() => ({ status: 404, body: { message: 'Route GET:/api/cluster not found' } }));
  await assert.rejects(fetchClusterInfo(single.fetchFn, A, 100), (e: unknown) => e instanceof TabswarmError && e.code === 'WORKER_DISCONNECTED');
});

test('suspect: a head named by a failing node is asked too; a hint that is no URL is not; the view is bounded', async () => {
  const { fetchFn, calls } = fakeFetch((node) => (node === C ? info(2, C, [C]) : 'refused'));
  const locator = new HeadLocator({ fetch: fetchFn, waitTimeoutMs: 100 });
  locator.suspect(A, 'none yet');
  assert.deepEqual(locator.view!.nodes, [A]);
  locator.suspect(A, 'http://127.0.0.1:9003');
  assert.deepEqual(locator.view!.nodes, [A, C]);
  assert.equal(await locator.locate(A), C);
  assert.ok(calls.some((c) => c.node === C));
  for (let i = 0; i < 2 * MAX_NODES; i++) locator.suspect(A, `http://10.0.0.1:${10000 + i}/`);
  assert.equal(locator.view!.nodes.length, MAX_NODES);
});

test('settled: only an answer settles what the write node is; a timeout or a busy node leaves it to the next read', async () => {
  let answer: Answer = 'silent';
  const { fetchFn, calls } = fakeFetch(() => answer);
  const locator = new HeadLocator({ fetch: fetchFn, readTimeoutMs: 50 });
  const keepAlive = setInterval(() => {}, 1000);
  try {
    await locator.refresh(A);
    assert.equal(locator.settled, false, 'a read that timed out says nothing');
    answer = 'refused';
    await locator.refresh(A);
    answer = { status: 503, body: new TabswarmError('CHAIN_NOT_READY', { node: 'n1', epoch: 0 }).toJSON() };
    await locator.refresh(A);
    assert.equal(locator.settled, false, 'neither does a refused connection or a chain node not ready yet');
    assert.equal(locator.view, undefined);
    answer = info(2, A, [A, B]);
    await locator.refresh(A);
    assert.equal(locator.settled, true);
    assert.deepEqual(locator.view!.nodes, [A, B], 'the fourth read learnt the cluster');
    assert.equal(calls.length, 4);
  } finally {
    clearInterval(keepAlive);
  }
  const single = new HeadLocator({ fetch: fakeFetch(() => ({ status: 404, body: { message: 'Route GET:/api/cluster not found' } })).fetchFn });
  await single.refresh(A);
  assert.equal(single.settled, true, 'a single PS (404) is settled');
  assert.equal(single.view, undefined);
});

test('a node that refused as not the head at epoch E and is named head above E is taken at once, without a long poll', async () => {
  // The worker reached B before B learnt the new epoch: B refused at epoch 3 naming the dead A.
  const { fetchFn, calls } = fakeFetch((node) => (node === A ? 'refused' : node === B ? info(4, B, [B, C]) : info(4, B, [B, C])));
  const locator = new HeadLocator({ fetch: fetchFn, waitMs: 4000 });
  locator.absorb(info(3, A, [A, B, C]), A);
  locator.suspect(B, A, 3);
  assert.equal(await locator.locate(B), B);
  assert.ok(calls.every((c) => c.wait === undefined), 'no long poll');
  // Without the refusal's epoch (a dropped socket), the same answers mean B failed at its own epoch: wait.
  const again = fakeFetch((node, wait) => (node === A ? 'refused' : wait ? info(5, C, [C]) : info(4, B, [B, C])));
  const other = new HeadLocator({ fetch: again.fetchFn });
  other.absorb(info(4, B, [A, B, C]), B);
  other.suspect(B);
  assert.equal(await other.locate(B), C);
  assert.ok(again.calls.some((c) => c.wait?.after === 4), 'the long poll asked for the epoch after 4');
});

test('a head named by the others that did not answer itself is waited out, not moved to', async () => {
  // B refused at epoch 3 naming A; A is dead and B, C still name it: wait for the next epoch.
  const { fetchFn, calls } = fakeFetch((node, wait) => (node === A ? 'refused' : wait ? (node === C ? info(4, B, [B, C]) : 'silent') : info(3, A, [A, B, C])));
  const locator = new HeadLocator({ fetch: fetchFn, waitTimeoutMs: 2000 });
  locator.absorb(info(3, A, [A, B, C]), B);
  locator.suspect(B, A, 3);
  const keepAlive = setInterval(() => {}, 1000);
  try {
    assert.equal(await locator.locate(B), B);
  } finally {
    clearInterval(keepAlive);
  }
  assert.ok(calls.some((c) => c.node === C && c.wait?.after === 3), 'C was long-polled for the epoch after 3');
  assert.equal(locator.view!.epoch, 4);
});
