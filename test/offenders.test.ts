/**
 * Pace limits, the rate-bound count claim and repeat offenders (server/ps/pace.ts), against a
 * real PS over real sockets: each limit refuses with its catalogued code and close code, a
 * refused push is answered exactly once and applied once when resent, and a session clipped
 * past --offender-strikes is disconnected with PS_OFFENDER after its ack, its shards go to the
 * others, and its id and address are kept out (PS_KEPT_OUT, Retry-After), shown in /metrics and
 * /api/status.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { ConsoleState } from '../shared/admin-api.ts';
import type { JoinResponse } from '../shared/api.ts';
import { ERRORS } from '../shared/errors.ts';
import { Flag, MsgType, decodeFrame, encodeFrame } from '../shared/protocol.ts';
import { RawWorkerSocket, join, mustJoin, rejectedCount, startTestPs, type TestPs } from './abuse-tools.ts';
import { until } from './helpers.ts';

const ADMIN_TOKEN = 'offenders-test-admin-token-0123';
const opened: TestPs[] = [];
const sockets: RawWorkerSocket[] = [];
after(async () => {
  for (const s of sockets) s.close();
  for (const p of opened.reverse()) await p.close();
});

async function ps(opts: Parameters<typeof startTestPs>[0]): Promise<TestPs> {
  const p = await startTestPs(opts);
  opened.push(p);
  return p;
}

/** A socket past its hello. */
async function socket(p: TestPs, j: JoinResponse): Promise<RawWorkerSocket> {
  const s = new RawWorkerSocket(p.url, j);
  sockets.push(s);
  await s.opened();
  const hello = await s.next();
  assert.equal(typeof hello, 'string');
  return s;
}

function pushFrame(j: JoinResponse, seq: number, opts: { value?: number; count?: number } = {}): Uint8Array {
  const grad = new Float32Array(j.layoutSize).fill(opts.value ?? 1e-4);
  return encodeFrame({ type: MsgType.PUSH, layoutHash: j.layoutHash, modelVersion: 0, workerId: j.workerId, seq, count: opts.count ?? 1 }, grad);
}

