/**
 * The stateless PS's trust and exactly-once rules at the protocol level, against real PS
 * processes sharing a secret: a copy of the weights travels with its applied-push record, so a
 * PS that adopts it never re-applies a flush it contains; a replayed flush applies nothing; a
 * forged or altered copy is refused, counted, and changes nothing; a forged id is refused.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import type { ControlMessage, JoinResponse } from '../shared/api.ts';
import { ERRORS } from '../shared/errors.ts';
import { Flag, HEADER_BYTES, MsgType, TAG_BYTES, decodeFrame, encodeFrame, retypeFrame, type Frame } from '../shared/protocol.ts';
import { startPs, until, type PsProc, type Status } from './helpers.ts';

const SECRET = 'adoption-test-secret-0123456789ab';
const opened: PsProc[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

/**
 * The adoption window opens when the first worker connects and closes on a timer, so what must
 * happen inside it is bounded by ADOPT_WINDOW_MS, not by how fast a loaded machine is: a PS
 * whose offers a test checks gets a window far longer than those few round trips take (and the
 * test asserts that the window was still open when they were made); a PS that only has to start
 * fresh gets a short one, since no offer is expected in it.
 */
const ADOPT_WINDOW_MS = 10_000;
const FRESH_WINDOW_MS = 300;

async function ps(secret = SECRET, windowMs = ADOPT_WINDOW_MS): Promise<PsProc> {
  const p = await startPs(['--strategy', 'stateless', '--secret', secret, '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--adopt-window-ms', String(windowMs)]);
  opened.push(p);
  return p;
}

/** A PS that no worker offers a copy to: it only has to reach serving, fresh. */
const freshPs = (secret = SECRET) => ps(secret, FRESH_WINDOW_MS);

/** Fails with the reason, rather than a confusing later assertion, if the window closed too soon. */
async function stillAdopting(p: PsProc, what: string): Promise<void> {
  const s = await p.get<Status>('/api/status');
  assert.equal(s.strategy.phase, 'adopting', `${what}: the ${ADOPT_WINDOW_MS} ms adoption window is still open (offers so far: ${JSON.stringify(s.strategy.offers)})`);
}

