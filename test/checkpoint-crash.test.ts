/**
 * Checkpoints against real crashes: PS processes SIGKILLed while a checkpoint is being written
 * (sync and async), a corrupted newest checkpoint, and real workers reconnecting to a restarted
 * PS. To kill "while a checkpoint is being written" deterministically, the PS runs with the
 * test-only TABSWARM_TEST_CHECKPOINT_PAUSE_MS, which pauses every write after the header is in
 * the temporary file and before the rename.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { spawnCli, until, type Proc, type Status } from './helpers.ts';
import { TestWorker, checkpointStatus, freePort, readCheckpoint, sameBits, startCheckpointPs, testGradient } from './checkpoint-tools.ts';

const opened: Proc[] = [];
const dirs: string[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'tabswarm-ckcrash-'));
  dirs.push(d);
  return d;
}

// Long enough that the test sees the write in flight and kills it there even on a loaded machine.
const PAUSE = { TABSWARM_TEST_CHECKPOINT_PAUSE_MS: '3000' };

for (const mode of ['sync', 'async'] as const) {
  describe(`SIGKILL while a ${mode} checkpoint is being written`, () => {
    test('the restarted PS loads the previous complete checkpoint, never the partial one', { timeout: 120_000 }, async () => {
      const dir = await tmp();
      const port = await freePort();
      const args = ['--checkpoint-mode', mode, '--checkpoint-every', '4'];
      const ps1 = await startCheckpointPs(dir, port, args, PAUSE);
      opened.push(ps1);
      const w = await TestWorker.join(ps1);
      const size = w.join.layoutSize;

      for (let seq = 1; seq <= 4; seq++) await w.push(seq, testGradient(size, seq)); // checkpoint 2, at version 4
      await until(async () => (await checkpointStatus(ps1)).lastCheckpoint?.storeVersion === 4, 'the checkpoint of version 4 to be complete', 20_000);
      const atFour = await w.pull();
      assert.equal(atFour.version, 4);

      // Updates 5..8: the 8th starts checkpoint 3, which the pause holds half-written.
      const pushes: Promise<unknown>[] = [];
      for (let seq = 5; seq <= 8; seq++) {
        const p = w.push(seq, testGradient(size, seq));
        pushes.push(p.catch(() => 'killed'));
        if (mode === 'async' || seq < 8) await p;
      }
      if (mode === 'async') {
        // Async: the PS keeps applying while it writes; these are acked at once.
        assert.deepEqual(await w.push(9, testGradient(size, 9)), { version: 9, flags: 0 });
      }
      const writing = await until(async () => (await checkpointStatus(ps1)).writing, 'checkpoint 3 to be in flight', 20_000, 50);
      assert.equal(writing.storeVersion, 8);
      // 'writing' is set before the temporary file is opened (async: after the copy and encode,
      // slow on a loaded machine): wait for the file, which the pause then holds half-written.
      await until(() => existsSync(join(dir, 'shard-000', '.tmp-00000003.full.ckpt')), 'a half-written temporary file on disk', 20_000, 20);
      await ps1.kill('SIGKILL');
      if (mode === 'sync') assert.equal(await pushes.at(-1), 'killed', 'the update that triggered the sync checkpoint was never acked');

      const ps2 = await startCheckpointPs(dir, port, args);
      opened.push(ps2);
      const status = await checkpointStatus(ps2);
      assert.equal(status.restored?.version, 4);
      assert.deepEqual(status.restored?.shards.map((s) => s.seq), [2]);
      assert.deepEqual(status.restored?.swept, ['shard-000/.tmp-00000003.full.ckpt']);
      assert.equal(existsSync(join(dir, 'shard-000', '.tmp-00000003.full.ckpt')), false);
      const w2 = await TestWorker.join(ps2);
      const restored = await w2.pull();
      assert.equal(restored.version, 4);
      assert.ok(sameBits(restored.weights, atFour.weights), 'the weights are exactly those of version 4');
      const onDisk = await readCheckpoint(dir, 'shard-000/00000002.full.ckpt');
      assert.ok(sameBits(onDisk.weights, atFour.weights));
      await ps2.kill('SIGKILL');
    });
  });
}

describe('a corrupted newest checkpoint', () => {
  test('is rejected with a clear message and the one before it is used', { timeout: 60_000 }, async () => {
    const dir = await tmp();
    const port = await freePort();
    const args = ['--checkpoint-mode', 'sync', '--checkpoint-every', '3'];
    const ps1 = await startCheckpointPs(dir, port, args);
    opened.push(ps1);
    const w = await TestWorker.join(ps1);
    for (let seq = 1; seq <= 3; seq++) await w.push(seq, testGradient(w.join.layoutSize, seq));
    const atThree = await w.pull();
    for (let seq = 4; seq <= 6; seq++) await w.push(seq, testGradient(w.join.layoutSize, seq));
    await ps1.kill('SIGKILL');

    const newest = join(dir, 'shard-000', '00000003.full.ckpt');
    const bytes = await readFile(newest);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x10; // one flipped bit in the weights
    await writeFile(newest, bytes);

    const ps2 = await startCheckpointPs(dir, port, args);
    opened.push(ps2);
    assert.match(ps2.output(), new RegExp(`checkpoint rejected and skipped: CHECKPOINT_CORRUPT: Checkpoint ${dir}/shard-000/00000003\\.full\\.ckpt is rejected: checksum mismatch: the file is torn or was modified`));
    const status = await checkpointStatus(ps2);
    assert.equal(status.restored?.version, 3);
    assert.deepEqual(status.restored?.rejected.map((r) => r.name), ['shard-000/00000003.full.ckpt']);
    const restored = await (await TestWorker.join(ps2)).pull();
    assert.ok(sameBits(restored.weights, atThree.weights));
    await ps2.kill('SIGKILL');
  });
});

describe('a restarted PS with real workers', () => {
  test('resumes from the checkpoint; the worker reconnects and training continues', { timeout: 180_000 }, async () => {
    const dir = await tmp();
    const port = await freePort();
    const args = ['--checkpoint-mode', 'async', '--checkpoint-every', '10'];
    const ps1 = await startCheckpointPs(dir, port, args);
    opened.push(ps1);
    const worker = spawnCli(['worker', '--url', ps1.url, '--seed', '3', '--log-every-ms', '500']);
    opened.push(worker);
    await until(async () => (await checkpointStatus(ps1)).lastCheckpoint!.storeVersion >= 30, 'a checkpoint at version >= 30', 90_000, 200);
    await ps1.kill('SIGKILL');

    const ps2 = await startCheckpointPs(dir, port, args);
    opened.push(ps2);
    const restoredAt = (await checkpointStatus(ps2)).restored!.version;
    assert.ok(restoredAt >= 30, `restored version ${restoredAt}`);
    const s = await until(async () => {
      const st = await ps2.get<Status>('/api/status');
      return st.version >= restoredAt + 20 && st.workers.some((x) => x.pushes >= 20) ? st : undefined;
    }, 'the worker to reconnect and push 20 more updates', 90_000, 250);
    assert.ok(s.version >= restoredAt + 20);
    await worker.kill('SIGTERM');
    await ps2.kill('SIGKILL');
  });
});
