/**
 * The PS's JSON answers match the schemas shared/api.ts declares for them, checked the way a
 * worker checks them (`parseAs`), so a worker never refuses a correct answer; and requests
 * outside the declared bounds are refused with PS_BAD_REQUEST and counted once, by code.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  ControlMessageSchema, FlushesResponseSchema, JoinResponseSchema, LeaveResponseSchema, MeshConfigSchema, ModelInfoSchema, ReportResponseSchema,
  SeriesResponseSchema, StatusResponseSchema,
} from '../../shared/api.ts';
import { parseAs } from '../../shared/validate.ts';
import { buildServer, type Built } from '../app.ts';
import { loadDataset } from '../data.ts';

const data = loadDataset('synthetic');

describe('PS JSON API against shared/api.ts', () => {
  let built: Built;
  let url: string;

  before(async () => {
    built = await buildServer({ model: 'mnist-logreg', data, dataset: 'synthetic', evalEveryMs: 0, meshPeers: 0 });
    url = await built.app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await built?.app.close();
  });

  const get = async (path: string, token?: string): Promise<unknown> => {
    const res = await fetch(new URL(path, url), { headers: token ? { authorization: `Bearer ${token}` } : {} });
    assert.equal(res.status, 200, `GET ${path}`);
    return res.json();
  };
  const post = (path: string, body: unknown, token?: string): Promise<Response> => fetch(new URL(path, url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const rejected = async (code: string): Promise<number> => {
    const text = await (await fetch(new URL('/metrics', url))).text();
    const m = new RegExp(`^tabswarm_frames_rejected_total\\{reason="${code}",transport="http"\\} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  test('every answer a worker reads parses under its schema', async () => {
    const joinRes = await post('/api/join', { userAgent: 'api-test' });
    assert.equal(joinRes.status, 200);
    const joined = parseAs(JoinResponseSchema, await joinRes.json(), 'POST /api/join');
    assert.equal(joined.lastSeq, 0);

    // The socket's first message is the hello.
    const ws = new WebSocket(new URL(`${joined.wsPath}?token=${joined.token}`, url.replace('http', 'ws')));
    const hello = await new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no hello within 5 s')), 5000);
      ws.once('message', (data: Buffer) => (clearTimeout(timer), resolve(JSON.parse(data.toString()))));
      ws.once('error', reject);
    });
    assert.equal(parseAs(ControlMessageSchema, hello, 'hello').type, 'hello');
    ws.close();

    const report = await post('/api/report', { backend: 'cpu', steps: 3, state: 'connected', lastFlush: { count: 1, version: 2, duplicate: false, at: Date.now() } }, joined.token);
    assert.equal(report.status, 200);
    assert.deepEqual(parseAs(ReportResponseSchema, await report.json(), 'POST /api/report').shards, joined.shards);

    const status = parseAs(StatusResponseSchema, await get('/api/status'), 'GET /api/status');
    assert.equal(status.workers[0]?.backend, 'cpu', 'the report is spread over the worker');
    parseAs(ModelInfoSchema, await get('/api/model'), 'GET /api/model');
    assert.equal(parseAs(MeshConfigSchema, await get('/api/mesh'), 'GET /api/mesh').enabled, false);
    parseAs(SeriesResponseSchema, await get('/api/series'), 'GET /api/series');
    parseAs(FlushesResponseSchema, await get('/api/flushes'), 'GET /api/flushes');

    const leave = await post('/api/leave', {}, joined.token);
    assert.equal(leave.status, 200);
    assert.deepEqual(parseAs(LeaveResponseSchema, await leave.json(), 'POST /api/leave'), { ok: true });
  });

  test('requests outside the declared bounds are PS_BAD_REQUEST, each counted once', async () => {
    const joined = parseAs(JoinResponseSchema, await (await post('/api/join', null)).json(), 'POST /api/join (no body)');
    const before = await rejected('PS_BAD_REQUEST');
    const bad: [string, Promise<Response>][] = [
      ['a long user agent', post('/api/join', { userAgent: 'x'.repeat(1001) })],
      ['a malformed resume tag', post('/api/join', { resume: { workerId: 1, idTag: 'nope' } })],
      ['an unknown join field', post('/api/join', { admin: true })],
      ['a long backend name', post('/api/report', { backend: 'x'.repeat(33) }, joined.token)],
      ['a negative step count', post('/api/report', { steps: -1 }, joined.token)],
      ['a fractional buffer count', post('/api/report', { buffered: 1.5 }, joined.token)],
      ['an unknown report field', post('/api/report', { shards: [1] }, joined.token)],
    ];
    for (const [what, pending] of bad) {
      const res = await pending;
      assert.equal(res.status, 400, what);
      assert.equal(((await res.json()) as { code: string }).code, 'PS_BAD_REQUEST', what);
    }
    assert.equal(await rejected('PS_BAD_REQUEST'), before + bad.length, 'each refusal counted once');

    // A refusal thrown by a route (not a schema) is counted by the same error handler, once.
    const noSession = await rejected('PS_NO_SESSION');
    const res = await post('/api/report', {}, 'f'.repeat(32));
    assert.equal(res.status, 401);
    assert.equal(await rejected('PS_NO_SESSION'), noSession + 1);
  });
});