async function join(p: PsProc, resume?: { workerId: number; idTag: string }): Promise<JoinResponse> {
  const res = await fetch(new URL('/api/join', p.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(resume ? { resume } : {}) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as JoinResponse;
}

interface Conn {
  hello: ControlMessage;
  send(bytes: Uint8Array): Promise<Frame>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

async function connect(p: PsProc, j: JoinResponse): Promise<Conn> {
  const ws = new WebSocket(`${p.url.replace('http', 'ws')}ws?token=${j.token}`);
  const waiting: ((f: Frame) => void)[] = [];
  let hello!: (m: ControlMessage) => void;
  const gotHello = new Promise<ControlMessage>((r) => (hello = r));
  ws.on('message', (data: Buffer, binary) => {
    if (!binary) return hello(JSON.parse(data.toString()) as ControlMessage);
    waiting.shift()?.(decodeFrame(new Uint8Array(data), { layoutHash: j.layoutHash, layoutSize: j.layoutSize }));
  });
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  await new Promise((r, e) => ws.once('open', r).once('error', e));
  return {
    hello: await gotHello,
    send: (bytes) => new Promise((r) => { waiting.push(r); ws.send(bytes); }),
    closed,
    close: () => ws.close(),
  };
}

const pull = (j: JoinResponse) => encodeFrame({ type: MsgType.PULL, layoutHash: j.layoutHash, modelVersion: 0, workerId: j.workerId, seq: 0, count: 0 });
const flush = (j: JoinResponse, seq: number, count: number, value: number) =>
  encodeFrame({ type: MsgType.PUSH, layoutHash: j.layoutHash, modelVersion: 0, workerId: j.workerId, seq, count, flags: Flag.FLUSH }, new Float32Array(j.layoutSize).fill(value));

/** The raw bytes of a WEIGHTS frame as the worker received them (what it would offer). */
async function pullRaw(c: Conn, j: JoinResponse): Promise<{ frame: Frame; bytes: Uint8Array }> {
  const f = await c.send(pull(j));
  const bytes = encodeFrame({ type: MsgType.WEIGHTS, layoutHash: f.layoutHash, modelVersion: f.modelVersion, workerId: 0, seq: 0, count: 0 }, f.payload, f.meta);
  return { frame: f, bytes };
}

async function serving(p: PsProc): Promise<Status> {
  return until(async () => {
    const s = await p.get<Status>('/api/status');
    return s.strategy.phase === 'serving' ? s : undefined;
  }, 'the PS to finish adopting', ADOPT_WINDOW_MS + 30_000, 50);
}

test('a copy carries its applied record: the adopting PS acks a replayed flush as a duplicate and applies nothing', async () => {
  const a = await freshPs();
  const w = await join(a);
  const ca = await connect(a, w);
  assert.deepEqual(ca.hello, { type: 'hello', version: 0, wantsWeights: true });
  await serving(a); // no copy offered: PS A starts fresh
  assert.equal((await a.get<Status>('/api/status')).strategy.fresh, true);
  for (let seq = 1; seq <= 3; seq++) assert.equal((await ca.send(flush(w, seq, 4, 0.01 * seq))).flags & Flag.DUPLICATE, 0);
  const copy = await pullRaw(ca, w);
  assert.equal(copy.frame.modelVersion, 3);
  assert.deepEqual(copy.frame.meta!.record, [{ workerId: w.workerId, seq: 3, version: 3 }]);
  await a.kill('SIGKILL');

  // PS B (same secret): the worker rejoins under its id and offers the copy it holds.
  const b = await ps();
  const w2 = await join(b, { workerId: w.workerId, idTag: w.idTag });
  assert.equal(w2.workerId, w.workerId);
  const cb = await connect(b, w2);
  assert.equal((cb.hello as { wantsWeights: boolean }).wantsWeights, true);
  await stillAdopting(b, 'before the offer');
  const offered = await cb.send(retypeFrame(copy.bytes, MsgType.OFFER, w2.workerId));
  assert.equal(offered.flags & Flag.ADOPTED, Flag.ADOPTED);
  const status = await serving(b);
  assert.deepEqual(status.strategy.adopted, { version: 3, from: w.workerId });
  const adopted = await pullRaw(cb, w2);
  assert.equal(adopted.frame.modelVersion, 3);
  assert.deepEqual(Buffer.from(adopted.frame.payloadBytes), Buffer.from(copy.frame.payloadBytes), 'adopted weights are the copy, bitwise');

  // The worker never got the ack of flush 3 and retries it: acknowledged, not applied again.
  const replay = await cb.send(flush(w2, 3, 4, 0.03));
  assert.equal(replay.flags & Flag.DUPLICATE, Flag.DUPLICATE);
  assert.equal(replay.modelVersion, 3, 'the same ack as the first time');
  const next = await cb.send(flush(w2, 4, 2, 0.5));
  assert.equal(next.flags & Flag.DUPLICATE, 0);
  assert.equal(next.modelVersion, 4);
  // And a flush replayed after its ack applies nothing either.
  const before = await pullRaw(cb, w2);
  const again = await cb.send(flush(w2, 4, 2, 0.5));
  assert.equal(again.flags & Flag.DUPLICATE, Flag.DUPLICATE);
  assert.equal(again.modelVersion, 4);
  const afterReplay = await pullRaw(cb, w2);
  assert.equal(afterReplay.frame.modelVersion, 4);
  assert.deepEqual(Buffer.from(afterReplay.frame.payloadBytes), Buffer.from(before.frame.payloadBytes));
  const { flushes } = await b.get<{ flushes: { seq: number; duplicate: boolean }[] }>('/api/flushes');
  assert.deepEqual(flushes.map((f) => [f.seq, f.duplicate]), [[3, true], [4, false], [4, true]]);
});

test('forged or altered copies are refused with PS_FORGED_WEIGHTS, foreign ones with PS_OTHER_RUN, counted, and change nothing', async () => {
  // A genuine copy at version 2 from PS A, and one from a PS with another secret.
  const a = await freshPs();
  const wa = await join(a);
  const ca = await connect(a, wa);
  await serving(a);
  await ca.send(flush(wa, 1, 1, 0.1));
  await ca.send(flush(wa, 2, 1, 0.1));
  const genuine = await pullRaw(ca, wa);
  const other = await freshPs('another-secret-0123456789abcdef');
  const wo = await join(other);
  const co = await connect(other, wo);
  await serving(other);
  for (let seq = 1; seq <= 5; seq++) await co.send(flush(wo, seq, 1, 0.2));
  const foreign = await pullRaw(co, wo);

  const b = await ps();
  const tampered = (mutate: (bytes: Uint8Array) => void) => {
    const bytes = retypeFrame(genuine.bytes, MsgType.OFFER, 0);
    mutate(bytes);
    return bytes;
  };
  const payloadAt = genuine.bytes.byteLength - 4 * wa.layoutSize;
  // The code each is refused with: a copy naming another signing key is another run's or deployment's.
  const attacks: [string, (w: JoinResponse) => Uint8Array, 'PS_FORGED_WEIGHTS' | 'PS_OTHER_RUN'][] = [
    ['a weight changed', (w) => { const t = tampered((x) => new DataView(x.buffer).setFloat32(payloadAt + 40, 123, true)); return retypeFrame(t, MsgType.OFFER, w.workerId); }, 'PS_FORGED_WEIGHTS'],
    ['the version raised', (w) => { const t = tampered((x) => new DataView(x.buffer).setUint32(12, 999, true)); return retypeFrame(t, MsgType.OFFER, w.workerId); }, 'PS_FORGED_WEIGHTS'],
    ['the record rewritten', (w) => { const t = tampered((x) => new DataView(x.buffer).setUint32(HEADER_BYTES + 4 + TAG_BYTES + 4 + 4, 1, true)); return retypeFrame(t, MsgType.OFFER, w.workerId); }, 'PS_FORGED_WEIGHTS'],
    ['a copy signed under another secret', (w) => retypeFrame(foreign.bytes, MsgType.OFFER, w.workerId), 'PS_OTHER_RUN'],
  ];
  for (const [what, make, code] of attacks) {
    const w = await join(b);
    const c = await connect(b, w);
    c.send(make(w)).catch(() => {});
    const closed = await c.closed;
    assert.equal(closed.code, ERRORS[code].wsClose, `${what}: close code`);
    assert.match(closed.reason, new RegExp(`^${code}`), what);
  }
  // The genuine copy is taken, and it alone decides the adopted state.
  const w = await join(b);
  const c = await connect(b, w);
  await stillAdopting(b, 'after the four refused offers');
  const ok = await c.send(retypeFrame(genuine.bytes, MsgType.OFFER, w.workerId));
  assert.equal(ok.flags & Flag.ADOPTED, Flag.ADOPTED);
  const status = await serving(b);
  assert.deepEqual(status.strategy.offers, { verified: 1, rejected: 4, late: 0 });
  assert.equal(status.strategy.adopted!.version, 2);
  const now = await pullRaw(c, w);
  assert.deepEqual(Buffer.from(now.frame.payloadBytes), Buffer.from(genuine.frame.payloadBytes));
  const metrics = await (await fetch(new URL('/metrics', b.url))).text();
  assert.match(metrics, /tabswarm_frames_rejected_total\{reason="PS_FORGED_WEIGHTS",transport="ws"\} 3/);
  assert.match(metrics, /tabswarm_frames_rejected_total\{reason="PS_OTHER_RUN",transport="ws"\} 1/);
});

test("a forged id tag cannot take over another worker's id", async () => {
  const a = await freshPs();
  const w = await join(a);
  const res = await fetch(new URL('/api/join', a.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ resume: { workerId: w.workerId, idTag: 'ab'.repeat(32) } }) });
  assert.equal(res.status, 403);
  assert.equal(((await res.json()) as { code: string }).code, 'PS_BAD_RESUME');
  // The genuine worker's session is untouched.
  const c = await connect(a, w);
  await serving(a);
  assert.equal((await c.send(pull(w))).type, MsgType.WEIGHTS);
});
