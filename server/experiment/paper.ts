/**
 * What Cao et al. 2024 report for the reference schedule (../shared/REFERENCE.md, "Results"):
 * test accuracy just before a kill and just after the restart, per strategy, for the paper's
 * one-kill and two-kill experiments. The figures overlay these points and the summary sets
 * them beside ours. Strategies the paper gives no number for (chain replication: "roughly
 * flat") have none here, rather than an invented one.
 */

export interface PaperPoint {
  /** Which kill of the schedule (0 = the first). */
  readonly kill: number;
  readonly before: number;
  readonly after: number;
}

export interface PaperResults {
  /** The one-kill experiment (kill at 30 s), per strategy id of the harness. */
  readonly oneKill: Readonly<Record<string, readonly PaperPoint[]>>;
  /** The two-kill experiment (kills at 30 s and 80 s). */
  readonly twoKills: Readonly<Record<string, readonly PaperPoint[]>>;
  /** "All strategies end near 0.70-0.77 by 150-215 s." */
  readonly finalRange: readonly [number, number];
  readonly citation: string;
}

export const CAO_2024: PaperResults = {
  oneKill: {
    'sync-checkpoint': [{ kill: 0, before: 0.529, after: 0.473 }],
    'async-checkpoint': [{ kill: 0, before: 0.361, after: 0.294 }],
    stateless: [{ kill: 0, before: 0.281, after: 0.426 }],
  },
  twoKills: {
    stateless: [{ kill: 0, before: 0.535, after: 0.589 }, { kill: 1, before: 0.629, after: 0.689 }],
  },
  finalRange: [0.7, 0.77],
  citation: 'Cao et al. 2024',
};

/** The paper's schedule (kills at 30 s and 80 s, 20 s down): only its runs compare with its numbers. */
export function isPaperSchedule(kills: readonly number[], downtime: number): boolean {
  const k = [...kills].sort((a, b) => a - b);
  return k.length === 2 && k[0] === 30 && k[1] === 80 && downtime === 20;
}

/** The paper's points for a harness strategy id: its variants (`+checkpoint-every=10`) have none. */
export function paperPoints(table: Readonly<Record<string, readonly PaperPoint[]>>, strategy: string): readonly PaperPoint[] {
  return table[strategy] ?? [];
}
