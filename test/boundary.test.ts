/**
 * Untrusted input at the PS boundary, against a real PS process over real sockets: every bad
 * frame or request is refused with its catalogued code (WebSocket close code and reason, or 4xx
 * JSON), counted in /metrics by reason, and changes nothing; a well-behaved worker on the same
 * server is served throughout.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import type { JoinResponse } from '../shared/api.ts';
import { ERRORS, type ErrorCode } from '../shared/errors.ts';
import { HEADER_BYTES, MsgType, decodeFrame, encodeFrame } from '../shared/protocol.ts';
import { startPs, type PsProc } from './helpers.ts';

let ps: PsProc;
before(async () => {
  ps = await startPs(['--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0']);
});
after(async () => {
  await ps?.kill('SIGKILL');
});

async function join(): Promise<JoinResponse> {
  const res = await fetch(new URL('/api/join', ps.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(res.status, 200);
  return (await res.json()) as JoinResponse;
}

/** A raw socket with a queue of replies, for sending hand-made frames. */
async function connect(token: string): Promise<{ ws: WebSocket; next(): Promise<Buffer>; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(new URL(`/ws?token=${token}`, ps.url.replace('http', 'ws')));
  const replies: Buffer[] = [];
  const waiters: ((b: Buffer) => void)[] = [];
  ws.on('message', (data: Buffer, isBinary) => {
    if (!isBinary) return;
    const w = waiters.shift();
    if (w) w(data);
    else replies.push(data);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, next: () => (replies.length ? Promise.resolve(replies.shift()!) : new Promise((r) => waiters.push(r))), closed };
}

async function pullWeights(j: JoinResponse): Promise<{ version: number; weights: Float32Array }> {
  const res = await fetch(new URL('/api/weights', ps.url), { headers: { authorization: `Bearer ${j.token}` } });
  assert.equal(res.status, 200);
  const frame = decodeFrame(new Uint8Array(await res.arrayBuffer()), { layoutHash: j.layoutHash, layoutSize: j.layoutSize });
  return { version: frame.modelVersion, weights: Float32Array.from(frame.payload) };
}

async function rejections(): Promise<Map<string, number>> {
  const text = await (await fetch(new URL('/metrics', ps.url))).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^tabswarm_frames_rejected_total\{reason="(\w+)",transport="(\w+)"\} (\d+)/gm)) out.set(`${m[1]}/${m[2]}`, Number(m[3]));
  return out;
}

function push(j: JoinResponse, over: { workerId?: number; layoutHash?: number; count?: number; seq?: number } = {}, grad?: Float32Array): Uint8Array {
  return encodeFrame(
    { type: MsgType.PUSH, layoutHash: over.layoutHash ?? j.layoutHash, modelVersion: 0, workerId: over.workerId ?? j.workerId, seq: over.seq ?? 1, count: over.count ?? 1 },
    grad ?? new Float32Array(j.layoutSize).fill(0.01),
  );
}

const malformed: [string, ErrorCode, (j: JoinResponse) => Uint8Array | string][] = [
  ['a frame shorter than the header', 'PROTO_TOO_SHORT', () => new Uint8Array(10)],
  ['wrong magic', 'PROTO_BAD_MAGIC', (j) => { const f = push(j); f[0] = 0; return f; }],
  ['wrong protocol version', 'PROTO_BAD_VERSION', (j) => { const f = push(j); f[4] = 9; return f; }],
  ['an unknown message type', 'PROTO_UNKNOWN_TYPE', (j) => { const f = push(j); f[5] = 0x7f; return f; }],
  ['a PS-to-worker type sent by a worker', 'PROTO_UNKNOWN_TYPE', (j) => encodeFrame({ type: MsgType.ACK, layoutHash: j.layoutHash, modelVersion: 0, workerId: j.workerId, seq: 1, count: 1 })],
  ['another model layout', 'PROTO_LAYOUT_MISMATCH', (j) => push(j, { layoutHash: j.layoutHash ^ 1 })],
  ['a truncated gradient', 'PROTO_BAD_LENGTH', (j) => push(j).subarray(0, HEADER_BYTES + 400)],
  ['a gradient with NaN', 'PROTO_NON_FINITE', (j) => { const g = new Float32Array(j.layoutSize); g[77] = NaN; return push(j, {}, g); }],
  ['a gradient with Infinity', 'PROTO_NON_FINITE', (j) => { const g = new Float32Array(j.layoutSize); g[j.layoutSize - 1] = Infinity; return push(j, {}, g); }],
  ['a push of zero gradients', 'PROTO_BAD_COUNT', (j) => push(j, { count: 0 })],
  ['an oversize frame', 'PROTO_OVERSIZE', (j) => new Uint8Array(HEADER_BYTES + 4 * j.layoutSize + 64)],
  ['another worker\'s id', 'PS_WRONG_WORKER', (j) => push(j, { workerId: j.workerId + 1 })],
  ['a text message', 'PROTO_NOT_BINARY', () => 'hello'],
];

test('every malformed WebSocket frame is refused with its close code and reason, counted, and changes nothing', async () => {
  const observer = await join();
  const before = await pullWeights(observer);
  const counted = await rejections();
  for (const [what, code, make] of malformed) {
    const j = await join();
    const sock = await connect(j.token);
    sock.ws.send(make(j));
    const { code: closeCode, reason } = await sock.closed;
    assert.equal(closeCode, ERRORS[code].wsClose, `${what}: close code`);
    assert.ok(reason.startsWith(code), `${what}: reason '${reason}' names ${code}`);
    counted.set(`${code}/ws`, (counted.get(`${code}/ws`) ?? 0) + 1);
  }
  const after = await pullWeights(observer);
  assert.equal(after.version, before.version, 'no refused frame advanced the version');
  assert.deepEqual(Buffer.from(after.weights.buffer), Buffer.from(before.weights.buffer), 'weights bitwise unchanged');
  assert.deepEqual(await rejections(), counted, '/metrics counts each refusal by reason');
});

