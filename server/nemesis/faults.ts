/**
 * The nemesis's fault matrix, as data (hivemind names its faults in an Enum; Jepsen's nemesis
 * takes a schedule of named operations): each fault says what it hits, how, and for how long.
 * A schedule is a list of fault names, built from counts and shuffled by a seed, so a failing
 * run is replayed exactly by its seed and counts (`bench/nemesis.ts --seed`).
 */
import { mulberry32 } from '../../shared/layout.ts';

/** What a fault hits, resolved against the chain and the ensemble at the moment it fires. */
export type FaultTarget = 'head' | 'middle' | 'tail' | 'zk-any' | 'zk-leader';

/**
 * `kill`: SIGKILL, then a fresh process takes its place (a node joins at the tail; a ZooKeeper
 * server restarts with the same ports and data) after `downMs`. `pause`: SIGSTOP, SIGCONT after
 * `downMs`; the process keeps its sockets and sessions and answers nothing meanwhile.
 */
export type FaultAction = 'kill' | 'pause';

export interface Fault {
  readonly name: FaultName;
  readonly target: FaultTarget;
  readonly action: FaultAction;
  /** How long the target stays down or stopped, in ZooKeeper session timeouts (node faults) or ms. */
  readonly down: { readonly sessions: number } | { readonly ms: number };
  /** What the fault is for, for the report. */
  readonly why: string;
}

/** Every fault the nemesis knows, by name (a name declared twice is a compile error). */
export const FAULTS = {
  'kill-head': { target: 'head', action: 'kill', down: { ms: 0 }, why: 'workers must find the new head; the updates only the head held were never acked (sync)' },
  'kill-middle': { target: 'middle', action: 'kill', down: { ms: 0 }, why: 'the predecessor must resend to the new successor what the tail has not acked' },
  'kill-tail': { target: 'tail', action: 'kill', down: { ms: 0 }, why: 'the new tail must ack what it holds and the old tail never acked' },
  'pause-head': { target: 'head', action: 'pause', down: { sessions: 2 }, why: 'a head silent past its session timeout is dropped; when it runs again it must be fenced and rejoin at the tail, never ack a write' },
  'pause-middle': { target: 'middle', action: 'pause', down: { sessions: 2 }, why: 'forwarding stalls until the stopped middle is dropped; the head must resend to the tail what it has not acked' },
  'pause-tail': { target: 'tail', action: 'pause', down: { sessions: 2 }, why: 'acks stall until the stopped tail is dropped; then its predecessor acks as tail' },
  'pause-zk': { target: 'zk-any', action: 'pause', down: { sessions: 0.6 }, why: 'ZooKeeper silent for less than a session: nodes go suspect, nothing reconfigures' },
  'kill-zk': { target: 'zk-any', action: 'kill', down: { sessions: 0.5 }, why: 'a ZooKeeper server crashes and restarts from its data; sessions survive' },
  'kill-zk-leader': { target: 'zk-leader', action: 'kill', down: { ms: 0 }, why: 'the ensemble elects a new leader; clients reconnect to a follower' },
} as const satisfies Record<string, Omit<Fault, 'name'>>;

export type FaultName = keyof typeof FAULTS;
export const FAULT_NAMES = Object.keys(FAULTS) as FaultName[];

export function fault(name: FaultName): Fault {
  return { name, ...FAULTS[name] } as Fault;
}

/** The milliseconds a fault keeps its target down, given the nodes' session timeout. */
export function downMs(f: Fault, sessionMs: number): number {
  return 'ms' in f.down ? f.down.ms : Math.round(f.down.sessions * sessionMs);
}

/** Node faults are what failover is measured on; ZooKeeper faults only must not break anything. */
export function hitsNode(f: Fault): boolean {
  return f.target === 'head' || f.target === 'middle' || f.target === 'tail';
}

/** `counts` faults of each name, in an order shuffled by `seed` (Fisher-Yates). */
export function schedule(counts: Partial<Record<FaultName, number>>, seed: number): Fault[] {
  const list: Fault[] = [];
  for (const name of FAULT_NAMES) {
    const n = counts[name] ?? 0;
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`schedule: count of '${name}' must be a non-negative integer, got ${n}`);
    for (let i = 0; i < n; i++) list.push(fault(name));
  }
  const rand = mulberry32(seed); // reproducible from its seed
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}

/** How many faults of each name a schedule holds, for the report. */
export function tally(faults: readonly Fault[]): Partial<Record<FaultName, number>> {
  const out: Partial<Record<FaultName, number>> = {};
  for (const f of faults) out[f.name] = (out[f.name] ?? 0) + 1;
  return out;
}
