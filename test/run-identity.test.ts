/**
 * Run identity (issue 13): two runs that share a secret sign their weights with different keys
 * (the run id is part of the signing key, server/ps/signer.ts), so a copy from one is refused
 * by the other: a stateless PS refuses it with PS_FORGED_WEIGHTS and adopts nothing from it,
 * and the check a mesh peer makes on relayed weights (shared/signing.ts verifyWeights with the
 * PS's published key, MESH_FORGED_WEIGHTS on failure) fails. The same run restarted adopts the
 * same copy. Real stateless PS processes; the worker is played over the wire protocol.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import type { JoinResponse } from '../shared/api.ts';
import { ERRORS } from '../shared/errors.ts';
import { Flag, MsgType, decodeFrame, encodeFrame, retypeFrame, type Frame } from '../shared/protocol.ts';
import { importWeightsKey, verifyWeights } from '../shared/signing.ts';
import { startPs, until, type PsProc, type Status } from './helpers.ts';

const SECRET = 'run-identity-secret-0123456789ab';
const opened: PsProc[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

async function ps(run: string, windowMs: number): Promise<PsProc> {
  const p = await startPs(['--strategy', 'stateless', '--secret', SECRET, '--run-id', run, '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--adopt-window-ms', String(windowMs)]);
  opened.push(p);
  return p;
}

async function join(p: PsProc, resume?: { workerId: number; idTag: string }): Promise<JoinResponse> {
  const res = await fetch(new URL('/api/join', p.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(resume ? { resume } : {}) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as JoinResponse;
}

/** A worker's socket: send a frame, get the answer; or see the socket closed. */
async function connect(p: PsProc, j: JoinResponse) {
  const ws = new WebSocket(`${p.url.replace('http', 'ws')}ws?token=${j.token}`);
  const waiting: ((f: Frame) => void)[] = [];
  ws.on('message', (data: Buffer, binary) => {
    if (binary) waiting.shift()?.(decodeFrame(new Uint8Array(data), { layoutHash: j.layoutHash, layoutSize: j.layoutSize }));
  });
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  await new Promise((r, e) => ws.once('open', r).once('error', e));
  return { send: (bytes: Uint8Array) => new Promise<Frame>((r) => { waiting.push(r); ws.send(bytes); }), closed };
}

const phase = (p: PsProc, want: string) => until(async () => {
  const s = await p.get<Status>('/api/status');
  return s.strategy.phase === want ? s : undefined;
}, `the PS to be ${want}`, 40_000, 50);

const modelKey = async (p: PsProc) => ((await (await fetch(new URL('/api/model', p.url))).json()) as { weightsKey: { publicKey: string } }).weightsKey.publicKey;

test('two runs sharing a secret: a copy from one is refused by the other, and adopted by its own run', { timeout: 120_000 }, async () => {
  // Run A: a worker trains two versions and keeps the signed copy it pulled.
  const a = await ps('run-a', 300);
  const w = await join(a);
  const ca = await connect(a, w);
  await phase(a, 'serving');
  for (let seq = 1; seq <= 2; seq++) {
    await ca.send(encodeFrame({ type: MsgType.PUSH, layoutHash: w.layoutHash, modelVersion: 0, workerId: w.workerId, seq, count: 1, flags: Flag.FLUSH }, new Float32Array(w.layoutSize).fill(0.1)));
  }
  const f = await ca.send(encodeFrame({ type: MsgType.PULL, layoutHash: w.layoutHash, modelVersion: 0, workerId: w.workerId, seq: 0, count: 0 }));
  assert.equal(f.modelVersion, 2);
  const copy = encodeFrame({ type: MsgType.WEIGHTS, layoutHash: f.layoutHash, modelVersion: f.modelVersion, workerId: 0, seq: 0, count: 0 }, f.payload, f.meta);
  const keyA = await modelKey(a);
  await a.kill('SIGKILL');

  // Run B, same secret: the worker's id still verifies (the id tag is the secret's), its copy does not.
  const b = await ps('run-b', 10_000);
  const keyB = await modelKey(b);
  assert.notEqual(keyB, keyA, 'another run, another signing key');
  const wb = await join(b, { workerId: w.workerId, idTag: w.idTag });
  assert.equal(wb.workerId, w.workerId);
  const cb = await connect(b, wb);
  cb.send(retypeFrame(copy, MsgType.OFFER, wb.workerId)).catch(() => {});
  const refused = await cb.closed;
  assert.equal(refused.code, ERRORS.PS_FORGED_WEIGHTS.wsClose, refused.reason);
  assert.match(refused.reason, /^PS_FORGED_WEIGHTS/);
  const sb = await phase(b, 'serving');
  assert.deepEqual(sb.strategy.offers, { verified: 0, rejected: 1, late: 0 });
  assert.equal(sb.strategy.fresh, true, 'run B adopted nothing from run A');

  // A mesh peer of run B checks relayed weights against run B's key: run A's copy fails.
  const frame = decodeFrame(copy, { layoutHash: w.layoutHash, layoutSize: w.layoutSize });
  assert.equal(await verifyWeights(await importWeightsKey(keyB), frame), false, 'a run-B peer refuses run A\'s copy (MESH_FORGED_WEIGHTS)');
  assert.equal(await verifyWeights(await importWeightsKey(keyA), frame), true, 'a run-A peer takes it');

  // Run A restarted (same run id): the same copy is adopted.
  const a2 = await ps('run-a', 10_000);
  assert.equal(await modelKey(a2), keyA, 'the same run signs with the same key after a restart');
  const wa2 = await join(a2, { workerId: w.workerId, idTag: w.idTag });
  const ca2 = await connect(a2, wa2);
  const adopted = await ca2.send(retypeFrame(copy, MsgType.OFFER, wa2.workerId));
  assert.equal(adopted.flags & Flag.ADOPTED, Flag.ADOPTED);
  const sa2 = await phase(a2, 'serving');
  assert.equal(sa2.strategy.adopted!.version, 2);
});
