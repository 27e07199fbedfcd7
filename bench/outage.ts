/**
 * Outage efficiency: `npm run bench:outage [-- options]`.
 *
 * How much of the work workers do while the PS is down turns into progress, per rule: the
 * default `mean` (a flush of n buffered gradients is one averaged step) against local steps
 * with an outer optimizer (--local-steps H: the flush is the whole delta, DiLoCo-style). Per
 * mode, one stateless PS (`tabswarm start`) and --workers Node workers:
 *   1. connected until --warm steps per worker; the accuracy gained per worker-step over the
 *      last --window steps before the kill is the connected rate;
 *   2. the PS is SIGKILLed; each worker takes --outage-steps steps, buffering;
 *   3. a new PS adopts the workers' weights and takes their flushes; the accuracy gained from
 *      the kill to the evaluation after the last flush, per outage worker-step, is the outage rate.
 * Outage efficiency = outage rate / connected rate (1 = an outage step is worth a connected one).
 * Accuracy is the mean of three evaluations on --eval-examples test images.
 */
import { defineOptions, parseCommandLine } from '../server/options/schema.ts';
import { spawnCli, startPs, until, workerLines, type Proc, type PsProc, type SeriesPoint } from '../test/helpers.ts';
import { machineLine, printTable } from './sys.ts';

const OPTIONS = defineOptions({
  model: { type: 'string', default: 'mnist-mlp', help: 'model' },
  dataset: { type: 'string', default: 'mnist', help: 'data set' },
  workers: { type: 'int', min: 1, default: 2, help: 'Node workers' },
  warm: { type: 'int', min: 1, default: 50, help: 'connected steps per worker before the kill' },
  window: { type: 'int', min: 1, default: 30, help: 'connected steps per worker the connected rate is measured over' },
  outageSteps: { type: 'int', min: 1, default: 30, help: 'steps per worker while the PS is down' },
  localSteps: { type: 'int', min: 2, default: 4, help: 'H of the local-steps mode' },
  evalExamples: { type: 'int', min: 100, default: 5000, help: 'test images evaluated' },
});

type Opts = ReturnType<typeof parse>;

/** Mean accuracy of three evaluations of versions >= `version`. */
async function accuracyAt(ps: PsProc, version: number): Promise<number> {
  const pts = await until(async () => {
    const { points } = await ps.get<{ points: SeriesPoint[] }>('/api/series');
    const p = points.filter((x) => x.version >= version);
    return p.length >= 3 ? p.slice(0, 3) : undefined;
  }, `three evaluations at version ${version}`, 120_000, 200);
  return pts.reduce((s, p) => s + p.accuracy, 0) / pts.length;
}

function steps(w: Proc): number {
  return Number(workerLines(w).filter((l) => 'steps' in l).at(-1)?.steps ?? 0);
}
function outageSteps(w: Proc): number {
  return Number(workerLines(w).filter((l) => 'outageSteps' in l).at(-1)?.outageSteps ?? 0);
}

async function mode(o: Opts, name: string, extra: string[]): Promise<string[]> {
  const args = (port?: number) => ['--strategy', 'stateless', '--secret', 'bench-outage-secret-0123456789', '--model', o.model, '--dataset', o.dataset, '--seed', '3', '--eval-every', '300', '--eval-examples', String(o.evalExamples), '--buffer-mode', 'local', ...extra, ...(port ? ['--port', String(port)] : [])];
  const ps1 = await startPs(args());
  const procs: Proc[] = [ps1];
  try {
    const workers = Array.from({ length: o.workers }, (_, i) => spawnCli(['worker', '--url', ps1.url, '--seed', String(i + 1), '--log-every-ms', '100']));
    procs.push(...workers);
    const version = async () => (await ps1.get<{ version: number }>('/api/status')).version;
    await until(() => workers.every((w) => steps(w) >= o.warm - o.window), 'the warm-up', 600_000, 100);
    const s0 = workers.reduce((s, w) => s + steps(w), 0);
    const a0 = await accuracyAt(ps1, await version());
    await until(() => workers.every((w) => steps(w) >= o.warm), 'the connected window', 600_000, 100);
    const s1 = workers.reduce((s, w) => s + steps(w), 0);
    const a1 = await accuracyAt(ps1, await version());
    const connectedRate = (a1 - a0) / (s1 - s0);

    await ps1.kill('SIGKILL');
    const o0 = workers.map(outageSteps);
    await until(() => workers.every((w, i) => outageSteps(w) >= o0[i]! + o.outageSteps), 'the outage steps', 600_000, 50);
    const ps2 = await startPs(args(Number(new URL(ps1.url).port)));
    procs.push(ps2);
    // The flushes: every worker back to `connected` with a flush acknowledged.
    await until(() => workers.every((w) => workerLines(w).some((l) => l.lastFlush !== undefined && l.state === 'connected')), 'every worker to flush', 120_000, 100);
    const flushed = workers.reduce((s, w, i) => s + (outageSteps(w) - o0[i]!), 0);
    const flushVersion = (await ps2.get<{ flushes: { version: number }[] }>('/api/flushes')).flushes.reduce((m, f) => Math.max(m, f.version), 0);
    const a2 = await accuracyAt(ps2, flushVersion);
    const outageRate = (a2 - a1) / flushed;
    return [name, a0.toFixed(4), a1.toFixed(4), (connectedRate * 1000).toFixed(3), String(flushed), a2.toFixed(4), (outageRate * 1000).toFixed(3), (outageRate / connectedRate).toFixed(2)];
  } finally {
    for (const p of procs.reverse()) await p.kill('SIGKILL');
  }
}

function parse() {
  return parseCommandLine(OPTIONS, 'npm run bench:outage -- [options]: outage efficiency, mean rule vs local steps (docs/benchmarks.md)');
}

async function main(): Promise<void> {
  const o = parse();
  console.log(machineLine());
  console.log(`${o.model} on ${o.dataset}, ${o.workers} Node workers, stateless PS, ${o.warm} connected steps per worker (rate over the last ${o.window}), ${o.outageSteps} outage steps per worker; accuracy: mean of 3 evaluations on ${o.evalExamples} images`);
  const rows = [['mode', 'acc before window', 'acc at kill', 'gain per 1k connected steps', 'outage steps', 'acc after flushes', 'gain per 1k outage steps', 'outage efficiency']];
  rows.push(await mode(o, 'mean (H = 1)', ['--rule', 'mean']));
  rows.push(await mode(o, `local steps H = ${o.localSteps}`, ['--local-steps', String(o.localSteps)]));
  rows.push(await mode(o, `local steps H = ${o.localSteps}, outer 0.7 / Nesterov 0.9 (DiLoCo's)`, ['--local-steps', String(o.localSteps), '--outer-lr', '0.7', '--outer-momentum', '0.9']));
  printTable(rows);
}

await main();
