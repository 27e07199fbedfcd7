/**
 * Helpers shared by the benchmarks: machine description, CPU accounting from /proc (so each cell
 * can say how busy the machine was with other processes while it was timed: this machine is
 * shared and has 2 cores), and a markdown table printer. Off Linux the CPU figures are NaN.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const TICK_MS = 10; // USER_HZ is 100 on Linux

export function machineLine(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return `machine: ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}, node ${process.version}, load average ${load}`;
}

/** Busy CPU time of the whole machine so far, in ms (all cores added up). */
export function machineBusyMs(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return (user! + nice! + system! + irq! + softirq! + steal!) * TICK_MS;
  } catch {
    return NaN;
  }
}

/** CPU time so far, in ms, of process `root` and all its live descendants (with reaped children's). */
export function treeCpuMs(root: number): number {
  try {
    const procs = new Map<number, { ppid: number; ms: number }>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        // Fields after the ')' that closes the command name: state ppid ... utime(14) stime cutime cstime.
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        procs.set(Number(name), { ppid: Number(f[1]), ms: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS });
      } catch {
        // the process exited while we looked
      }
    }
    let total = 0;
    for (const [pid, p] of procs) {
      for (let q: number | undefined = pid; q !== undefined && q > 0; q = procs.get(q)?.ppid) {
        if (q === root) {
          total += p.ms;
          break;
        }
      }
    }
    return total;
  } catch {
    return NaN;
  }
}

/** This process's own CPU time so far, in ms (its threads, not its children). */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * CPU use over a timed window, as % of one core, for each named meter (a function returning CPU
 * ms so far) and for 'others': the machine's busy time that none of the meters account for.
 * Call the returned function at the window's end.
 */
export function cpuMeter<K extends string>(meters: Record<K, () => number>): () => Record<K | 'others', number> {
  const start = performance.now();
  const busy0 = machineBusyMs();
  const keys = Object.keys(meters) as K[];
  const own0 = keys.map((k) => meters[k]());
  return () => {
    const ms = performance.now() - start;
    const out = {} as Record<K | 'others', number>;
    let ours = 0;
    keys.forEach((k, i) => {
      const used = meters[k]() - own0[i]!;
      ours += used;
      out[k] = (100 * used) / ms;
    });
    out.others = Math.max(0, (100 * (machineBusyMs() - busy0 - ours)) / ms);
    return out;
  };
}

export function pct(v: number | undefined): string {
  return v !== undefined && Number.isFinite(v) ? `${v.toFixed(0)}%` : '?';
}

/** Prints a markdown table; the first `left` columns are left-aligned, the rest right-aligned. */
export function printTable(rows: string[][], left = 1): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const [k, r] of rows.entries()) {
    console.log('| ' + r.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |');
    if (k === 0) console.log('|' + widths.map((w, i) => (i < left ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|');
  }
}

/** A load client: `push(seq)` resolves with the push's ack; `socket` is closed after the window. */
export interface PushClient {
  push(seq: number): Promise<unknown>;
  readonly socket: { close(): void; once(event: 'close', listener: () => void): unknown };
}

export interface WindowResult<T> {
  readonly updatesPerSec: number;
  readonly p50: number;
  readonly p99: number;
  /** What `atEnd` returned. */
  readonly end: T;
}

/**
 * Steady-state push throughput: every client keeps one push in flight (send, await the ack,
 * send the next) for `warmupMs` untimed, then `seconds` timed; every ack that arrives inside the
 * window counts, with its push-to-ack latency. `atStart` and `atEnd` run at the window's edges
 * (CPU meters, status snapshots). The clients' sockets are closed before it returns.
 */
export async function pushWindow<S, T>(clients: PushClient[], seconds: number, warmupMs: number, atStart: () => S | Promise<S>, atEnd: (start: S) => T | Promise<T>): Promise<WindowResult<T>> {
  const latencies: number[] = [];
  let windowStart = Infinity;
  let windowEnd = Infinity;
  let stopping = false;
  const loops = clients.map(async (c) => {
    for (let seq = 1; !stopping; seq++) {
      const sent = performance.now();
      await c.push(seq);
      const now = performance.now();
      if (now >= windowStart && now <= windowEnd) latencies.push(now - sent);
    }
  });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await sleep(warmupMs);
  const start = await atStart();
  windowStart = performance.now();
  windowEnd = windowStart + seconds * 1000;
  await sleep(seconds * 1000);
  const end = await atEnd(start);
  stopping = true;
  await Promise.all(loops);
  await Promise.all(clients.map((c) => new Promise<void>((resolve) => { c.socket.once('close', resolve); c.socket.close(); })));
  latencies.sort((a, b) => a - b);
  const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { updatesPerSec: latencies.length / seconds, p50: q(0.5), p99: q(0.99), end };
}
