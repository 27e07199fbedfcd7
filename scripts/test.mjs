// Runs every *.test.ts under shared/, server/, client/ and test/ with Node's test runner (under
// tsx), one file at a time: the cross-process suites start servers and browsers, and this is a
// 2-core machine. Extra arguments are passed through (e.g. a file list, or --test-name-pattern).
//
// Global teardown: each file runs in a `node --test` of its own, with a teardown tag in its
// environment (TABSWARM_TEST_TAG), which every process it starts inherits: PS nodes, workers,
// ZooKeeper, Chromium. Once the file's run has exited, a process still carrying the tag is a
// leak; it is named and SIGKILLed, so no suite can leave a process computing into the next one
// (test/cleanup.test.ts proves it with a file that throws halfway). A file that runs longer than
// TABSWARM_TEST_FILE_TIMEOUT_S (default 1800) is killed the same way and counts as failed.
// --test-force-exit: a file whose tests are over exits even if it left a handle open (a child's
// pipe), rather than hanging; its tied children die with it (server/spawn.ts), the sweep gets
// the rest.
// TABSWARM_TEST_RUN names the run (the tags are `<run>-<file number>`); the default is unique.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...find(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

/** PIDs (with their command lines) of the live processes whose environment holds `entry`. */
function tagged(entry) {
  const found = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      // Zombies and processes mid-exit have an empty environ: they are gone already.
      if (!readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(entry)) continue;
      found.push({ pid: Number(name), cmd: readFileSync(`/proc/${name}/cmdline`, 'latin1').replaceAll('\0', ' ').trim().slice(0, 160) });
    } catch {
      // exited while we looked, or not ours to read
    }
  }
  return found;
}

const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Kills every process carrying `entry`: those still alive `graceMs` after the file's run ended
 * (a tied child dies with its parent, but not in the same instant) are leaks, reported. Returns
 * how many were left behind.
 */
async function sweep(entry, label, graceMs = 2000) {
  if (process.platform !== 'linux') return 0;
  for (const deadline = Date.now() + graceMs; tagged(entry).length > 0 && Date.now() < deadline;) await pause(100);
  const left = new Map();
  // Loop: a process may start another while it is being killed.
  for (let round = 0; round < 50; round++) {
    const now = tagged(entry);
    if (now.length === 0) break;
    for (const p of now) {
      left.set(p.pid, p.cmd);
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await pause(100);
  }
  if (left.size > 0) {
    console.error(`\ntest.mjs: ${label} left ${left.size} process(es) behind; SIGKILLed:`);
    for (const [pid, cmd] of left) console.error(`  ${pid} ${cmd}`);
  }
  const still = tagged(entry);
  if (still.length > 0) console.error(`test.mjs: could not kill ${still.map((p) => p.pid).join(' ')} (${label})`);
  return left.size;
}

const args = process.argv.slice(2);
// Arguments that name files or folders select tests; the rest are flags for the runner.
const paths = args.filter((a) => !a.startsWith('-') && existsSync(a));
const flags = args.filter((a) => !paths.includes(a));
const targets = (paths.length > 0 ? paths : ['shared', 'server', 'client', 'test'])
  .flatMap((p) => (statSync(p).isDirectory() ? find(p) : [p]))
  .sort();
const run = process.env.TABSWARM_TEST_RUN ?? `${process.pid}-${Date.now().toString(36)}`;
const fileTimeoutMs = Number(process.env.TABSWARM_TEST_FILE_TIMEOUT_S ?? 1800) * 1000;

let current;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    // The runner shares our process group, so Ctrl-C reached it too; sweep what it leaves.
    if (current) await sweep(current.entry, current.file, 0);
    process.exit(130);
  });
}

const results = [];
const startedAt = Date.now();
for (const [i, file] of targets.entries()) {
  const entry = `TABSWARM_TEST_TAG=${run}-${i + 1}`;
  current = { entry, file };
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-force-exit', '--test-reporter=spec', ...flags, file], {
    stdio: 'inherit',
    env: { ...process.env, TABSWARM_TEST_TAG: entry.slice(entry.indexOf('=') + 1) },
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    console.error(`\ntest.mjs: ${file} ran longer than ${fileTimeoutMs / 1000} s; killing it`);
    child.kill('SIGKILL');
  }, fileTimeoutMs);
  const code = await new Promise((resolve) => child.once('exit', (c, s) => resolve(c ?? (s ? 128 : 1))));
  clearTimeout(timer);
  const leaked = await sweep(entry, file);
  results.push({ file, ok: code === 0 && !timedOut, leaked, secs: (Date.now() - t0) / 1000 });
}
current = undefined;

if (results.length > 1) {
  console.log(`\n${results.length} files in ${((Date.now() - startedAt) / 1000).toFixed(0)} s:`);
  for (const r of results) console.log(`  ${r.ok ? 'pass' : 'FAIL'} ${r.secs.toFixed(1).padStart(7)} s  ${r.file}${r.leaked ? `  (left ${r.leaked} process(es), killed)` : ''}`);
}
process.exit(results.every((r) => r.ok) ? 0 : 1);
