/**
 * What a run's time series says about a strategy: accuracy just before each kill, just after
 * recovery, and at the end; time to a target accuracy (next to the same strategy's run without
 * failures); failover time; model updates lost to the rollback; gradients computed and applied;
 * peak CPU and memory. Then the mean and spread over repeats.
 */
import type { Sample } from '../admin/types.ts';
import type { RunRecord } from './run.ts';

export interface KillOutcome {
  /** When the kill happened (s). */
  readonly at: number;
  /** The last evaluation before the kill. */
  readonly accBefore: number | null;
  /** The first evaluation of a model that has applied updates after the restart. */
  readonly accAfter: number | null;
  /** From the kill to the first update applied again (s); includes the downtime. */
  readonly failoverSec: number | null;
  /** From the restart to the first update applied again (s). */
  readonly restartToResumeSec: number | null;
  /** Model versions lost: the version just before the kill minus the version the system resumed from. */
  readonly updatesLost: number | null;
  /** The model version the system resumed from (a checkpoint's, an adopted copy's, a replica's). */
  readonly resumedFrom: number | null;
  /** Worker steps (gradients the tabs computed) from the last evaluation before the kill to the first after resuming. */
  readonly outageSteps: number | null;
  /**
   * Outage efficiency: accuracy gained per worker step across the outage (accAfter - accBefore
   * over outageSteps), divided by accuracy gained per
   * worker step while connected just before the kill (see connectedRate). 1: a step taken
   * through the outage was worth a connected one; 0: the outage's work bought nothing; below 0:
   * the recovery lost ground. Null when either rate is unmeasurable (no evaluation, no steps, or
   * no gain while connected).
   */
  readonly outageEfficiency: number | null;
}

export interface RunMetrics {
  readonly strategy: string;
  readonly repeat: number;
  readonly baseline: boolean;
  readonly kills: KillOutcome[];
  readonly accFinal: number | null;
  /** First time the test accuracy reached the target (s), null if never. */
  readonly timeToTarget: number | null;
  readonly gradientsComputed: number | null;
  readonly updatesApplied: number;
  readonly serverCpuMeanDown: number | null;
  readonly serverCpuMeanUp: number | null;
  readonly serverRssPeakMB: number | null;
  readonly workerRssPeakMB: number | null;
}

const finite = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x);

