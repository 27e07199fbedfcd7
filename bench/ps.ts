/**
 * PS gradient ingest benchmark: `npm run bench:ps [-- --seconds 5 --warmup 1 --rounds 3 --clients 1,4,16]`.
 *
 * What it measures: how many fashion-cnn gradients (813,258 float32 = 3.25 MB each) a server
 * takes in and acknowledges per second over loopback, with 1, 4 and 16 concurrent clients, each
 * keeping exactly one push in flight (send, await the ack, send the next). Per cell: updates/s,
 * gradient MB/s (3.25 MB x updates/s, the useful payload whatever the encoding), p50/p99
 * push-to-ack latency, and the CPU use of server, clients and other processes. Three servers:
 *
 *   main     the real tabswarm PS (buildServer + listen): decode and validate the binary frame,
 *            SGD apply, metrics, binary ACK. Clients join over HTTP and push over /ws.
 *   ceiling  a bare `ws` WebSocketServer that receives the same bytes and answers 8 bytes: what
 *            moving 3.25 MB through a WebSocket costs on this machine, and nothing else.
 *   json     what JSON-based browser systems do: the same gradient as a JSON array in a WebSocket
 *            text message; the server JSON.parses it, applies w -= lr*g to a Float32Array, acks.
 *
 * main and ceiling are measured once per push codec (`--codecs`, default float32,f16,int8,topk):
 * the client sends the same gradient coded (shared/codec/, as `--codec` workers push it), and the
 * ceiling receives the same coded bytes, so main/ceiling is per codec; main/json compares each
 * codec's main against the one JSON cell.
 *
 * Each server runs in its own child process (this file, run as `serve <kind>`), so clients and
 * server do not share an event loop; all clients live in this process. Clients send pre-encoded
 * bytes (only the seq changes), so the client side costs the same for all three servers and the
 * JSON path is not charged for JSON.stringify (printed separately). The machine is shared and
 * other processes come and go: every cell is repeated `--rounds` times, interleaved, and the best
 * round (the least disturbed) is reported, with the CPU that other processes used during it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';
import { deriveLayout } from '../shared/layout.ts';
import { getModel } from '../shared/models.ts';
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { CODECS, CODEC_NAMES, Codec, type CodecName } from '../shared/codec/index.ts';
import { HEADER_BYTES, MsgType, encodeCodedPush, encodeFrame, writeHeader } from '../shared/protocol.ts';
import { cpuMeter, machineLine, ownCpuMs, pct, printTable, pushWindow, treeCpuMs } from './sys.ts';

const MODEL = 'fashion-cnn';
const LAYOUT = deriveLayout(getModel(MODEL));
const GRAD_MB = (4 * LAYOUT.size) / 1e6;
const KINDS = ['main', 'ceiling', 'json'] as const;
type Kind = (typeof KINDS)[number];

// ---- Servers (child processes) ---------------------------------------------------------------

async function serve(kind: Kind): Promise<void> {
  let close: () => Promise<unknown>;
  let port: number;
  if (kind === 'main') {
    const { buildServer } = await import('../server/app.ts');
    const { app } = await buildServer({ model: MODEL, dataset: 'synthetic', evalEveryMs: 0, logger: false });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    close = () => app.close();
  } else {
    // Room for the JSON text (about 23 bytes per value); the binary frame is 3.25 MB.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 64 << 20 });
    await once(wss, 'listening');
    port = (wss.address() as AddressInfo).port;
    const weights = new Float32Array(LAYOUT.size);
    wss.on('connection', (socket) => {
      socket.on('message', (data: Buffer, isBinary) => {
        const ack = Buffer.alloc(8);
        if (kind === 'json') {
          if (isBinary) return socket.close(1003, 'text only');
          const { seq, grad } = JSON.parse(data.toString('utf8')) as { seq: number; grad: number[] };
          if (grad.length !== weights.length) return socket.close(1008, 'bad length');
          for (let i = 0; i < weights.length; i++) weights[i]! -= 0.01 * grad[i]!;
          ack.writeUInt32LE(seq, 0);
        } else {
          ack.writeUInt32LE(data.readUInt32LE(20), 0); // echo the frame's seq, nothing else
        }
        socket.send(ack);
      });
    });
    close = () => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); });
  }
  const stop = (): void => void close().finally(() => process.exit(0));
  process.on('disconnect', stop); // the parent went away: never linger
  process.on('SIGTERM', stop);
  process.send!({ port });
}

// ---- Clients (this process) ------------------------------------------------------------------

interface Client {
  readonly socket: WebSocket;
  /** Sends push number `seq`; resolves on its ack. */
  push(seq: number): Promise<void>;
}

