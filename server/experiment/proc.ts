/**
 * CPU time and resident memory of a process tree, read from /proc (Linux): the experiment's
 * "CPU and memory of server and workers". Off Linux every figure is NaN.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux
const PAGE_BYTES = 4096;

interface ProcEntry { ppid: number; cpuMs: number; rssBytes: number }

function scan(): Map<number, ProcEntry> {
  const procs = new Map<number, ProcEntry>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // Fields after the ')' closing the command name: state ppid ... utime(14) stime(15) ... rss(24).
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(name), { ppid: Number(f[1]), cpuMs: (Number(f[11]) + Number(f[12])) * TICK_MS, rssBytes: Number(f[21]) * PAGE_BYTES });
    } catch {
      // exited while we looked
    }
  }
  return procs;
}

export interface TreeUsage {
  /** CPU time of the live processes of the trees, ms (all cores added up). */
  cpuMs: number;
  /** Sum of their resident set sizes, bytes. */
  rssBytes: number;
  processes: number;
  /** CPU ms per live process of the trees. */
  perPid: Map<number, number>;
}

/** CPU and RSS of every live process under (and including) any of `roots`. */
export function treeUsage(roots: readonly number[]): TreeUsage {
  let procs: Map<number, ProcEntry>;
  try {
    procs = scan();
  } catch {
    return { cpuMs: NaN, rssBytes: NaN, processes: 0, perPid: new Map() };
  }
  const rootSet = new Set(roots);
  const usage: TreeUsage = { cpuMs: 0, rssBytes: 0, processes: 0, perPid: new Map() };
  for (const [pid, p] of procs) {
    for (let q: number | undefined = pid, hops = 0; q !== undefined && q > 0 && hops < 64; q = procs.get(q)?.ppid, hops++) {
      if (rootSet.has(q)) {
        usage.cpuMs += p.cpuMs;
        usage.rssBytes += p.rssBytes;
        usage.processes += 1;
        usage.perPid.set(pid, p.cpuMs);
        break;
      }
    }
  }
  return usage;
}

/**
 * CPU utilisation of process trees between calls, in percent of one core. Tracked per process,
 * so a killed node takes only its own time with it and a restarted one counts from zero.
 */
export class TreeCpuMeter {
  private last: { at: number; perPid: Map<number, number> } | undefined;

  /** Samples the trees under `roots`: CPU % since the last call (null the first time) and RSS. */
  sample(roots: readonly number[], at = Date.now()): { cpuPercent: number | null; rssMB: number } {
    const usage = treeUsage(roots);
    const prev = this.last;
    this.last = { at, perPid: usage.perPid };
    const rssMB = usage.rssBytes / 2 ** 20;
    if (!prev || at <= prev.at) return { cpuPercent: null, rssMB };
    let busy = 0;
    for (const [pid, ms] of usage.perPid) busy += Math.max(0, ms - (prev.perPid.get(pid) ?? 0));
    return { cpuPercent: (busy / (at - prev.at)) * 100, rssMB };
  }
}
