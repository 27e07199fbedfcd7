/**
 * Untrusted volunteers, in real processes: a PS (`tabswarm start`) and Node workers
 * (`tabswarm worker`), one of them hostile through the test-only `--attack` (client/attack.ts).
 *
 *   - clean: two honest workers, the default aggregator: the reference accuracy;
 *   - `--aggregator none` (and the output guard's norm check off): one worker pushing its
 *     gradients ×1e30 ruins the model (test loss about 1e29), so this file can fail;
 *   - the default aggregator: the same attack leaves accuracy within 5 points of clean, and the
 *     attacker, clipped push after push, is disconnected as a repeat offender (PS_OFFENDER) and
 *     kept out, shown in /metrics and /api/status;
 *   - two of six workers pushing -2 g (within the clipping radius): `clip` with its direction
 *     check and its memory of excess off loses the model, so this can fail; the default keeps
 *     accuracy within 5 points of clean and disconnects the flippers (reason `direction`);
 *   - every other attack of the list (×1e3, noise, zero pushes, a little is enough,
 *     inner-product manipulation, replay, label flipping), one worker of six: the default keeps
 *     accuracy within 5 points of clean;
 *   - a worker lying about its base version or count is refused with the catalogued code.
 *
 * Accuracy bounds across attacks and aggregators are measured in bench/byzantine.ts.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { latestAccuracy, spawnCli, startPs, until, type Proc, type PsProc, type SeriesPoint, type Status } from './helpers.ts';

const STEPS = '200';
const opened: Proc[] = [];
after(async () => {
  for (const p of opened.reverse()) await p.kill('SIGKILL');
});

async function ps(args: string[]): Promise<PsProc> {
  const p = await startPs(['--model', 'mnist-logreg', '--dataset', 'mnist', '--shards', '8', '--eval-every', '100', '--eval-examples', '2000', '--seed', '3', ...args]);
  opened.push(p);
  return p;
}

function worker(p: PsProc, seed: number, more: string[] = [], steps = STEPS): Proc {
  const w = spawnCli(['worker', '--url', p.url, '--seed', String(seed), '--steps', steps, ...more]);
  opened.push(w);
  return w;
}

async function metric(p: PsProc, re: RegExp): Promise<number> {
  const text = await (await fetch(new URL('/metrics', p.url))).text();
  return text.split('\n').filter((l) => re.test(l) && !l.startsWith('#')).reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

/**
 * Two honest workers and optionally one attacker, to the end of their steps: the evaluation of
 * the final version, and the mean accuracy over the last 40% of the versions (at least five
 * evaluations, one every 100 ms), which judges the model rather than the instant the last push
 * landed (the attacker may push last, alone, with clipped steps of twice the median norm).
 * mnist-logreg's SGD swings by up to 10 points from one evaluation to the next even in a clean
 * run (loaded machine: 0.80, 0.73, 0.85); a mean of the last fifth, three evaluations 500 ms
 * apart, failed on such a swing with both cores kept busy (0.712 0.6305 0.864 against 0.79 0.85
 * 0.84 clean), as this file failed a CI run.
 */
async function run(args: string[], attack?: string, o: { honest?: number; hostile?: number; steps?: string } = {}): Promise<{ point: SeriesPoint; late: number; lateSeries: number[]; p: PsProc; attacker?: Proc; attackers: Proc[] }> {
  const p = await ps(args);
  const ws = Array.from({ length: o.honest ?? 2 }, (_, i) => worker(p, i + 1, [], o.steps));
  const attackers = attack ? Array.from({ length: o.hostile ?? 1 }, (_, i) => worker(p, 9 + i, ['--attack', attack], o.steps)) : [];
  const attacker = attackers[0];
  // The honest workers finish; an attacker disconnected as an offender retries its join until killed.
  await until(() => ws.every((w) => w.child.exitCode !== null), 'every honest worker to finish its steps', 120_000, 200);
  for (const w of ws) assert.equal(w.child.exitCode, 0, w.output().slice(-2000));
  const { version } = await p.get<Status>('/api/status');
  const point = await until(async () => {
    const pt = await latestAccuracy(p);
    return pt && pt.version >= version ? pt : undefined;
  }, `an evaluation of version ${version}`, 30_000, 200);
  const { points } = await p.get<{ points: SeriesPoint[] }>('/api/series');
  const tail = points.filter((x) => x.version >= 0.6 * version);
  const late = (tail.length >= 5 ? tail : points.slice(-5)).map((x) => x.accuracy);
  return { point, late: late.reduce((a, b) => a + b, 0) / late.length, lateSeries: late, p, attackers, ...(attacker ? { attacker } : {}) };
}

