/**
 * What a run's time series says about a strategy: accuracy just before each kill, just after
 * recovery, and at the end; time to a target accuracy (next to the same strategy's run without
 * failures); failover time; model updates lost to the rollback; gradients computed and applied;
 * peak CPU and memory. Then the mean and spread over repeats.
 */
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
    return {
      at: k.t,
      accBefore: before?.accuracy ?? null,
      accAfter: accAfter?.accuracy ?? null,
      failoverSec: resumed ? resumed.t - k.t : null,
      restartToResumeSec: resumed && restart ? resumed.t - restart.t : null,
      updatesLost: vBefore !== null && vResumed !== null ? Math.max(0, vBefore - vResumed) : null,
      resumedFrom: vResumed,
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

/** Mean and sample standard deviation of the finite values (sd null with fewer than two). */
export function spread(xs: readonly (number | null | undefined)[]): { mean: number | null; sd: number | null; n: number } {
  const v = xs.filter(finite);
  if (!v.length) return { mean: null, sd: null, n: 0 };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : null;
  return { mean, sd, n: v.length };
}
