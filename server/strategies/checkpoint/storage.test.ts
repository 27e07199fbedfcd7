import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FileStorage, MemoryStorage, type CheckpointStorage } from './storage.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const IMPLEMENTATIONS: Record<string, () => Promise<CheckpointStorage>> = {
  files: async () => {
    const d = await mkdtemp(join(tmpdir(), 'tabswarm-storage-'));
    dirs.push(d);
    return new FileStorage(d);
  },
  memory: async () => new MemoryStorage(),
};

const bytes = (...values: number[]) => Uint8Array.from(values);

for (const [kind, make] of Object.entries(IMPLEMENTATIONS)) {
  describe(`checkpoint storage: ${kind}`, () => {
    test('write, list, read and remove', async () => {
      const s = await make();
      assert.deepEqual(await s.list('shard-000'), []);
      assert.equal(await s.write('shard-000/00000001.full.ckpt', [bytes(1, 2), bytes(3)]), 3);
      await s.write('shard-000/00000002.full.ckpt', [bytes(4)]);
      await s.write('shard-001/00000001.full.ckpt', [bytes(5, 6)]);
      assert.deepEqual((await s.list('shard-000')).sort(), ['shard-000/00000001.full.ckpt', 'shard-000/00000002.full.ckpt']);
      assert.deepEqual([...(await s.read('shard-000/00000001.full.ckpt'))], [1, 2, 3]);
      assert.equal(s.bytesWritten, 6);
      await s.remove('shard-000/00000001.full.ckpt');
      assert.deepEqual(await s.list('shard-000'), ['shard-000/00000002.full.ckpt']);
      await assert.rejects(s.read('shard-000/00000001.full.ckpt'), /ENOENT/);
    });

    test('a rewrite replaces the whole file', async () => {
      const s = await make();
      await s.write('shard-000/a', [bytes(1, 2, 3, 4)]);
      await s.write('shard-000/a', [bytes(9)]);
      assert.deepEqual([...(await s.read('shard-000/a'))], [9]);
    });

    test('what is read is a copy', async () => {
      const s = await make();
      await s.write('shard-000/a', [bytes(1)]);
      (await s.read('shard-000/a'))[0] = 7;
      assert.deepEqual([...(await s.read('shard-000/a'))], [1]);
    });
  });
}

describe('checkpoint storage: files only', () => {
  test('an unfinished temporary file is never listed, and sweep removes it', async () => {
    const d = await mkdtemp(join(tmpdir(), 'tabswarm-storage-'));
    dirs.push(d);
    const s = new FileStorage(d);
    await s.write('shard-000/00000001.full.ckpt', [bytes(1)]);
    await writeFile(join(d, 'shard-000', '.tmp-00000002.full.ckpt'), bytes(1, 2));
    assert.deepEqual(await s.list('shard-000'), ['shard-000/00000001.full.ckpt']);
    assert.deepEqual(await s.sweep(['shard-000', 'shard-404']), ['shard-000/.tmp-00000002.full.ckpt']);
    assert.deepEqual(await readdir(join(d, 'shard-000')), ['00000001.full.ckpt']);
  });

  test('the test hook pauses a write after the first chunk, with only a temporary file on disk', async () => {
    const d = await mkdtemp(join(tmpdir(), 'tabswarm-storage-'));
    dirs.push(d);
    const s = new FileStorage(d, { testPauseMs: 300 });
    const writing = s.write('shard-000/00000001.full.ckpt', [bytes(1, 2), bytes(3)]);
    let names: string[] = [];
    for (let i = 0; i < 50 && names.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      names = await readdir(join(d, 'shard-000')).catch(() => []);
    }
    assert.deepEqual(names, ['.tmp-00000001.full.ckpt']);
    assert.deepEqual(await s.list('shard-000'), []);
    await writing;
    assert.deepEqual(await readdir(join(d, 'shard-000')), ['00000001.full.ckpt']);
  });
});