/** The next binary reply (skipping text control messages) as an ack: its seq and flags. */
async function ack(s: RawWorkerSocket, j: JoinResponse): Promise<{ seq: number; flags: number; version: number }> {
  for (;;) {
    const m = await s.next(10000);
    if (typeof m === 'string') continue;
    const f = decodeFrame(new Uint8Array(m), { layoutHash: j.layoutHash, layoutSize: j.layoutSize });
    assert.equal(f.type, MsgType.ACK);
    return { seq: f.seq, flags: f.flags, version: f.modelVersion };
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

describe('pace: pushes per second and in flight per session', () => {
  test('past --push-rate a push is refused with PS_PUSH_RATE (4009, retryable); resent later it is applied once', async () => {
    const p = await ps({ pushRate: 2, offenderStrikes: 0 });
    const j = await mustJoin(p.url);
    const s = await socket(p, j);
    for (const seq of [1, 2]) {
      s.ws.send(pushFrame(j, seq));
      assert.equal((await ack(s, j)).seq, seq);
    }
    s.ws.send(pushFrame(j, 3)); // the bucket (2 per second, a burst of 2) is empty now
    const closed = await withTimeout(s.closed, 5000, 'close');
    assert.equal(closed.code, ERRORS.PS_PUSH_RATE.wsClose, closed.reason);
    assert.equal(ERRORS.PS_PUSH_RATE.retryable, true);
    assert.match(closed.reason, /^PS_PUSH_RATE/);
    assert.equal(await rejectedCount(p.built, 'PS_PUSH_RATE'), 1);
    assert.equal(p.built.ps.store.version, 2, 'the refused push was not applied');

    // The worker reconnects and resends once the bucket holds a token again (half a second at
    // 2 per second; waited as a lower bound): one ack, one apply.
    const refusedAt = Date.now();
    const again = await socket(p, j);
    await until(() => Date.now() - refusedAt > 600 || undefined, 'a token to accrue', 2000, 50);
    again.ws.send(pushFrame(j, 3));
    const a = await ack(again, j);
    assert.equal(a.seq, 3);
    assert.equal(a.flags & Flag.DUPLICATE, 0, 'applied now, not before');
    assert.equal(p.built.ps.store.version, 3);

    // Over HTTP the same refusal is a 429 with the code.
    const h = await mustJoin(p.url);
    const results = [] as number[];
    for (let seq = 1; seq <= 4; seq++) {
      const res = await fetch(new URL('/api/push', p.url), { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${h.token}` }, body: new Blob([pushFrame(h, seq) as Uint8Array<ArrayBuffer>]), signal: AbortSignal.timeout(10000) });
      results.push(res.status);
      if (res.status !== 200) assert.equal(((await res.json()) as { code: string }).code, 'PS_PUSH_RATE');
    }
    assert.ok(results.includes(429), `statuses ${results.join(' ')}`);
  });

  test('past --pushes-in-flight a push is refused with PS_PUSHES_IN_FLIGHT (4013); the ones before it are acked exactly once', async () => {
    const p = await ps({ pushesInFlight: 2, offenderStrikes: 0 });
    const j = await mustJoin(p.url);
    const s = await socket(p, j);
    // A held store (as a sync checkpoint holds it) keeps the first pushes in flight.
    const release = p.built.ps.store.hold();
    for (const seq of [1, 2, 3]) s.ws.send(pushFrame(j, seq));
    const closed = await withTimeout(s.closed, 5000, 'close');
    assert.equal(closed.code, ERRORS.PS_PUSHES_IN_FLIGHT.wsClose, closed.reason);
    assert.match(closed.reason, /^PS_PUSHES_IN_FLIGHT/);
    release();
    // The push being handled when the socket closed is applied; the one queued behind it is
    // dropped with the socket (neither applied nor acknowledged), as any frame after a close.
    await until(() => p.built.ps.store.version === 1 || undefined, 'the push in hand applied', 5000);
    assert.equal(await rejectedCount(p.built, 'PS_PUSHES_IN_FLIGHT'), 1);
    // Resent: the applied one is acknowledged as a duplicate, the others applied once each.
    const again = await socket(p, j);
    again.ws.send(pushFrame(j, 1));
    const first = await ack(again, j);
    assert.equal(first.seq, 1);
    assert.notEqual(first.flags & Flag.DUPLICATE, 0, 'acknowledged as already applied');
    for (const seq of [2, 3]) {
      again.ws.send(pushFrame(j, seq));
      const a = await ack(again, j);
      assert.equal(a.seq, seq);
      assert.equal(a.flags & Flag.DUPLICATE, 0);
    }
    assert.equal(p.built.ps.store.version, 3);
  });
});

test('a claim of more gradients than the credit --max-count-rate earns is refused with PS_COUNT_TOO_LARGE', async () => {
  const p = await ps({ maxCountRate: 1, maxCount: 1000, offenderStrikes: 0 });
  const j = await mustJoin(p.url);
  const s = await socket(p, j);
  // No push of this worker yet: it starts with the whole --max-count (a flush may hold an outage
  // this PS never saw); the outbox push and the flush that follow an outage share it.
  s.ws.send(pushFrame(j, 1, { count: 1 }));
  assert.equal((await ack(s, j)).seq, 1);
  s.ws.send(pushFrame(j, 2, { count: 999 }));
  assert.equal((await ack(s, j)).seq, 2);
  s.ws.send(pushFrame(j, 3, { count: 20 })); // the credit is spent: within the slack (64) only
  assert.equal((await ack(s, j)).seq, 3);
  s.ws.send(pushFrame(j, 4, { count: 500 })); // 1 per second x well under a minute + 64 < 500 < --max-count
  const closed = await withTimeout(s.closed, 5000, 'close');
  assert.equal(closed.code, ERRORS.PS_COUNT_TOO_LARGE.wsClose, closed.reason);
  assert.match(closed.reason, /claims 500 gradients; at most 6\d are accepted/, 'refused by the credit, not --max-count');
  assert.equal(p.built.ps.store.version, 3);
});

test('a session clipped past --offender-strikes is disconnected with PS_OFFENDER after its ack, its shards move, and it is kept out', async () => {
  const p = await ps({ offenderStrikes: 3, offenderWindow: 4, keepOutMs: 60000, trustProxy: 'on', shards: 4, adminToken: ADMIN_TOKEN, clipWindow: 8 });
  const honest = await mustJoin(p.url, { from: '10.0.0.1' });
  const bad = await mustJoin(p.url, { from: '10.0.0.9' });
  const hs = await socket(p, honest);
  const s = await socket(p, bad);
  assert.ok(p.built.ps.sessions.get(bad.workerId)!.shards.length > 0);
  // Honest pushes first: clips during the aggregator's warm-up (--clip-window pushes) are no strikes.
  for (let seq = 1; seq <= 8; seq++) {
    hs.ws.send(pushFrame(honest, seq));
    assert.equal((await ack(hs, honest)).seq, seq);
  }
  for (let seq = 1; seq <= 3; seq++) {
    s.ws.send(pushFrame(bad, seq, { value: 1e6 })); // far past the clipping radius
    const a = await ack(s, bad);
    assert.equal(a.seq, seq, 'the push that tips it is acknowledged first');
  }
  const closed = await withTimeout(s.closed, 5000, 'close');
  assert.equal(closed.code, ERRORS.PS_OFFENDER.wsClose, closed.reason);
  assert.match(closed.reason, /^PS_OFFENDER/);
  assert.equal(p.built.ps.sessions.get(bad.workerId), undefined, 'the session ended');
  assert.equal(p.built.ps.sessions.get(honest.workerId)!.shards.length, 4, 'its shards went to the honest worker');
  const assign = await withTimeout((async () => {
    for (;;) {
      const m = await hs.next(5000);
      if (typeof m === 'string' && JSON.parse(m).type === 'assign') return JSON.parse(m) as { shards: number[] };
    }
  })(), 6000, 'assign message');
  assert.equal(assign.shards.length, 4);

  // Kept out: its address and, resuming, its id; other addresses still join.
  const again = await join(p.url, { from: '10.0.0.9' });
  assert.equal(again.status, 429);
  assert.equal(again.body.code, 'PS_KEPT_OUT');
  assert.ok(Number(again.headers.get('retry-after')) > 0);
  const resumed = await join(p.url, { from: '10.0.0.7', resume: { workerId: bad.workerId, idTag: bad.idTag } });
  assert.equal(resumed.body.code, 'PS_KEPT_OUT');
  assert.equal((await join(p.url, { from: '10.0.0.2' })).status, 200);

  const metrics = await (await fetch(new URL('/metrics', p.url))).text();
  assert.match(metrics, /tabswarm_offenders_total\{reason="clipped"\} 1/);
  assert.match(metrics, /tabswarm_kept_out 1/);
  // Past the warm-up, each of its pushes far past the radius was also cut by clip's memory of
  // excess (--clip-memory); the honest worker's, all within the warm-up, were not.
  assert.match(metrics, /tabswarm_pushes_excess_limited_total 3\n/);
  const status = (await (await fetch(new URL('/api/status', p.url))).json()) as { robustness?: { keptOut: { workerId: number; reason: string }[] } };
  assert.deepEqual(status.robustness?.keptOut.map((k) => [k.workerId, k.reason]), [[bad.workerId, 'clipped']]);
  // The admin console's snapshot shows it, with the reason.
  const seen = await until(async () => {
    const res = await fetch(new URL('/api/admin/console', p.url), { headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, signal: AbortSignal.timeout(5000) });
    const state = (await res.json()) as ConsoleState;
    return state.snapshot?.robustness?.keptOut.length ? state.snapshot.robustness : undefined;
  }, 'the console to show the kept-out worker', 10000, 200);
  assert.deepEqual(seen.keptOut.map((k) => [k.workerId, k.address, k.reason]), [[bad.workerId, '10.0.0.9', 'clipped']]);
  assert.equal(seen.offenders, 1);
  assert.ok(seen.clipped >= 3);
  assert.equal(seen.excessLimited, 3);
});

test('a lone attacker that has taken the clipping scale over is no longer clipped, but each step the output guard refuses is a strike (reason guard)', async () => {
  const p = await ps({ offenderStrikes: 3, offenderWindow: 4, keepOutMs: 60000, clipWindow: 8 });
  const bad = await mustJoin(p.url);
  const s = await socket(p, bad);
  // Alone, its norms make up the whole median: past the warm-up its pushes are within the radius.
  let seq = 0;
  const closed = withTimeout(s.closed, 20000, 'close');
  let acked = 0;
  for (;;) {
    s.ws.send(pushFrame(bad, ++seq, { value: 1e6 }));
    const a = await Promise.race([ack(s, bad).then((x) => x), closed.then(() => undefined)]);
    if (!a) break;
    assert.equal(a.seq, seq);
    acked += 1;
    assert.ok(seq < 40, 'disconnected within the warm-up and a window of pushes');
  }
  const c = await closed;
  assert.equal(c.code, ERRORS.PS_OFFENDER.wsClose, c.reason);
  const robustness = p.built.ps.robustness();
  assert.ok(robustness.versionsRefused >= 3, `the guard refused its steps: ${JSON.stringify(robustness)}`);
  assert.ok(robustness.radius > 1e6, 'the radius followed its norms: clipping alone would not have caught it');
  assert.deepEqual(robustness.keptOut.map((k) => [k.workerId, k.reason]), [[bad.workerId, 'guard']]);
  assert.ok(acked >= 3, 'every push before the close was acknowledged');
  const metrics = await (await fetch(new URL('/metrics', p.url))).text();
  assert.match(metrics, /tabswarm_offenders_total\{reason="guard"\} 1/);
  // The weights are the last good ones: no step of its full size (lr × 1e6 × √7850) was applied.
  const norm = Math.hypot(...p.built.ps.store.weights);
  assert.ok(Number.isFinite(norm) && norm < 1e3, `weights' norm ${norm}`);
});