/** A random, finite gradient of gradient-like magnitude (normal, sd 1e-3). */
function randomGradient(seed: number): Float32Array {
  const g = new Float32Array(LAYOUT.size);
  let s = seed >>> 0 || 1;
  const u = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 1) / 4294967297;
  for (let i = 0; i < g.length; i++) g[i] = 1e-3 * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return g;
}

async function connect(kind: Kind, port: number, index: number, codec: CodecName): Promise<Client> {
  const grad = randomGradient(index + 1);
  let url = `ws://127.0.0.1:${port}/`;
  let send: (seq: number) => Buffer | Uint8Array;
  if (kind === 'json') {
    // {"seq":N         ,"grad":[...]}: N goes into a fixed slot of spaces (valid JSON), so every
    // push reuses one pre-encoded buffer.
    const bytes = Buffer.from('{"seq":' + ' '.repeat(10) + ',"grad":' + JSON.stringify(Array.from(grad)) + '}', 'utf8');
    send = (seq) => (bytes.write(String(seq).padEnd(10, ' '), 7, 'latin1'), bytes);
  } else {
    let workerId = 0;
    let layoutHash = LAYOUT.hash;
    if (kind === 'main') {
      const res = await fetch(`http://127.0.0.1:${port}/api/join`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      const join = (await res.json()) as { workerId: number; token: string; layoutHash: number; layoutSize: number };
      if (join.layoutSize !== LAYOUT.size) throw new Error(`PS layout has ${join.layoutSize} values, expected ${LAYOUT.size}`);
      ({ workerId, layoutHash } = join);
      url = `ws://127.0.0.1:${port}/ws?token=${join.token}`;
    }
    // One PUSH frame encoded once (coded as `codec` says); each push rewrites its header in place.
    const header = { type: MsgType.PUSH, layoutHash, modelVersion: 0, workerId, seq: 0, count: 1 } as const;
    const frame = codec === 'float32' ? encodeFrame(header, grad) : encodeCodedPush(header, { dtype: Codec[codec], bytes: CODECS[codec].encode(grad), values: LAYOUT.size });
    send = (seq) => (writeHeader(frame, { ...header, modelVersion: seq - 1, seq }, LAYOUT.size, Codec[codec]), frame);
  }
  const socket = new WebSocket(url, { maxPayload: 64 << 20 });
  await once(socket, 'open');
  const pending = new Map<number, () => void>();
  socket.on('message', (ack: Buffer, isBinary) => {
    if (kind === 'main' && !isBinary) return; // the PS's JSON control messages (hello, assign)
    const seq = ack.byteLength >= HEADER_BYTES ? ack.readUInt32LE(20) : ack.readUInt32LE(0);
    pending.get(seq)?.();
    pending.delete(seq);
  });
  socket.on('close', (code, reason) => {
    if (pending.size > 0) console.error(`${kind}: socket closed with a push in flight: ${code} ${reason.toString()}`);
  });
  // ws copies (masks) the bytes before writing, and the next push waits for this one's ack,
  // so reusing one buffer is safe.
  return { socket, push: (seq) => new Promise<void>((resolve) => { pending.set(seq, resolve); socket.send(send(seq), { binary: kind !== 'json' }); }) };
}

interface Cell {
  readonly updatesPerSec: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU use over the window in % of one core: server process, client process, other processes. */
  readonly cpu: Record<'server' | 'client' | 'others', number>;
}

/** Runs `n` clients against one server: `warmupMs` untimed, then `seconds` timed. */
async function measure(kind: Kind, server: Server, n: number, seconds: number, warmupMs: number, codec: CodecName): Promise<Cell> {
  const clients = await Promise.all(Array.from({ length: n }, (_, i) => connect(kind, server.port, i, codec)));
  const r = await pushWindow(clients, seconds, warmupMs, () => cpuMeter({ server: () => treeCpuMs(server.child.pid!), client: ownCpuMs }), (meter) => meter());
  return { updatesPerSec: r.updatesPerSec, p50: r.p50, p99: r.p99, cpu: r.end };
}

// ---- Orchestration ---------------------------------------------------------------------------

interface Server {
  readonly child: ChildProcess;
  readonly port: number;
}
const children: ChildProcess[] = [];
const alive = (c: ChildProcess): boolean => c.exitCode === null && c.signalCode === null;
const killChildren = (): void => children.filter(alive).forEach((c) => c.kill('SIGKILL'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startServer(kind: Kind): Promise<Server> {
  const child = fork(fileURLToPath(import.meta.url), ['serve', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  const exited = once(child, 'exit').then(() => { throw new Error(`${kind} server exited before listening`); });
  const [msg] = (await Promise.race([once(child, 'message'), exited])) as [{ port: number }];
  return { child, port: msg.port };
}

/** SIGTERM (the servers close and exit, writing e.g. a --cpu-prof profile), SIGKILL after 5 s. */
async function stopChildren(): Promise<void> {
  await Promise.all(children.filter(alive).map((c) => { const exited = once(c, 'exit'); c.kill('SIGTERM'); return Promise.race([exited, sleep(5000)]); }));
  killChildren();
}

/** Whether `ws` masks and unmasks with the native `bufferutil` addon or its JS fallback. */
function wsMasking(): string {
  if (process.env.WS_NO_BUFFER_UTIL) return 'JS fallback (WS_NO_BUFFER_UTIL set)';
  try {
    createRequire(createRequire(import.meta.url).resolve('ws')).resolve('bufferutil');
    return 'native bufferutil';
  } catch {
    return 'JS fallback (bufferutil not installed)';
  }
}

const OPTIONS = defineOptions({
  seconds: { type: 'number', min: 0, exclusive: 'min', arg: 'S', default: 5, help: 'measured window per cell' },
  warmup: { type: 'number', min: 0, arg: 'S', default: 1, help: 'warm-up before each window' },
  rounds: { type: 'int', min: 1, default: 3, help: 'rounds, the best kept' },
  clients: { type: 'list', of: 'int', min: 1, arg: 'N,...', default: [1, 4, 16], help: 'client counts to measure' },
  codecs: { type: 'list', of: 'string', arg: 'C,...', values: CODEC_NAMES, default: [...CODEC_NAMES], help: 'push codecs for the main and ceiling cells' },
});

async function main(): Promise<void> {
  const { seconds, rounds, warmup, clients: concurrencies, codecs: codecList } = parseCommandLine(OPTIONS, 'npm run bench:ps -- [options]: PS gradient ingest (docs/benchmarks.md)');
  const warmupMs = warmup * 1000;

  console.log(machineLine());
  console.log(`model ${MODEL}: ${LAYOUT.size} float32 = ${GRAD_MB.toFixed(2)} MB per gradient; ws masking: ${wsMasking()}`);
  console.log(`${seconds} s per cell after ${warmupMs / 1000} s warm-up, best of ${rounds} interleaved rounds; each server in its own process, all clients in this one`);

  // What encoding costs the sender, which the cells leave out (clients pre-encode).
  const g = randomGradient(99);
  const time = (f: () => unknown): number => { f(); const t = performance.now(); for (let i = 0; i < 3; i++) f(); return (performance.now() - t) / 3; };
  const binMs = time(() => encodeFrame({ type: MsgType.PUSH, layoutHash: LAYOUT.hash, modelVersion: 0, workerId: 1, seq: 1, count: 1 }, g));
  const jsonMs = time(() => JSON.stringify(Array.from(g)));
  const jsonMb = Buffer.byteLength(JSON.stringify(Array.from(g))) / 1e6;
  console.log(`client-side encoding of one gradient: encodeFrame ${binMs.toFixed(1)} ms (${GRAD_MB.toFixed(2)} MB); JSON.stringify ${jsonMs.toFixed(0)} ms (${jsonMb.toFixed(1)} MB of text)\n`);

  const servers = new Map<Kind, Server>();
  for (const kind of KINDS) servers.set(kind, await startServer(kind));

  // Cells: main and ceiling once per codec (the same coded bytes to both), json once.
  const codecs = codecList as CodecName[];
  const cells: { kind: Kind; codec: CodecName | 'json' }[] = [
    ...codecs.flatMap((codec) => [{ kind: 'main' as Kind, codec }, { kind: 'ceiling' as Kind, codec }]),
    { kind: 'json', codec: 'json' },
  ];
  for (const codec of codecs) {
    const bytes = codec === 'float32' ? 4 * LAYOUT.size : CODECS[codec].encode(g).byteLength;
    console.log(`  ${codec}: ${(bytes / 1e6).toFixed(2)} MB per push`);
  }
  // Rounds of every cell, round-robin over the servers, so that a burst of load from another
  // process hits all of them alike; each cell reports its best round.
  const runs = new Map<string, Cell[]>();
  for (let round = 1; round <= rounds; round++) {
    for (const n of concurrencies) {
      for (const { kind, codec } of cells) {
        const c = await measure(kind, servers.get(kind)!, n, seconds, warmupMs, codec === 'json' ? 'float32' : codec);
        runs.set(`${kind}/${codec}/${n}`, [...(runs.get(`${kind}/${codec}/${n}`) ?? []), c]);
        console.log(`  round ${round}/${rounds}, ${n} clients, ${kind} ${codec}: ${c.updatesPerSec.toFixed(1)} updates/s (CPU: server ${pct(c.cpu.server)}, clients ${pct(c.cpu.client)}, others ${pct(c.cpu.others)})`);
      }
    }
  }
  const best = new Map<string, Cell>();
  const rows = [['clients', 'server', 'codec', 'updates/s', 'MB/s', 'p50 ms', 'p99 ms', 'server CPU', 'server CPU ms/update', 'client CPU', 'others CPU', 'all rounds (updates/s)']];
  for (const n of concurrencies) {
    for (const { kind, codec } of cells) {
      const all = runs.get(`${kind}/${codec}/${n}`)!;
      const c = all.reduce((a, b) => (b.updatesPerSec > a.updatesPerSec ? b : a));
      best.set(`${kind}/${codec}/${n}`, c);
      rows.push([String(n), kind, codec, c.updatesPerSec.toFixed(1), (c.updatesPerSec * GRAD_MB).toFixed(0), c.p50.toFixed(1), c.p99.toFixed(1),
        pct(c.cpu.server), (c.cpu.server * 10 / c.updatesPerSec).toFixed(1), pct(c.cpu.client), pct(c.cpu.others), all.map((r) => r.updatesPerSec.toFixed(1)).join(' ')]);
    }
  }
  console.log('');
  printTable(rows, 3);
  console.log('');
  // main/ceiling and main/json side by side, one row per client count and codec.
  const ratios = [['clients', 'codec', 'main/ceiling', 'target >= 0.50', 'main/json', 'target >= 20x']];
  for (const n of concurrencies) {
    const json = best.get(`json/json/${n}`)!.updatesPerSec;
    for (const codec of codecs) {
      const main = best.get(`main/${codec}/${n}`)!.updatesPerSec;
      const ceiling = main / best.get(`ceiling/${codec}/${n}`)!.updatesPerSec;
      ratios.push([String(n), codec, ceiling.toFixed(2), ceiling >= 0.5 ? 'met' : 'MISSED', `${(main / json).toFixed(1)}x`, main / json >= 20 ? 'met' : 'MISSED']);
    }
  }
  printTable(ratios, 2);
}

if (process.argv[2] === 'serve') {
  await serve(process.argv[3] as Kind);
} else {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { killChildren(); process.exit(130); });
  process.on('exit', killChildren);
  try {
    await main();
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  } finally {
    await stopChildren();
  }
}
