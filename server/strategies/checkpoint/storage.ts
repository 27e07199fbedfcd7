/**
 * Where checkpoint files live, behind one interface with two implementations: files on disk
 * (the real one) and memory (its twin, for fast tests and experiments). The same suite
 * (storage.test.ts) runs against both.
 *
 * A write is atomic: afterwards the name holds every byte or does not exist. On disk that is
 * write to a temporary name, fsync the file, rename, fsync the directory; a crash at any point
 * leaves at most a temporary file, which `sweep` removes on the next start.
 */
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface CheckpointStorage {
  /** Where the files are, for messages. */
  readonly where: string;
  /** Bytes written by this instance, every file counted once. */
  readonly bytesWritten: number;
  /** Writes `name` (a path like `shard-000/00000001.full.ckpt`) atomically; returns its size. */
  write(name: string, chunks: readonly Uint8Array[]): Promise<number>;
  /** Names of the finished files in one folder (`shard-000`), unordered. */
  list(folder: string): Promise<string[]>;
  read(name: string): Promise<Uint8Array>;
  remove(name: string): Promise<void>;
  /** Removes the temporary files of writes that never finished; returns their names. */
  sweep(folders: readonly string[]): Promise<string[]>;
}

const TMP = '.tmp-';

export interface FileStorageOptions {
  /**
   * TEST ONLY: wait this long in the middle of every write, after part of the temporary file
   * is written and before the rename, so that a test can SIGKILL the PS mid-write.
   * Set from the environment variable TABSWARM_TEST_CHECKPOINT_PAUSE_MS. @default 0
   */
  testPauseMs?: number;
}

export class FileStorage implements CheckpointStorage {
  bytesWritten = 0;
  private readonly made = new Set<string>();

  constructor(readonly where: string, private readonly opts: FileStorageOptions = {}) {}

  async write(name: string, chunks: readonly Uint8Array[]): Promise<number> {
    const path = join(this.where, name);
    const dir = dirname(path);
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.made.add(dir);
    }
    const tmp = join(dir, TMP + name.slice(name.lastIndexOf('/') + 1));
    let size = 0;
    const fh = await open(tmp, 'w');
    try {
      for (let i = 0; i < chunks.length; i++) {
        const c = chunks[i]!;
        // writev would do, but chunk by chunk lets the test hook tear the file after the header.
        for (let at = 0; at < c.length;) at += (await fh.write(c, at, c.length - at)).bytesWritten;
        size += c.length;
        if (i === 0 && this.opts.testPauseMs) await new Promise((r) => setTimeout(r, this.opts.testPauseMs));
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    // The rename is durable only once the directory entry is.
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    this.bytesWritten += size;
    return size;
  }

  async list(folder: string): Promise<string[]> {
    try {
      return (await readdir(join(this.where, folder))).filter((n) => !n.startsWith(TMP)).map((n) => `${folder}/${n}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async read(name: string): Promise<Uint8Array> {
    const b = await readFile(join(this.where, name));
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }

  async remove(name: string): Promise<void> {
    await rm(join(this.where, name), { force: true });
  }

  async sweep(folders: readonly string[]): Promise<string[]> {
    const removed: string[] = [];
    for (const folder of folders) {
      let names: string[];
      try {
        names = await readdir(join(this.where, folder));
      } catch {
        continue;
      }
      for (const n of names.filter((n) => n.startsWith(TMP))) {
        await rm(join(this.where, folder, n), { force: true });
        removed.push(`${folder}/${n}`);
      }
    }
    return removed;
  }
}

/** The in-memory twin: same contract, nothing survives the process. */
export class MemoryStorage implements CheckpointStorage {
  readonly where = 'memory';
  bytesWritten = 0;
  readonly files = new Map<string, Uint8Array>();

  async write(name: string, chunks: readonly Uint8Array[]): Promise<number> {
    const size = chunks.reduce((n, c) => n + c.length, 0);
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    this.files.set(name, bytes);
    this.bytesWritten += size;
    return size;
  }

  async list(folder: string): Promise<string[]> {
    return [...this.files.keys()].filter((n) => n.startsWith(`${folder}/`));
  }

  async read(name: string): Promise<Uint8Array> {
    const b = this.files.get(name);
    if (!b) throw Object.assign(new Error(`ENOENT: no checkpoint ${name} in memory`), { code: 'ENOENT' });
    return Uint8Array.from(b);
  }

  async remove(name: string): Promise<void> {
    this.files.delete(name);
  }

  async sweep(): Promise<string[]> {
    return [];
  }
}
