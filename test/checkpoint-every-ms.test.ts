/**
 * `--checkpoint-every-ms T` (docs/checkpointing.md, "Operator knobs": a bound on lost time rather
 * than lost updates), with count-based checkpoints off, on a real `tabswarm start` process: while
 * a worker pushes steadily a checkpoint is taken about every T (never two within T of each
 * other), and an idle PS takes none.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkpointStatus, freePort, startCheckpointPs, testGradient, TestWorker } from './checkpoint-tools.ts';
import { until, type PsProc } from './helpers.ts';

const T = 1000;
let ps: PsProc | undefined;
let dir: string | undefined;
after(async () => {
  await ps?.kill('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('time-based checkpoints: about one every T while updates arrive, none while idle', { timeout: 120_000 }, async () => {
  dir = await mkdtemp(join(tmpdir(), 'tabswarm-ckms-'));
  ps = await startCheckpointPs(dir, await freePort(), ['--checkpoint-mode', 'sync', '--checkpoint-every', '0', '--checkpoint-every-ms', String(T)]);
  const worker = await TestWorker.join(ps);
  const size = worker.join.layoutSize;
  const start = (await checkpointStatus(ps)).checkpoints;

  // Push for 4 T; each sync checkpoint is durable before the ack of the push that took it.
  const t0 = Date.now();
  let seq = 0;
  while (Date.now() - t0 < 4 * T) await worker.push(++seq, testGradient(size, seq));
  const busyMs = Date.now() - t0;
  const taken = (await checkpointStatus(ps)).checkpoints - start;
  console.log(`every ${T} ms: ${taken} checkpoints over ${busyMs} ms of ${seq} pushes`);
  assert.ok(seq >= 20, `${seq} pushes`);
  assert.ok(taken >= 2, `${taken} time-based checkpoints over ${busyMs} ms (every ${T} ms)`);
  assert.ok(taken <= Math.floor(busyMs / T) + 1, `${taken} checkpoints over ${busyMs} ms: more often than every ${T} ms`);

  // Idle for 2 T: nothing changed, nothing written.
  const idle = (await checkpointStatus(ps)).checkpoints;
  const t1 = Date.now();
  await until(() => Date.now() - t1 >= 2 * T, `${2 * T} ms without updates`, 4 * T, 100);
  assert.equal((await checkpointStatus(ps)).checkpoints, idle, 'no checkpoint without updates');
  // The next update after the idle stretch is due at once.
  await worker.push(++seq, testGradient(size, seq));
  assert.equal((await checkpointStatus(ps)).checkpoints, idle + 1, 'the first update after T idle is checkpointed');
});
