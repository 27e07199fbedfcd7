/**
 * Checkpoint cost on fashion-cnn (813,258 float32, 3.25 MB of weights): `npm run bench:checkpoint
 * [-- --seconds 10 --warmup 2 --rounds 3 --clients 4 --every 50]`.
 *
 *   write time   one full checkpoint (encode, SHA-256, write, fsync, rename, fsync of the
 *                directory) with FileStorage on this machine's temp directory, the PS idle;
 *   throughput   three PS processes side by side (buildServer + listen, synthetic data, no
 *                evaluation): `none`, `checkpoint` sync and `checkpoint` async, both writing a full
 *                checkpoint every `--every` updates to their own temp directory. The clients (this
 *                process) keep one pre-encoded gradient push in flight each over /ws; updates/s and
 *                push-to-ack latency are measured in a window after a warm-up, in interleaved
 *                rounds (the machine is shared), median round reported. From the strategy's status,
 *                per window: checkpoints taken, mean and max write time, and the time the PS loop
 *                spent capturing (async: copying 3.25 MB; sync: nothing, it writes the live arrays
 *                while applies wait).
 * Every child is killed on exit, error or Ctrl-C; the temp directories are removed.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { deriveLayout, initWeights } from '../shared/layout.ts';
import { getModel } from '../shared/models.ts';
import { MsgType, encodeFrame, writeHeader } from '../shared/protocol.ts';
import { ParameterStore } from '../server/ps/store.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { Checkpointer } from '../server/strategies/checkpoint/checkpointer.ts';
import { ShardMap } from '../server/strategies/checkpoint/shards.ts';
import { FileStorage } from '../server/strategies/checkpoint/storage.ts';
import { pushWindow } from './sys.ts';

const MODEL = 'fashion-cnn';
const LAYOUT = deriveLayout(getModel(MODEL));
const MODES = ['none', 'sync', 'async'] as const;
type Mode = (typeof MODES)[number];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const OPTIONS = defineOptions({
  seconds: { type: 'number', min: 0, exclusive: 'min', arg: 'S', default: 10, help: 'measured window per cell' },
  warmup: { type: 'number', min: 0, arg: 'S', default: 2, help: 'warm-up before each window' },
  rounds: { type: 'int', min: 1, default: 3, help: 'interleaved rounds' },
  clients: { type: 'int', min: 1, default: 4, help: 'load clients, one push in flight each' },
  every: { type: 'int', min: 1, default: 50, help: 'checkpoint every N updates' },
});

// ---- Server (child process) ----

async function serve(mode: Mode, dir: string, every: number): Promise<void> {
  const { buildServer } = await import('../server/app.ts');
  const { app } = await buildServer({
    model: MODEL, dataset: 'synthetic', evalEveryMs: 0, logger: false, strategy: mode === 'none' ? 'none' : 'checkpoint',
    checkpointMode: mode === 'none' ? 'async' : mode, checkpointEvery: every, checkpointDir: dir, checkpointKeep: 2,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const stop = (): void => void app.close().finally(() => process.exit(0));
  process.on('disconnect', stop);
  process.on('SIGTERM', stop);
  process.send!({ port: (app.server.address() as AddressInfo).port });
}

// ---- Clients and measurement (this process) ----

interface StrategyStatus { checkpoints?: number; writeMs?: { mean: number; max: number }; captureMs?: { mean: number; max: number } }

async function status(port: number): Promise<StrategyStatus> {
  return ((await (await fetch(`http://127.0.0.1:${port}/api/status`)).json()) as { strategy: StrategyStatus }).strategy;
}

async function client(port: number, index: number): Promise<{ socket: WebSocket; push(seq: number): Promise<void> }> {
  const join = (await (await fetch(`http://127.0.0.1:${port}/api/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).json()) as { workerId: number; token: string };
  const grad = Float32Array.from({ length: LAYOUT.size }, (_, i) => 1e-3 * Math.sin(i * 0.37 + index));
  const frame = encodeFrame({ type: MsgType.PUSH, layoutHash: LAYOUT.hash, modelVersion: 0, workerId: join.workerId, seq: 0, count: 1 }, grad);
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${join.token}`, { maxPayload: 64 << 20 });
  await once(socket, 'open');
  const pending = new Map<number, () => void>();
  socket.on('message', (ack: Buffer) => {
    const seq = ack.readUInt32LE(20);
    pending.get(seq)?.();
    pending.delete(seq);
  });
  return {
    socket,
    push: (seq) => new Promise<void>((resolve) => {
      pending.set(seq, resolve);
      writeHeader(frame, { type: MsgType.PUSH, layoutHash: LAYOUT.hash, modelVersion: seq - 1, workerId: join.workerId, seq, count: 1 }, LAYOUT.size);
      socket.send(frame, { binary: true });
    }),
  };
}

interface Cell { updatesPerSec: number; p50: number; p99: number; checkpoints: number; writeMean: number; writeMax: number; captureMean: number }

async function measure(port: number, clients: number, seconds: number, warmupMs: number): Promise<Cell> {
  const cs = await Promise.all(Array.from({ length: clients }, (_, i) => client(port, i)));
  const r = await pushWindow(cs, seconds, warmupMs, () => status(port), async (s0) => ({ s0, s1: await status(port) }));
  const { s0, s1 } = r.end;
  const n = (s1.checkpoints ?? 0) - (s0.checkpoints ?? 0);
  const total = (s: StrategyStatus, k: 'writeMs' | 'captureMs') => (s[k]?.mean ?? 0) * (s.checkpoints ?? 0);
  return {
    updatesPerSec: r.updatesPerSec, p50: r.p50, p99: r.p99, checkpoints: n,
    writeMean: n ? (total(s1, 'writeMs') - total(s0, 'writeMs')) / n : NaN, writeMax: s1.writeMs?.max ?? NaN,
    captureMean: n ? (total(s1, 'captureMs') - total(s0, 'captureMs')) / n : NaN,
  };
}

/** Write time of one full checkpoint with the PS idle: `count` writes, mean and max. */
async function idleWriteTime(dir: string, count: number): Promise<{ mean: number; max: number; bytes: number }> {
  const store = new ParameterStore(LAYOUT, initWeights(LAYOUT, 1), { lr: 0.01, momentum: 0 });
  const storage = new FileStorage(dir);
  const ck = new Checkpointer(new ShardMap(store, 1), storage, { model: MODEL, layoutHash: LAYOUT.hash, layoutSize: LAYOUT.size }, { priorityFraction: 1, blockSize: 256, fullEvery: 0, keep: 2 });
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push((await ck.write(ck.capture(false))).ms);
  return { mean: times.reduce((a, b) => a + b, 0) / count, max: Math.max(...times), bytes: storage.bytesWritten / count };
}

