/**
 * Partial recovery across processes: a PS with 4 key-range shards loses shard k through the
 * admin API (a simulated loss of one shard server). Only that shard is restored from its
 * checkpoint stream; every other shard keeps its live values bitwise. With prioritized
 * checkpoints the restored shard is exactly the composition of its stream's files on disk.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { scatterBlocks } from '../server/strategies/checkpoint/format.ts';
import type { Proc } from './helpers.ts';
import { TestWorker, admin, freePort, readCheckpoint, sameBits, startCheckpointPs, testGradient } from './checkpoint-tools.ts';

const opened: Proc[] = [];
const dirs: string[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface ShardInfo {
  index: number;
  start: number;
  end: number;
  version: number;
  lost: boolean;
}

/** The shard as its files on disk compose: newest full, then every later delta. */
async function composeFromDisk(dir: string, shard: number): Promise<Float32Array> {
  const folder = `shard-${String(shard).padStart(3, '0')}`;
  const names = (await readdir(join(dir, folder))).filter((n) => n.endsWith('.ckpt')).sort();
  const baseName = names.filter((n) => n.includes('.full.')).at(-1)!;
  const base = await readCheckpoint(dir, `${folder}/${baseName}`);
  const out = Float32Array.from(base.weights);
  for (const n of names.filter((n) => n > baseName && n.includes('.delta.'))) {
    const d = await readCheckpoint(dir, `${folder}/${n}`);
    scatterBlocks(out, d.indices, d.meta.blockSize, d.weights);
  }
  return out;
}

async function run(extra: string[], updates: number, lostShard: number) {
  const dir = await mkdtemp(join(tmpdir(), 'tabswarm-ckpartial-'));
  dirs.push(dir);
  const ps = await startCheckpointPs(dir, await freePort(), ['--ps-shards', '4', '--checkpoint-mode', 'sync', ...extra]);
  opened.push(ps);
  const w = await TestWorker.join(ps);
  const pulls: Float32Array[] = [];
  for (let seq = 1; seq <= updates; seq++) {
    await w.push(seq, testGradient(w.join.layoutSize, seq));
    pulls.push((await w.pull()).weights);
  }
  const before = await w.pull();
  const report = await admin<{ shard: number; recovery: { mode: string; shards: { shard: number; version: number }[] } }>(ps, 'POST', `/api/admin/shards/${lostShard}/drop`);
  const after = await w.pull();
  const { shards } = await admin<{ shards: ShardInfo[] }>(ps, 'GET', '/api/admin/shards');
  return { dir, ps, before, after, report, shards, pulls };
}

describe('partial recovery of one lost PS shard', () => {
  test('full checkpoints: the lost shard is its checkpoint, the other shards are unchanged bitwise', { timeout: 60_000 }, async () => {
    const { dir, ps, before, after, report, shards, pulls } = await run(['--checkpoint-every', '5'], 8, 2);
    assert.equal(report.recovery.mode, 'partial');
    assert.deepEqual(report.recovery.shards.map((s) => [s.shard, s.version]), [[2, 5]]);
    assert.equal(after.version, 8, 'the PS keeps its version');
    assert.deepEqual(shards.map((s) => s.version), [8, 8, 5, 8]);
    assert.deepEqual(shards.map((s) => s.lost), [false, false, false, false]);
    assert.equal(shards.at(-1)!.end, after.weights.length);
    for (const s of shards) {
      const got = after.weights.subarray(s.start, s.end);
      if (s.index === 2) {
        assert.ok(sameBits(got, pulls[4]!.subarray(s.start, s.end)), 'shard 2 is the state at version 5');
        assert.ok(sameBits(got, (await readCheckpoint(dir, 'shard-002/00000002.full.ckpt')).weights), 'and its checkpoint file');
        assert.ok(!sameBits(got, before.weights.subarray(s.start, s.end)), 'shard 2 was rolled back');
      } else {
        assert.ok(sameBits(got, before.weights.subarray(s.start, s.end)), `shard ${s.index} unchanged`);
      }
    }
    await ps.kill('SIGKILL');
  });

  test('prioritized checkpoints: the lost shard is the composition of its files; the others are unchanged', { timeout: 60_000 }, async () => {
    const args = ['--checkpoint-every', '2', '--priority-fraction', '0.25', '--checkpoint-block', '64', '--checkpoint-full-every', '4'];
    const { dir, ps, before, after, shards } = await run(args, 7, 1);
    const files = (await readdir(join(dir, 'shard-001'))).sort();
    assert.deepEqual(files, ['00000001.full.ckpt', '00000002.delta.ckpt', '00000003.delta.ckpt', '00000004.delta.ckpt']);
    for (const s of shards) {
      const got = after.weights.subarray(s.start, s.end);
      if (s.index === 1) {
        assert.ok(sameBits(got, await composeFromDisk(dir, 1)), 'shard 1 is its saved copy: the first full checkpoint and three deltas');
        assert.ok(!sameBits(got, before.weights.subarray(s.start, s.end)), 'which is not the live state');
      } else {
        assert.ok(sameBits(got, before.weights.subarray(s.start, s.end)), `shard ${s.index} unchanged`);
      }
    }
    assert.deepEqual(shards.map((s) => s.version), [7, 6, 7, 7]);
    await ps.kill('SIGKILL');
  });
});