test('one worker pushing ×1e30 ruins the model without aggregation; the default aggregator keeps it within 5 points of clean', { timeout: 240_000 }, async () => {
  // 300 steps each: at 200 the default's late mean fell 8 points under clean once in 7 quiet runs
  // (0.807, 0.7195, 0.698 in its last evaluations: logreg's swings at lr 0.1, two workers), and at
  // 300 once in a CI run (5.6 under: 0.697 to 0.8755). Four honest workers would swing less, but
  // bring the direction check in (it judges from four workers on), and with both cores busy an
  // honest one was disconnected for its direction in 1 of 5 runs, with the plain median and the
  // trust-weighted one alike (docs/benchmarks.md, "Small honest swarms, again").
  const three = { steps: '300' };
  const clean = await run([], undefined, three);
  await clean.p.kill();
  assert.ok(clean.point.accuracy >= 0.7, `clean run reached only ${clean.point.accuracy}`);

  const ruined = await run(['--aggregator', 'none', '--max-norm-jump', '0'], 'scale:1e30', three);
  await ruined.attacker?.kill();
  await ruined.p.kill();
  // Ruined: test loss about 1e29 (the weights blown up ×1e29). mnist-logreg's argmax can survive
  // that scale, so accuracy alone is not the measure; the loss is.
  assert.ok(!(ruined.point.loss < 100), `without aggregation the attack should ruin the model: ${JSON.stringify(ruined.point)} vs clean ${JSON.stringify(clean.point)}`);

  const kept = await run([], 'scale:1e30', three);
  console.log(`one at ×1e30: late accuracy clean ${clean.late.toFixed(4)}, default ${kept.late.toFixed(4)}; loss without aggregation ${ruined.point.loss}`);
  assert.ok(kept.late >= clean.late - 0.05, `default aggregator under attack: late accuracy ${kept.late.toFixed(4)} (${kept.lateSeries.join(' ')}; final ${JSON.stringify(kept.point)}) vs clean ${clean.late.toFixed(4)} (${clean.lateSeries.join(' ')}; final ${JSON.stringify(clean.point)})`);
  assert.ok(kept.point.loss < 5, `loss ${kept.point.loss}`);
  assert.ok((await metric(kept.p, /^tabswarm_pushes_clipped_total/)) > 0, 'the attacker\'s pushes were clipped');
  const { robustness } = await kept.p.get<Status & { robustness?: { keptOut: { reason: string }[] } }>('/api/status');
  assert.equal(await metric(kept.p, /^tabswarm_offenders_total\{/), 1, `the attacker was disconnected as an offender: ${JSON.stringify(robustness)}`);
  // Tipped by a clipped push, or, once the honest workers are done and its norms make up the
  // clipping median, by a step the output guard refused.
  assert.equal(robustness?.keptOut.length, 1);
  assert.ok(['clipped', 'guard'].includes(robustness.keptOut[0]!.reason), robustness.keptOut[0]!.reason);
  // The worker says so when its socket closes or its next join is refused, which may come after
  // the honest workers finished (a loaded run asserted before the line was printed).
  await until(() => /PS_OFFENDER|PS_KEPT_OUT/.test(kept.attacker!.output()), 'the attacker to report PS_OFFENDER or PS_KEPT_OUT', 30_000, 200);
  await kept.attacker!.kill();
  await kept.p.kill();
});

test('two of six workers flipping their gradients: clip\'s norm cut alone loses the model; the default keeps it and disconnects them', { timeout: 300_000 }, async () => {
  // 400 steps each: with 200 the default's late accuracy sat 1.8 points under clean on average
  // over 8 runs (the flippers' pushes before they are cut and disconnected), one of them 4.1
  // under, near the bound of 5; with 400, 0.9 under over 5 runs, at most 2.9 (both cores busy).
  const six = { honest: 4, hostile: 2, steps: '400' };
  const clean = await run([], undefined, six);
  await clean.p.kill();
  assert.ok(clean.late >= 0.7, `clean run reached only ${clean.late}`);

  // Each flipped push is -2 g: within the clipping radius (twice the median norm), it cancels
  // the progress of two honest ones, so clipping alone lets two of six hold the model still.
  // Clipping alone: -2 g sits at the radius, and clip's memory of excess (excess.ts) cut the
  // flippers enough that with it on the honest ones won back 0.55-0.75 in 7 of 19 runs (a CI run
  // failed on 0.7545 against 0.8705 clean). Without it, 0.10-0.33 in 4 of 4 with both cores busy.
  // (With -g, two of six only slow training: a CI run ended at 0.822 against 0.864 clean, and
  // this control, which shows the check is what saves the model, did not hold.)
  const off = await run(['--direction-tolerance', '0', '--clip-memory', '0', '--offender-strikes', '0'], 'sign-flip:2', six);
  for (const a of off.attackers) await a.kill();
  await off.p.kill();
  assert.ok(off.late < clean.late - 0.2, `with the norm cut alone the flippers should win: late accuracy ${off.late.toFixed(4)} vs clean ${clean.late.toFixed(4)}`);

  const kept = await run([], 'sign-flip:2', six);
  console.log(`two of six at -2 g: late accuracy clean ${clean.late.toFixed(4)}, norm cut alone ${off.late.toFixed(4)}, default ${kept.late.toFixed(4)}`);
  assert.ok(kept.late >= clean.late - 0.05, `the default under sign flip: late accuracy ${kept.late.toFixed(4)} (${kept.lateSeries.join(' ')}; final ${JSON.stringify(kept.point)}) vs clean ${clean.late.toFixed(4)} (${clean.lateSeries.join(' ')})`);
  assert.ok((await metric(kept.p, /^tabswarm_pushes_direction_limited_total/)) > 0, 'their pushes were cut for their direction');
  // A -2 g push sits near the clipping radius (twice the median norm), so the strike that tips a
  // flipper may be a clip as well as a cut for its direction (CI: none tipped by 'direction').
  // Either way a flipper is told so (the honest workers finished their steps: run() checks).
  const { robustness } = await kept.p.get<Status & { robustness?: { keptOut: { reason: string }[] } }>('/api/status');
  const reasons = (robustness?.keptOut ?? []).map((k) => k.reason);
  console.log(`two of six at -2 g, default: kept out for ${JSON.stringify(reasons)}`);
  assert.ok(reasons.length >= 1 && reasons.every((r) => r === 'direction' || r === 'clipped'), `a flipper disconnected as an offender for its direction or its size: ${JSON.stringify(reasons)}`);
  await until(() => kept.attackers.some((a) => /PS_OFFENDER|PS_KEPT_OUT/.test(a.output())), 'a flipper to report PS_OFFENDER or PS_KEPT_OUT', 30_000, 200);
  for (const a of kept.attackers) await a.kill();
  await kept.p.kill();
});

/**
 * The other attacks, one hostile worker of six against the default aggregator, each
 * judged against one clean run of six honest workers (the same number of pushes). The three
 * cases above have their controls; these assert the bound for every remaining attack, so a
 * change to `clip` that lets one of them through fails here, not only in bench:byzantine.
 */
const OTHER_ATTACKS = ['scale:1e3', 'noise:1', 'zero', 'alie', 'ipm:2', 'replay', 'label-flip'];

test('every other attack, one of six workers: the default keeps late accuracy within 5 points of clean', { timeout: 900_000 }, async (t) => {
  const clean = await run([], undefined, { honest: 6 });
  await clean.p.kill();
  assert.ok(clean.late >= 0.7, `clean run reached only ${clean.late}`);
  for (const attack of OTHER_ATTACKS) {
    await t.test(attack, async () => {
      const r = await run([], attack, { honest: 5, hostile: 1 });
      try {
        console.log(`one of six, ${attack}: late accuracy clean ${clean.late.toFixed(4)}, default ${r.late.toFixed(4)} (${r.lateSeries.join(' ')})`);
        assert.ok(r.late >= clean.late - 0.05, `the default under ${attack}: late accuracy ${r.late.toFixed(4)} (${r.lateSeries.join(' ')}; final ${JSON.stringify(r.point)}) vs clean ${clean.late.toFixed(4)} (${clean.lateSeries.join(' ')})`);
        assert.ok(r.point.loss < 5, `loss ${r.point.loss}`);
      } finally {
        await r.attacker?.kill();
        await r.p.kill();
      }
    });
  }
});

test('a worker lying about its base version or its count is refused with PS_CLAIM_AHEAD / PS_COUNT_TOO_LARGE; honest ones train on', { timeout: 120_000 }, async () => {
  const p = await ps(['--max-count', '1000']);
  const honest = worker(p, 1);
  const liars = [spawnCli(['worker', '--url', p.url, '--seed', '5', '--steps', '20', '--attack', 'lie-base']), spawnCli(['worker', '--url', p.url, '--seed', '6', '--steps', '20', '--attack', 'lie-count'])];
  opened.push(...liars);
  await until(async () => (await metric(p, /^tabswarm_frames_rejected_total\{reason="PS_CLAIM_AHEAD"/)) > 0, 'a PS_CLAIM_AHEAD refusal', 60_000, 200);
  await until(async () => (await metric(p, /^tabswarm_frames_rejected_total\{reason="PS_COUNT_TOO_LARGE"/)) > 0, 'a PS_COUNT_TOO_LARGE refusal', 60_000, 200);
  await until(() => honest.child.exitCode !== null, 'the honest worker to finish', 90_000, 200);
  assert.equal(honest.child.exitCode, 0, honest.output().slice(-2000));
  const s = await p.get<Status>('/api/status');
  assert.ok(s.updatesApplied >= Number(STEPS), `applied ${s.updatesApplied}`);
});