const children: ChildProcess[] = [];
const killChildren = (): void => children.filter((c) => c.exitCode === null && c.signalCode === null).forEach((c) => c.kill('SIGKILL'));

async function main(): Promise<void> {
  const { seconds, rounds, clients, every, warmup } = parseCommandLine(OPTIONS, 'npm run bench:checkpoint -- [options]: checkpoint write time and PS throughput (docs/benchmarks.md)');
  const warmupMs = warmup * 1000;
  const root = await mkdtemp(join(tmpdir(), 'tabswarm-bench-ckpt-'));
  try {
    console.log(`${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; temp dir ${tmpdir()}`);
    const idle = await idleWriteTime(join(root, 'idle'), 10);
    console.log(`one full ${MODEL} checkpoint (${(idle.bytes / 1e6).toFixed(2)} MB), PS idle: mean ${idle.mean.toFixed(1)} ms, max ${idle.max.toFixed(1)} ms over 10 writes`);
    console.log(`throughput: ${clients} clients, one push in flight each; checkpoint every ${every} updates; ${seconds} s windows after ${warmupMs / 1000} s warm-up; ${rounds} interleaved rounds\n`);
    const servers = new Map<Mode, number>();
    for (const mode of MODES) {
      const child = fork(fileURLToPath(import.meta.url), ['serve', mode, join(root, mode), String(every)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      const [msg] = (await Promise.race([once(child, 'message'), once(child, 'exit').then(() => { throw new Error(`${mode} server exited`); })])) as [{ port: number }];
      servers.set(mode, msg.port);
    }
    const cells = new Map<Mode, Cell[]>();
    for (let round = 1; round <= rounds; round++) {
      for (const mode of MODES) {
        const c = await measure(servers.get(mode)!, clients, seconds, warmupMs);
        cells.set(mode, [...(cells.get(mode) ?? []), c]);
        console.log(`  round ${round}, ${mode}: ${c.updatesPerSec.toFixed(1)} updates/s, p99 ${c.p99.toFixed(0)} ms, ${c.checkpoints} checkpoints, write ${c.writeMean.toFixed(1)} ms`);
      }
    }
    const base = [...cells.get('none')!].sort((a, b) => a.updatesPerSec - b.updatesPerSec)[Math.floor((rounds - 1) / 2)]!.updatesPerSec;
    console.log('\n| PS | updates/s | vs none | p50 ms | p99 ms | checkpoints/window | write ms (mean / max) | capture ms in the loop | all rounds (updates/s) |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const mode of MODES) {
      const all = cells.get(mode)!;
      const c = [...all].sort((a, b) => a.updatesPerSec - b.updatesPerSec)[Math.floor((all.length - 1) / 2)]!;
      const ck = mode === 'none' ? '—' : String(c.checkpoints);
      const write = mode === 'none' ? '—' : `${c.writeMean.toFixed(1)} / ${c.writeMax.toFixed(1)}`;
      const capture = mode === 'none' ? '—' : c.captureMean.toFixed(2);
      console.log(`| ${mode === 'none' ? 'none' : `checkpoint ${mode}`} | ${c.updatesPerSec.toFixed(1)} | ${(c.updatesPerSec / base).toFixed(2)} | ${c.p50.toFixed(1)} | ${c.p99.toFixed(1)} | ${ck} | ${write} | ${capture} | ${all.map((x) => x.updatesPerSec.toFixed(1)).join(' ')} |`);
    }
  } finally {
    await Promise.all(children.map(async (c) => { if (c.exitCode === null && c.signalCode === null) { const e = once(c, 'exit'); c.kill('SIGTERM'); await Promise.race([e, sleep(5000)]); } }));
    killChildren();
    await rm(root, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'serve') {
  await serve(process.argv[3] as Mode, process.argv[4]!, Number(process.argv[5]));
} else {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { killChildren(); process.exit(130); });
  process.on('exit', killChildren);
  await main();
}
