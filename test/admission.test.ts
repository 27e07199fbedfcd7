/**
 * Admission control with real sockets: the join rate and the sessions per address are refused
 * with their catalogued 429 and Retry-After, a full PS with a retryable 503, and a good worker
 * that was training before the flood is still training afterwards, with the same id and its
 * exactly-once record intact. Also the scope rules: a report cannot overwrite what the PS
 * derives, CORS allows only the origins it should, and tokens never reach a logged URL.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERRORS } from '../shared/errors.ts';
import { Flag } from '../shared/protocol.ts';
import { redactUrl } from '../server/app.ts';
import { until } from './helpers.ts';
import { RawWorkerSocket, join, mustJoin, postJson, pullHttp, pushHttp, rejectedCount, startTestPs, type TestPs } from './abuse-tools.ts';

describe('admission: join rate, sessions per address, a full PS', () => {
  let ps: TestPs;
  before(async () => {
    ps = await startTestPs({ joinRate: 8, maxSessionsPerAddress: 3, maxWorkers: 6, trustProxy: 'on', refusalDelayMs: 150 });
  });
  after(() => ps?.close());

  test('a flood of joins is refused with PS_RATE_LIMITED and Retry-After; the good worker keeps training', async () => {
    const good = await mustJoin(ps.url, { from: '10.0.0.1' });
    const v0 = (await pullHttp(ps.url, good)).version;
    const first = await pushHttp(ps.url, good, 1, v0);
    assert.equal(first.status, 200);

    // One address looping joins (its sessions leave at once, so only the rate limit bites).
    const answers = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      const res = await join(ps.url, { from: '10.0.0.66' });
      if (res.status === 200) await postJson(ps.url, '/api/leave', {}, { authorization: `Bearer ${res.body.token}` });
      answers.push({ ...res, ms: performance.now() - t });
    }
    const ok = answers.filter((a) => a.status === 200).length;
    const limited = answers.filter((a) => a.status === 429);
    assert.equal(ok, 8, 'exactly --join-rate joins a minute pass');
    assert.equal(limited.length, 12);
    for (const a of limited) {
      assert.equal(a.body.code, 'PS_RATE_LIMITED');
      assert.equal((a.body as unknown as { retryable: boolean }).retryable, true);
      assert.ok(Number(a.headers.get('retry-after')) > 0, 'Retry-After says when');
      assert.ok(a.ms >= 140, `a refusal is held for --refusal-delay-ms (tarpit): ${a.ms.toFixed(0)} ms`);
    }
    assert.equal(ERRORS.PS_RATE_LIMITED.http, 429);
    assert.ok((await rejectedCount(ps.built, 'PS_RATE_LIMITED')) >= 12, 'refusals are counted by code');

    // The good worker: same session, same id, its record mark intact, next push applied once.
    const { version, record } = await pullHttp(ps.url, good);
    assert.deepEqual(record.find((r) => r.workerId === good.workerId), { workerId: good.workerId, seq: 1, version: first.version });
    const second = await pushHttp(ps.url, good, 2, version);
    assert.equal(second.status, 200);
    assert.equal(second.version, version + 1);
    const retry = await pushHttp(ps.url, good, 2, version);
    assert.equal(retry.flags! & Flag.DUPLICATE, Flag.DUPLICATE, 'a retry is acknowledged, not applied again');
    assert.equal(ps.built.ps.sessions.get(good.workerId)?.token, good.token);
  });

  test('one address holds at most --sessions-per-address sessions; others still join; a full PS refuses retryably', async () => {
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await mustJoin(ps.url, { from: '10.0.0.2' }));
    const refused = await join(ps.url, { from: '10.0.0.2' });
    assert.equal(refused.status, 429);
    assert.equal(refused.body.code, 'PS_TOO_MANY_SESSIONS');
    assert.ok(Number(refused.headers.get('retry-after')) > 0);
    // Another address is not affected; a session that ends frees its slot.
    const other = await mustJoin(ps.url, { from: '10.0.0.3' });
    await postJson(ps.url, '/api/leave', {}, { authorization: `Bearer ${held[0]!.token}` });
    held[0] = await mustJoin(ps.url, { from: '10.0.0.2' });
    // 1 good + 3 + 1 = 5 of 6: one more fits, then the PS is full.
    await mustJoin(ps.url, { from: '10.0.0.4' });
    const full = await join(ps.url, { from: '10.0.0.5' });
    assert.equal(full.status, 503);
    assert.equal(full.body.code, 'PS_FULL');
    assert.equal((full.body as unknown as { retryable: boolean }).retryable, true);
    assert.ok(Number(full.headers.get('retry-after')) > 0);
    assert.ok(ps.built.ps.sessions.addresses <= ps.built.ps.sessions.size, 'the per-address map is bounded by the sessions');
    void other;
  });
});

describe('scope: reports, CORS, logged URLs', () => {
  let ps: TestPs;
  before(async () => {
    ps = await startTestPs({ corsOrigin: 'http://allowed.example' });
  });
  after(() => ps?.close());

  test('a report cannot overwrite the id, shards, pushes or session state the PS derives', async () => {
    const w = await mustJoin(ps.url);
    const forged = await postJson(ps.url, '/api/report', { steps: 3, id: 1, shards: [99], pushes: 1e9, lastStaleness: 7 }, { authorization: `Bearer ${w.token}` });
    assert.equal(forged.status, 400, 'fields outside the report are refused');
    assert.equal(forged.body.code, 'PS_BAD_REQUEST');
    const res = await postJson(ps.url, '/api/report', { steps: 3, state: 'connected' }, { authorization: `Bearer ${w.token}` });
    assert.equal(res.status, 200);
    const status = (await (await fetch(new URL('/api/status', ps.url))).json()) as { workers: Record<string, unknown>[] };
    const me = status.workers.find((x) => x.id === w.workerId)!;
    assert.ok(me, 'the worker is listed under its own id');
    assert.equal(me.steps, 3);
    assert.equal(me.state, 'connected', 'the worker\'s own word on its training state');
    assert.equal(me.sessionState, 'joined', 'the PS\'s view of the session: it never opened a socket');
    assert.deepEqual(me.shards, w.shards);
    assert.equal(me.pushes, 0);
    assert.equal(me.lastStaleness, 0);
    assert.ok(!status.workers.some((x) => x.id === 1));
  });

  test('CORS: a listed origin is allowed, any other is not, the admin API never', async () => {
    const get = (origin: string, path = '/api/status') => fetch(new URL(path, ps.url), { headers: { origin } });
    assert.equal((await get('http://allowed.example')).headers.get('access-control-allow-origin'), 'http://allowed.example');
    assert.equal((await get('http://evil.example')).headers.get('access-control-allow-origin'), null);
    const plain = await startTestPs();
    try {
      const res = await fetch(new URL('/api/status', plain.url), { headers: { origin: 'http://evil.example' } });
      assert.equal(res.headers.get('access-control-allow-origin'), null, 'by default only the PS\'s own origin');
    } finally {
      await plain.close();
    }
  });

  test('session tokens are cut out of logged URLs', async () => {
    const lines: string[] = [];
    const logged = await startTestPs({ logger: { level: 'info', stream: { write: (line: string) => void lines.push(line) } } });
    try {
      const w = await mustJoin(logged.url);
      const socket = new RawWorkerSocket(logged.url, w);
      await socket.opened();
      socket.close();
      await until(() => lines.some((l) => l.includes('/ws?token=')), 'the socket\'s request to be logged', 5000, 20);
      assert.ok(!lines.some((l) => l.includes(w.token)), 'no log line holds the token');
    } finally {
      await logged.close();
    }
    assert.equal(redactUrl('/ws?token=abcdef0123'), '/ws?token=[redacted]');
    assert.equal(redactUrl('/ws?x=1&token=abc&y=2'), '/ws?x=1&token=[redacted]&y=2');
    assert.equal(redactUrl('/api/status'), '/api/status');
  });
});
