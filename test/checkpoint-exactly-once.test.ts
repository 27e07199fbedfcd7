/**
 * Exactly-once across a PS restart: the checkpoint carries the record of applied pushes, and a
 * worker rejoins the restarted PS under its old id (`resume` with the id tag the PS issued, valid
 * because both PS processes share `--secret`). A flush applied before the checkpoint is
 * recognised and acknowledged again, never applied a second time; a push the crash lost (applied
 * after the checkpoint) is applied again, once.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Flag } from '../shared/protocol.ts';
import type { Proc } from './helpers.ts';
import { TestWorker, checkpointStatus, freePort, sameBits, startCheckpointPs, testGradient } from './checkpoint-tools.ts';

const opened: Proc[] = [];
let dir = '';
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a flush applied before the checkpoint is not applied again after the restart', { timeout: 60_000 }, async () => {
  dir = await mkdtemp(join(tmpdir(), 'tabswarm-ckonce-'));
  const port = await freePort();
  const args = ['--checkpoint-mode', 'sync', '--checkpoint-every', '5'];
  const ps1 = await startCheckpointPs(dir, port, args);
  opened.push(ps1);
  const w1 = await TestWorker.join(ps1);
  const size = w1.join.layoutSize;
  for (let seq = 1; seq <= 4; seq++) await w1.push(seq, testGradient(size, seq));
  // The 5th push is a flush (gradients buffered during an outage); in sync mode its ack comes
  // only once the checkpoint that contains it is durable.
  assert.deepEqual(await w1.push(5, testGradient(size, 5), Flag.FLUSH), { version: 5, flags: 0 });
  const atFive = await w1.pull();
  assert.equal((await checkpointStatus(ps1)).lastCheckpoint?.storeVersion, 5);
  assert.equal((await w1.push(6, testGradient(size, 6))).version, 6); // after the checkpoint: lost with the crash
  await ps1.kill('SIGKILL');

  const ps2 = await startCheckpointPs(dir, port, args);
  opened.push(ps2);
  const w2 = await TestWorker.join(ps2, { workerId: w1.join.workerId, idTag: w1.join.idTag });
  assert.equal(w2.join.workerId, w1.join.workerId, 'the worker keeps its id');
  assert.equal(w2.join.lastSeq, 5, 'the restored record says seq 5 is applied');

  // The worker never saw the ack of its flush (say), so it sends it again: acknowledged, not applied.
  assert.deepEqual(await w2.push(5, testGradient(size, 5), Flag.FLUSH), { version: 5, flags: Flag.DUPLICATE });
  assert.deepEqual(await w2.push(3, testGradient(size, 3)), { version: 5, flags: Flag.DUPLICATE });
  const still = await w2.pull();
  assert.equal(still.version, 5);
  assert.ok(sameBits(still.weights, atFive.weights), 'the weights are untouched by the resent flush');
  const { flushes } = await ps2.get<{ flushes: { seq: number; duplicate: boolean }[] }>('/api/flushes');
  assert.deepEqual(flushes.map((f) => [f.seq, f.duplicate]), [[5, true]]);

  // The push the crash lost is applied again, once.
  assert.deepEqual(await w2.push(6, testGradient(size, 6)), { version: 6, flags: 0 });
  assert.deepEqual(await w2.push(6, testGradient(size, 6)), { version: 6, flags: Flag.DUPLICATE });
  const s = await ps2.get<{ updatesApplied: number }>('/api/status');
  assert.equal(s.updatesApplied, 1, 'this PS process applied exactly one update');
  await ps2.kill('SIGKILL');
});
