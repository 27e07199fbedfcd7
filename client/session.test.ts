/**
 * The PS session against a scripted fetch: a PS's error comes back as the same catalogued
 * error with its details, a malformed answer is WORKER_BAD_RESPONSE and is not kept, and a
 * rejoin presents the worker's id. (The real PS is exercised by loop.test.ts and test/.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JoinResponse } from '../shared/api.ts';
import { TabswarmError } from '../shared/errors.ts';
import { PsSession } from './session.ts';

const join: JoinResponse = {
  workerId: 7, idTag: 'a'.repeat(64), token: 't0k3n', model: 'mnist-mlp', lr: 0.1, bufferMode: 'frozen', lastSeq: 41,
  layoutHash: 123, layoutSize: 50890, batch: 32, pullEvery: 1, localSteps: 1, dataset: 'synthetic', dataKey: 'k', shardCount: 4, shards: [0, 1], wsPath: '/ws', codecs: ['float32', 'f16'],
};

function scripted(answer: (body: unknown) => { status: number; body: unknown }) {
  const sent: unknown[] = [];
  const fetchFn = (async (_input: string | URL | Request, init?: RequestInit) => {
    assert.ok(init?.signal instanceof AbortSignal, 'every request has a timeout');
    const body: unknown = JSON.parse(String(init?.body ?? 'null'));
    sent.push(body);
    const a = answer(body);
    return new Response(JSON.stringify(a.body), { status: a.status });
  }) as typeof fetch;
  return { fetchFn, sent };
}

test('join: the answer is checked and kept; a rejoin resumes under the same id', async () => {
  const { fetchFn, sent } = scripted(() => ({ status: 200, body: join }));
  const session = new PsSession({ baseUrl: 'http://127.0.0.1:8080', fetch: fetchFn, userAgent: 'test' });
  assert.equal(session.url, 'http://127.0.0.1:8080/');
  assert.deepEqual(await session.join(), join);
  assert.equal(session.info!.workerId, 7);
  assert.equal('token' in session.info!, false, 'the identity kept for reloads has no token');
  assert.equal(session.socketUrl(), 'ws://127.0.0.1:8080/ws?token=t0k3n');
  session.end();
  assert.equal(session.current, undefined);
  await session.join();
  assert.deepEqual(sent, [{ userAgent: 'test' }, { userAgent: 'test', resume: { workerId: 7, idTag: 'a'.repeat(64) } }]);
  session.forgetIdentity();
  await session.join();
  assert.deepEqual(sent.at(-1), { userAgent: 'test' }, 'a forgotten identity joins as a new worker');
});

test('join: a catalogued error comes back whole, details included; anything else is an outage', async () => {
  const notHead = new TabswarmError('CHAIN_NOT_HEAD', { node: 'n1', epoch: 3, head: 'http://127.0.0.1:9001/' });
  const session = new PsSession({ baseUrl: 'http://127.0.0.1:9002/', fetch: scripted(() => ({ status: 421, body: notHead.toJSON() })).fetchFn, userAgent: 'test' });
  await assert.rejects(session.join(), (e: unknown) => e instanceof TabswarmError && e.code === 'CHAIN_NOT_HEAD' && e.details.head === 'http://127.0.0.1:9001/' && e.message === notHead.message);
  const proxy = new PsSession({ baseUrl: 'http://127.0.0.1:9002/', fetch: scripted(() => ({ status: 502, body: '<html>bad gateway</html>' })).fetchFn, userAgent: 'test' });
  await assert.rejects(proxy.join(), (e: unknown) => e instanceof TabswarmError && e.code === 'WORKER_DISCONNECTED' && e.details.code === 502);
});

test('a malformed answer is WORKER_BAD_RESPONSE and nothing of it is kept', async () => {
  const session = new PsSession({ baseUrl: 'http://127.0.0.1:8080/', fetch: scripted(() => ({ status: 200, body: { ...join, layoutSize: -1 } })).fetchFn, userAgent: 'test' });
  await assert.rejects(session.join(), (e: unknown) => e instanceof TabswarmError && e.code === 'WORKER_BAD_RESPONSE' && String(e.details.detail).includes('layoutSize'));
  assert.equal(session.current, undefined);
  assert.equal(session.info, undefined);
  const ok = scripted((body) => (body && typeof body === 'object' && 'steps' in body ? { status: 200, body: { shards: 'all' } } : { status: 200, body: join }));
  const reporting = new PsSession({ baseUrl: 'http://127.0.0.1:8080/', fetch: ok.fetchFn, userAgent: 'test' });
  await reporting.join();
  const status = { state: 'connected', workerId: 7, backend: 'cpu', model: 'mnist-mlp', bufferMode: 'frozen', steps: 3, examplesPerSec: 1, serverVersion: 3, loss: NaN, shards: [0], examples: 10, numTensors: 4, buffered: 0, bufferedSince: 0, outageSteps: 0, localDrift: 0, lastFlush: undefined, restored: false, restoredBuffered: 0, lastError: '', psUrl: '', failovers: 0 } as const;
  await assert.rejects(reporting.report({ ...status, shards: [0] }), (e: unknown) => e instanceof TabswarmError && e.code === 'WORKER_BAD_RESPONSE');
  assert.equal('loss' in (ok.sent.at(-1) as object), false, 'a NaN loss is left out of the report');
});
