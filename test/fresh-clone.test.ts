/**
 * A newcomer's first minutes (issue 14): `git clone`, then `npm start`, on this machine. The
 * clone is of this repository with the working tree's uncommitted changes applied (none in CI),
 * its node_modules a link to ours (no network here); `npm start -- --port 0 --workers 2` must
 * build the bundle, start the PS with the default workload and its two headless tabs, and print
 * an evaluation at the accuracy target within the bound. The time from the ready line to the
 * target is printed, for docs/benchmarks.md.
 */
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { spawnTied } from '../server/spawn.ts';
import { exitWithin, killGroup, ROOT, until } from './helpers.ts';

/** The issue's target: 90% test accuracy within 60 s of the ready line (2 cores, no GPU). */
const TARGET = 0.9;
const TARGET_S = 60;
/** How long the test waits for it: generous, for a loaded CI machine. */
const BOUND_S = 150;

const dir = mkdtempSync(join(tmpdir(), 'tabswarm-clone-'));
let child: ChildProcess | undefined;
after(async () => {
  if (child?.pid) {
    killGroup(child.pid, 'SIGTERM');
    if (!(await exitWithin(child, 15_000))) killGroup(child.pid, 'SIGKILL');
  }
  rmSync(dir, { recursive: true, force: true });
});

/** `git clone` of ROOT into `dir`, plus what ROOT's working tree changed and added. */
function cloneWorkingTree(): void {
  const git = (args: string[], input?: Buffer) => execFileSync('git', args, { input, maxBuffer: 1 << 28 });
  git(['clone', '--quiet', ROOT, dir]);
  const diff = git(['-C', ROOT, 'diff', 'HEAD', '--binary']);
  if (diff.length > 0) git(['-C', dir, 'apply', '--whitespace=nowarn', '-'], diff);
  for (const file of git(['-C', ROOT, 'ls-files', '--others', '--exclude-standard', '-z']).toString().split('\0').filter(Boolean)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(dir, file));
  }
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
}

interface Evaluation { version: number; accuracy: number; at: number }

test(`fresh clone: npm start reaches ${TARGET} test accuracy with 2 headless tabs`, { timeout: (BOUND_S + 120) * 1000 }, async () => {
  cloneWorkingTree();
  child = spawnTied('npm', ['start', '--', '--port', '0', '--workers', '2'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const evaluations: Evaluation[] = [];
  let readyAt = 0;
  const onLine = (line: string) => {
    if (!readyAt && /ready; join at http/.test(line)) readyAt = Date.now();
    if (!line.startsWith('{')) return;
    try {
      const entry = JSON.parse(line) as { msg?: string; version?: number; accuracy?: number };
      if (entry.msg === 'evaluation' && typeof entry.accuracy === 'number') evaluations.push({ version: entry.version ?? -1, accuracy: entry.accuracy, at: Date.now() });
    } catch {
      // not a log line
    }
  };
  let partial = '';
  const take = (d: Buffer) => {
    out += d.toString();
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop()!;
    lines.forEach(onLine);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);

  // The build (esbuild) and the PS come first; then the two tabs.
  await until(() => readyAt || (child!.exitCode !== null && Promise.reject(new Error(`npm start exited ${child!.exitCode}: ${out.slice(-2000)}`))), 'the ready line', 120_000, 200);
  await until(() => /launched 2 headless (Chromium worker tab|Node worker)/.test(out), 'the two workers', 60_000, 200);
  const best = () => evaluations.reduce((b, e) => (e.accuracy > b.accuracy ? e : b), { version: 0, accuracy: 0, at: 0 });
  const hit = await until(() => evaluations.find((e) => e.accuracy >= TARGET), `an evaluation at ${TARGET}`, BOUND_S * 1000, 500).catch(() => undefined);
  const seconds = hit ? (hit.at - readyAt) / 1000 : undefined;
  console.log(`fresh clone: ${hit ? `accuracy ${hit.accuracy} at version ${hit.version}, ${seconds!.toFixed(1)} s after the ready line` : `best accuracy ${best().accuracy} (version ${best().version}) in ${BOUND_S} s`} (target ${TARGET} within ${TARGET_S} s)`);
  assert.ok(hit, `no evaluation reached ${TARGET} within ${BOUND_S} s of the ready line; best ${best().accuracy} at version ${best().version}`);
  assert.doesNotMatch(out, /Route GET:\/api\/cluster not found/);
});
