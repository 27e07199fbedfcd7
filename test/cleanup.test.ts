/**
 * No process outlives what started it. scripts/test.mjs's global teardown: a test file that
 * throws halfway, with its PS, its worker and a stray PS that escaped every per-process cleanup
 * still running, leaves nothing behind once the runner is done with it. And the harness's
 * parents take their children with them when SIGKILLed by PID alone (no group kill, no
 * teardown code run): the experiment its cluster, node, swarm and Chromium; the cluster
 * supervisor its ZooKeeper and chain node.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { spawnTied, tiedToParent } from '../server/spawn.ts';
import { ROOT, exitWithin, killGroup, spawnCli, until, type Proc } from './helpers.ts';

interface Tagged {
  pid: number;
  cmd: string;
}

/** Live processes whose environment holds the entry `entry` (NAME=value), as scripts/test.mjs finds them. */
function tagged(entry: string): Tagged[] {
  const found: Tagged[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(entry)) continue;
      found.push({ pid: Number(name), cmd: readFileSync(`/proc/${name}/cmdline`, 'latin1').replaceAll('\0', ' ') });
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** Test cleanup should an assertion fail first. */
function killAll(entry: string): void {
  for (const p of tagged(entry)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/** The environment for a nested scripts/test.mjs: without the marker that makes Node's runner refuse to run inside a test file. */
function runnerEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

const describeLinux = process.platform === 'linux' ? describe : describe.skip;

describeLinux('global teardown (scripts/test.mjs)', () => {
  test('a test file that throws halfway leaves no process behind', { timeout: 300_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'tabswarm-cleanup-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const pidsFile = join(dir, 'pids.json');
    const run = `cleanup-${process.pid}-${randomBytes(4).toString('hex')}`;
    const entry = `TABSWARM_TEST_TAG=${run}-1`;
    const child = spawnTied(process.execPath, ['scripts/test.mjs', 'test/fixtures/crash-halfway.ts'], {
      cwd: ROOT, env: runnerEnv({ TABSWARM_TEST_RUN: run, CRASH_HALFWAY_PIDS: pidsFile }), stdio: ['ignore', 'pipe', 'pipe'], detached: true,
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    t.after(() => {
      killGroup(child.pid!, 'SIGKILL');
      killAll(entry);
    });
    // The processes exist while the fixture runs: the sweep afterwards has something to do.
    const written = await until(async () => {
      if (child.exitCode !== null) return 'exited' as const;
      return JSON.parse(await readFile(pidsFile, 'utf8').catch(() => 'null')) as { ps: number; worker: number; stray: number } | null;
    }, 'the fixture to start its processes', 180_000, 200);
    assert.notEqual(written, 'exited', `the runner exited before the fixture wrote its PIDs: ${out}`);
    const pids = written as Exclude<typeof written, 'exited'>;
    assert.ok(await exitWithin(child, 120_000), `the runner exits: ${out}`);
    assert.equal(child.exitCode, 1, `the fixture's failure fails the run: ${out}`);
    assert.match(out, /the suite fails halfway, before any cleanup/);
    assert.deepEqual(tagged(entry), [], 'no process carries the file\'s tag once the runner is done with it');
    // The stray escaped everything but the sweep, which names it.
    const left = /left \d+ process\(es\) behind; SIGKILLed:\n((?: {2}\d+ .*\n?)+)/.exec(out);
    assert.ok(left, `the sweep reports what it killed: ${out.slice(-3000)}`);
    const swept = left[1]!.trim().split('\n').map((l) => Number(l.trim().split(' ')[0]));
    assert.ok(swept.includes(pids.stray), `the stray PS ${pids.stray} was swept (${swept.join(' ')})`);
    // The PS and the worker were tied to the file's process: they died with it, no sweep needed.
    if (tiedToParent) for (const pid of [pids.ps, pids.worker]) assert.ok(!swept.includes(pid), `${pid} died with the test file's process`);
  });
});

/** Starts `tabswarm ARGS` with a tag of its own; returns the process and the tag's entry. */
function startTagged(args: string[]): { proc: Proc; entry: string } {
  const value = `${process.pid}-${randomBytes(4).toString('hex')}`;
  return { proc: spawnCli(args, { CLEANUP_TEST_TAG: value }), entry: `CLEANUP_TEST_TAG=${value}` };
}

/** SIGKILLs the process alone (by PID, as a crash or the OOM killer would) and waits for every tagged process to be gone. */
async function killParentAlone(proc: Proc, entry: string): Promise<void> {
  process.kill(proc.child.pid!, 'SIGKILL');
  assert.ok(await exitWithin(proc.child, 10_000), 'the parent exits');
  await until(() => tagged(entry).length === 0, `its children to die with it (left: ${tagged(entry).map((p) => `${p.pid} ${p.cmd.slice(0, 80)}`).join('; ')})`, 30_000, 100);
}

const describeTied = tiedToParent ? describe : describe.skip;

describeTied('children die with a SIGKILLed parent', () => {
  test('tabswarm experiment: its cluster, node, swarm and Chromium go with it', { timeout: 300_000 }, async (t) => {
    const out = await mkdtemp(join(tmpdir(), 'tabswarm-cleanup-exp-'));
    const { proc, entry } = startTagged(['experiment', '--strategies', 'stateless', '--kills', '5', '--downtime', '3', '--duration', '60', '--model', 'mnist-logreg',
      '--dataset', 'synthetic', '--workers', '1', '--backend', 'wasm', '--baseline', 'no', '--out', out]);
    t.after(async () => {
      await proc.kill('SIGKILL');
      killAll(entry);
      await rm(out, { recursive: true, force: true });
    });
    await until(() => /run 1\/1 stateless r1\/1 \[[#.]+\] \d+\/60 s/.test(proc.output()), 'the run to be under way', 180_000, 250);
    // All four at one moment: the experiment itself kills and restarts the node (at 5 s, down
    // for 3 s), so one look can fall in that gap.
    const kinds = [['cluster', / cluster /], ['node', / start /], ['swarm', / swarm /], ['Chromium', /chromium/]] as const;
    const before = await until(() => {
      const cmds = tagged(entry).map((p) => p.cmd);
      return kinds.every(([, re]) => cmds.some((c) => re.test(c))) ? cmds : undefined;
    }, `the experiment's cluster, node, swarm and Chromium all running (now: ${tagged(entry).map((p) => p.cmd.slice(0, 60)).join('; ')})`, 60_000, 100);
    assert.ok(before.length >= kinds.length);
    await killParentAlone(proc, entry);
  });

  test('tabswarm cluster (chain): its ZooKeeper and node go with it', { timeout: 240_000 }, async (t) => {
    const { proc, entry } = startTagged(['cluster', '--port', '0', '--replication', 'sync', '--nodes', '1', '--admin-token', 'cleanup-test-admin-0123456789',
      '--model', 'mnist-logreg', '--dataset', 'synthetic', '--eval-every', '0', '--log-level', 'warn']);
    t.after(async () => {
      await proc.kill('SIGKILL');
      killAll(entry);
    });
    await until(() => {
      if (proc.child.exitCode !== null) throw new Error(`tabswarm cluster exited: ${proc.output()}`);
      return /cluster ready/.test(proc.output());
    }, 'the cluster to be ready', 180_000, 250);
    const before = tagged(entry).map((p) => p.cmd);
    assert.ok(before.some((c) => /QuorumPeerMain/.test(c)), `ZooKeeper runs before the kill: ${before.join('\n')}`);
    assert.ok(before.some((c) => / node --zk /.test(c)), `the chain node runs before the kill: ${before.join('\n')}`);
    await killParentAlone(proc, entry);
  });
});
