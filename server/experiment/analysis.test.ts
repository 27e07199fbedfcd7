// Outage efficiency (analysis.ts) on a run built by hand, so every figure has a known answer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunEvent, Sample } from '../admin/types.ts';
import { analyseRun } from './analysis.ts';
import type { RunRecord } from './run.ts';

/**
 * Tabs computing 1 gradient a second throughout; the PS killed at 40.5 s, restarted at
 * 60 s, applying again at 62 s; evaluations every 2 s while a PS is up. Accuracy rises 0.01 a
 * step while connected; across the outage it gains `outageGain` in all.
 */
function run(outageGain: number): RunRecord {
  const samples: Sample[] = [];
  let accAtKill = 0;
  let acc = 0.1;
  let applied = 0;
  for (let t = 0; t <= 100; t++) {
    const up = t <= 40 || t >= 60;
    if (t <= 40 || t >= 62) {
      applied++;
      acc += 0.01;
    }
    if (t === 62) acc = accAtKill + outageGain;
    const evaluated = up && t % 2 === 0;
    samples.push({ t, at: t * 1000, version: up ? applied : null, updatesApplied: applied, updatesPerSec: 1, accuracy: evaluated ? acc : null, loss: null, buffered: 0, workers: 1, examplesPerSec: 1, nodesUp: up ? 1 : 0, extra: { gradientsComputed: t } });
    if (t === 40) accAtKill = acc;
  }
  const events: RunEvent[] = [
    { t: 40.5, at: 40_500, kind: 'kill', detail: `SIGKILL of the PS at model version ${40}` },
    { t: 60, at: 60_000, kind: 'restart', detail: 'restarted' },
  ];
  return { strategy: 'stateless', label: 'stateless', repeat: 1, baseline: false, samples, events } as unknown as RunRecord;
}
test('outage efficiency: gain per step across the outage over gain per step while connected', () => {
  // Connected: +0.01 a step (over 18 s .. 40 s, as long as the outage lasted). Outage: from the
  // evaluation at 40 s to the first after resuming (62 s): 22 steps. A gain of 0.11 is 0.005 a
  // step: 0.5.
  const half = analyseRun(run(0.11), 0.99).kills[0]!;
  assert.equal(half.outageSteps, 22);
  assert.ok(Math.abs(half.outageEfficiency! - 0.5) < 1e-9, String(half.outageEfficiency));
  // Nothing gained: 0. Ground lost (a rollback): below 0.
  assert.ok(Math.abs(analyseRun(run(0), 0.99).kills[0]!.outageEfficiency!) < 1e-9);
  assert.ok(analyseRun(run(-0.2), 0.99).kills[0]!.outageEfficiency! < 0);
  // As good as connected: 1.
  assert.ok(Math.abs(analyseRun(run(0.22), 0.99).kills[0]!.outageEfficiency! - 1) < 1e-9);
});
