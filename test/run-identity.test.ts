/**
 * Run identity (issue 13): two runs that share a secret sign their weights with different keys
 * (the run id is part of the signing key, server/ps/signer.ts), and each copy names its key in
 * clear (the meta block's key id), so a copy from one is refused by the other as another run's:
 * a stateless PS refuses it with PS_OTHER_RUN and adopts nothing from it, and the check a mesh
 * peer makes on relayed weights (shared/signing.ts checkWeights with the PS's published key)
 * says 'other-run' (MESH_OTHER_RUN), while an altered copy is 'forged'. The same run restarted
 * adopts the same copy. A checkpoint written by one run is refused by a PS of another run
 * (CHECKPOINT_OTHER_RUN, the process exits) and restored by its own. Real PS processes; the
 * worker is played over the wire protocol.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import WebSocket from 'ws';
import type { JoinResponse } from '../shared/api.ts';
import { ERRORS } from '../shared/errors.ts';
import { Flag, MsgType, decodeFrame, encodeFrame, retypeFrame, type Frame } from '../shared/protocol.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { checkWeights, importWeightsKey, keyIdOf, verifyWeights } from '../shared/signing.ts';
import { exitWithin, spawnCli, startPs, until, type PsProc, type Status } from './helpers.ts';

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
  assert.equal(refused.code, ERRORS.PS_OTHER_RUN.wsClose, refused.reason);
  assert.match(refused.reason, /^PS_OTHER_RUN/, 'another run\'s copy is named as such, not as a forgery');
  const sb = await phase(b, 'serving');
  assert.deepEqual(sb.strategy.offers, { verified: 0, rejected: 1, late: 0 });
  assert.equal(sb.strategy.fresh, true, 'run B adopted nothing from run A');

  // A mesh peer of run B checks relayed weights against run B's key: run A's copy fails.
  const frame = decodeFrame(copy, { layoutHash: w.layoutHash, layoutSize: w.layoutSize });
  assert.deepEqual(frame.meta!.keyId, await keyIdOf(keyA), 'the copy names run A\'s key');
  assert.equal(await verifyWeights(await importWeightsKey(keyB), frame), false);
  assert.equal(await checkWeights(await importWeightsKey(keyB), await keyIdOf(keyB), frame), 'other-run', 'a run-B peer refuses run A\'s copy as another run\'s (MESH_OTHER_RUN)');
  assert.equal(await checkWeights(await importWeightsKey(keyA), await keyIdOf(keyA), frame), 'ok', 'a run-A peer takes it');
  // Altered weights under run A's key id: a forgery, for run A and (naming run A's key) another run for B.
  const altered = copy.slice();
  altered[altered.length - 1]! ^= 1;
  const alteredFrame = decodeFrame(altered, { layoutHash: w.layoutHash, layoutSize: w.layoutSize });
  assert.equal(await checkWeights(await importWeightsKey(keyA), await keyIdOf(keyA), alteredFrame), 'forged');
  // A copy that names run B's key but carries run A's signature: forged, whatever key id it claims.
  const claimed = encodeFrame({ type: MsgType.WEIGHTS, layoutHash: f.layoutHash, modelVersion: f.modelVersion, workerId: 0, seq: 0, count: 0 }, f.payload, { ...f.meta!, keyId: await keyIdOf(keyB) });
  assert.equal(await checkWeights(await importWeightsKey(keyB), await keyIdOf(keyB), decodeFrame(claimed, { layoutHash: w.layoutHash, layoutSize: w.layoutSize })), 'forged');

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

test('a checkpoint of another run is refused with CHECKPOINT_OTHER_RUN; its own run restores it', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(joinPath(tmpdir(), 'tabswarm-run-identity-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const args = (run: string) => ['--strategy', 'checkpoint', '--checkpoint-dir', dir, '--checkpoint-mode', 'sync', '--checkpoint-every', '1', '--secret', SECRET, '--run-id', run, '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0'];
  const a = await startPs(args('run-a'));
  opened.push(a);
  const w = await join(a);
  const ca = await connect(a, w);
  for (let seq = 1; seq <= 3; seq++) {
    const ack = await ca.send(encodeFrame({ type: MsgType.PUSH, layoutHash: w.layoutHash, modelVersion: 0, workerId: w.workerId, seq, count: 1 }, new Float32Array(w.layoutSize).fill(0.1)));
    assert.equal(ack.modelVersion, seq);
  }
  await a.kill('SIGKILL');

  // Run B on run A's directory: refused at start, nothing of run A's checkpoint restored or overwritten.
  const b = spawnCli(['start', '--port', '0', '--workers', '0', '--log-level', 'warn', ...args('run-b')]);
  opened.push({ ...b, url: '', get: async () => { throw new Error('not serving'); } });
  assert.ok(await exitWithin(b.child, 60_000), 'a PS of another run exits');
  assert.notEqual(b.child.exitCode, 0);
  assert.match(b.output(), /CHECKPOINT_OTHER_RUN/, b.output());
  assert.match(b.output(), /belongs to run run-a, not this run \(run-b\)/);
  assert.doesNotMatch(b.output(), /join at/, 'it never served');

  // Run A again: restores version 3 from the same files.
  const a2 = await startPs(args('run-a'));
  opened.push(a2);
  assert.equal((await a2.get<Status>('/api/status')).version, 3);
});