export function analyseRun(run: RunRecord, target: number): RunMetrics {
  const s = run.samples;
  const kills = run.events.filter((e) => e.kind === 'kill');
  const restarts = run.events.filter((e) => e.kind === 'restart');
  let previousResume = 0;
  const outcomes: KillOutcome[] = kills.map((k, i) => {
    const restart = restarts.find((r) => r.t >= k.t);
    const before = s.filter((x) => x.t <= k.t && finite(x.accuracy)).at(-1);
    // The harness reads the victim's version just before the SIGKILL and puts it in the event.
    // The SIGKILL lands a moment after the event is marked: the victim's last sample is the one
    // before the first sample with fewer nodes up. What it applied until then counts as before.
    const nextKill = kills[i + 1]?.t ?? Infinity;
    const upAtKill = s.filter((x) => x.t <= k.t).at(-1)?.nodesUp ?? 1;
    const downIndex = s.findIndex((x) => x.t > k.t && x.nodesUp < upAtKill);
    const lastAlive = downIndex > 0 ? s[downIndex - 1]! : s.filter((x) => x.t <= k.t).at(-1);
    const killedAt = /at model version (\d+)/.exec(k.detail);
    const vs = [killedAt ? Number(killedAt[1]) : null, lastAlive?.version ?? null].filter(finite);
    const vBefore = vs.length ? Math.max(...vs) : null;
    const appliedAtKill = lastAlive?.updatesApplied ?? 0;
    const from = downIndex >= 0 ? s[downIndex]!.t : k.t;
    const after = s.filter((x) => x.t >= from && x.t < nextKill && x.nodesUp > 0);
    const resumed = after.find((x) => x.updatesApplied > appliedAtKill);
    // Resumed from: the version at resumption less the updates applied since the restart
    // (a stateless PS reports version 0 until it adopts the workers' copy, so the first
    // version seen after the restart is not it).
    const vResumed = resumed && finite(resumed.version) ? resumed.version - (resumed.updatesApplied - appliedAtKill) : null;
    const accAfter = resumed ? s.find((x) => x.t >= resumed.t && x.t < nextKill && finite(x.accuracy)) : undefined;
    const computedAt = (t: number) => s.filter((x) => x.t <= t && finite(x.extra?.gradientsComputed)).at(-1)?.extra?.gradientsComputed ?? null;
    // Steps and gain are both counted from the last evaluation before the kill (up to one
    // evaluation period of connected steps is charged to the outage, on both sides of the ratio).
    const atBefore = before ? computedAt(before.t) : null;
    const atAfter = accAfter ? computedAt(accAfter.t) : null;
    const outageSteps = atBefore !== null && atAfter !== null ? atAfter - atBefore : null;
    const outageRate = before && accAfter && outageSteps ? (accAfter.accuracy! - before.accuracy!) / outageSteps : null;
    const connected = before && accAfter ? connectedRate(s, before, Math.max(previousResume, k.t - (accAfter.t - k.t))) : null;
    if (resumed) previousResume = resumed.t;
    return {
      at: k.t,
      accBefore: before?.accuracy ?? null,
      accAfter: accAfter?.accuracy ?? null,
      failoverSec: resumed ? resumed.t - k.t : null,
      restartToResumeSec: resumed && restart ? resumed.t - restart.t : null,
      updatesLost: vBefore !== null && vResumed !== null ? Math.max(0, vBefore - vResumed) : null,
      resumedFrom: vResumed,
      outageSteps,
      outageEfficiency: outageRate !== null && connected ? outageRate / connected : null,
    };
  });
  const accs = s.filter((x) => finite(x.accuracy));
  const down = s.filter((x) => x.nodesUp === 0 || kills.some((k) => x.t > k.t && x.t < (restarts.find((r) => r.t >= k.t)?.t ?? k.t)));
  const up = s.filter((x) => !down.includes(x));
  const mean = (xs: (number | null | undefined)[]) => {
    const v = xs.filter(finite);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const peak = (xs: (number | null | undefined)[]) => {
    const v = xs.filter(finite);
    return v.length ? Math.max(...v) : null;
  };
  return {
    strategy: run.strategy,
    repeat: run.repeat,
    baseline: run.baseline,
    kills: outcomes,
    accFinal: accs.at(-1)?.accuracy ?? null,
    timeToTarget: accs.find((x) => x.accuracy! >= target)?.t ?? null,
    gradientsComputed: s.at(-1)?.extra?.gradientsComputed ?? null,
    updatesApplied: s.at(-1)?.updatesApplied ?? 0,
    serverCpuMeanDown: mean(down.map((x) => x.extra?.serverCpu)),
    serverCpuMeanUp: mean(up.map((x) => x.extra?.serverCpu)),
    serverRssPeakMB: peak(s.map((x) => x.extra?.serverRssMB)),
    workerRssPeakMB: peak(s.map((x) => x.extra?.workerRssMB)),
  };
}

/**
 * Accuracy gained per worker step while connected, over the window that ends at `end` (the
 * last evaluation before a kill) and starts at the last evaluation at or before `from` (as long
 * before the kill as the outage lasted, but not before the previous recovery). Null when the
 * window holds no steps or no gain (accuracy that did not rise while connected gives no scale).
 * Equal wall time on both sides keeps the two rates at comparable points of the learning curve.
 */
function connectedRate(s: readonly Sample[], end: Sample, from: number): number | null {
  const evals = s.filter((x) => x.t < end.t && finite(x.accuracy) && finite(x.extra?.gradientsComputed));
  // The last evaluation at or before `from`, or the first after it (the run's first evaluation
  // comes a moment after t = 0).
  const start = evals.filter((x) => x.t <= from).at(-1) ?? evals.find((x) => x.t > from);
  const endSteps = end.extra?.gradientsComputed;
  if (!start || !finite(endSteps)) return null;
  const steps = endSteps - start.extra!.gradientsComputed!;
  const gain = end.accuracy! - start.accuracy!;
  return steps > 0 && gain > 0 ? gain / steps : null;
}

/** Mean and sample standard deviation of the finite values (sd null with fewer than two). */
export function spread(xs: readonly (number | null | undefined)[]): { mean: number | null; sd: number | null; n: number } {
  const v = xs.filter(finite);
  if (!v.length) return { mean: null, sd: null, n: 0 };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : null;
  return { mean, sd, n: v.length };
}