test('a socket without a valid session is closed with PS_NO_SESSION', async () => {
  const sock = await connect('not-a-token');
  const { code, reason } = await sock.closed;
  assert.equal(code, ERRORS.PS_NO_SESSION.wsClose);
  assert.match(reason, /^PS_NO_SESSION/);
});

test('HTTP transport: bad requests get 4xx JSON with the code; nothing applied', async () => {
  const j = await join();
  const before = await pullWeights(j);
  const post = (body: Uint8Array | string, token: string | undefined = j.token, type = 'application/octet-stream') =>
    fetch(new URL('/api/push', ps.url), { method: 'POST', headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: typeof body === 'string' ? body : Buffer.from(body) });
  const cases: [string, Promise<Response>, ErrorCode][] = [
    ['no token', post(push(j), ''), 'PS_NO_SESSION'],
    ['a forged token', post(push(j), 'f'.repeat(32)), 'PS_NO_SESSION'],
    ['NaN in the gradient', post(push(j, {}, new Float32Array(j.layoutSize).fill(NaN))), 'PROTO_NON_FINITE'],
    ['wrong layout', post(push(j, { layoutHash: 1 })), 'PROTO_LAYOUT_MISMATCH'],
    ['another worker', post(push(j, { workerId: 1 })), 'PS_WRONG_WORKER'],
    ['an oversize body', post(new Uint8Array(3 * (HEADER_BYTES + 4 * j.layoutSize))), 'PROTO_OVERSIZE'],
    ['a JSON gradient', post(JSON.stringify({ grad: [1, 2, 3] }), j.token, 'application/json'), 'PS_BAD_REQUEST'],
  ];
  for (const [what, pending, code] of cases) {
    const res = await pending;
    assert.equal(res.status, ERRORS[code].http, `${what}: status`);
    const body = (await res.json()) as { code: string; message: string };
    assert.equal(body.code, code, `${what}: code`);
    assert.ok(body.message.length > 10, `${what}: a message`);
  }
  const after = await pullWeights(j);
  assert.equal(after.version, before.version);
  assert.deepEqual(Buffer.from(after.weights.buffer), Buffer.from(before.weights.buffer));
  const badJoin = await fetch(new URL('/api/join', ps.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"userAgent": 5, "admin": true}' });
  assert.equal(badJoin.status, 400);
  assert.equal(((await badJoin.json()) as { code: string }).code, 'PS_BAD_REQUEST');
});

test('a good worker is served while bad ones are refused, and a replayed push is acknowledged but not applied again', async () => {
  const good = await join();
  const sock = await connect(good.token);
  const start = await pullWeights(good);
  let seq = 0;
  for (let round = 0; round < 5; round++) {
    // A bad client in between every good push.
    const bad = await join();
    const badSock = await connect(bad.token);
    badSock.ws.send(push(bad, {}, new Float32Array(bad.layoutSize).fill(Infinity)));
    await badSock.closed;
    sock.ws.send(push(good, { seq: ++seq }));
    const ack = decodeFrame(new Uint8Array(await sock.next()), { layoutHash: good.layoutHash, layoutSize: good.layoutSize });
    assert.equal(ack.type, MsgType.ACK);
    assert.equal(ack.seq, seq);
  }
  const mid = await pullWeights(good);
  assert.equal(mid.version, start.version + 5);
  // Replay the last push: same ack (same version), nothing applied.
  sock.ws.send(push(good, { seq }));
  const replay = decodeFrame(new Uint8Array(await sock.next()), { layoutHash: good.layoutHash, layoutSize: good.layoutSize });
  assert.equal(replay.modelVersion, mid.version);
  const end = await pullWeights(good);
  assert.equal(end.version, mid.version);
  assert.deepEqual(Buffer.from(end.weights.buffer), Buffer.from(mid.weights.buffer));
  sock.ws.close();
});

test('HTTP transport: a valid push is applied and acknowledged with an ACK frame', async () => {
  const j = await join();
  const before = await pullWeights(j);
  // Small enough (L2 norm 0.89) that the default aggregator's warm-up bound leaves it whole.
  const grad = new Float32Array(j.layoutSize).fill(0.01);
  const res = await fetch(new URL('/api/push', ps.url), {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${j.token}` },
    body: Buffer.from(push(j, { seq: 1 }, grad)),
  });
  assert.equal(res.status, 200);
  const ack = decodeFrame(new Uint8Array(await res.arrayBuffer()), { layoutHash: j.layoutHash, layoutSize: j.layoutSize });
  assert.equal(ack.type, MsgType.ACK);
  assert.equal(ack.seq, 1);
  const after = await pullWeights(j);
  assert.equal(after.version, before.version + 1);
  assert.equal(ack.modelVersion, after.version);
  // mnist-logreg's default lr is 0.1: every weight moved by exactly -lr * grad (float32 0.01), rounded to float32.
  const model = (await ps.get<{ hyperparameters: { lr: number } }>('/api/model')).hyperparameters;
  for (const i of [0, 1000, j.layoutSize - 1]) assert.equal(after.weights[i], Math.fround(before.weights[i]! - model.lr * grad[0]!));
});
