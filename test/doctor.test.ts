/**
 * `tabswarm doctor` (server/start/doctor.ts): every check passes on this machine (the CI image
 * installs what `npm test` needs), WebGL and wasm seen in a real headless Chromium; pointed at
 * places where a component is not, it names each gap with the command that fixes it and exits 1.
 * Also `tabswarm --version`, from package.json.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ROOT, spawnCli, until, type Proc } from './helpers.ts';

const procs: Proc[] = [];
const empty = mkdtempSync(join(tmpdir(), 'tabswarm-doctor-'));
after(async () => {
  for (const p of procs) await p.kill('SIGKILL');
  rmSync(empty, { recursive: true, force: true });
});

async function run(args: string[]): Promise<{ code: number; out: string }> {
  const proc = spawnCli(args);
  procs.push(proc);
  await until(() => proc.child.exitCode !== null, `tabswarm ${args.join(' ')} to exit`, 60_000, 100);
  return { code: proc.child.exitCode!, out: proc.output() };
}

const sudo = process.getuid?.() === 0 ? '' : 'sudo ';

test('doctor: everything required is here, and a headless tab has WebGL and wasm', { timeout: 90_000 }, async () => {
  const { code, out } = await run(['doctor', '--port', '0']);
  assert.equal(code, 0, out);
  for (const name of ['node', 'chromium', 'zookeeper', 'mnist', 'fashion-mnist', 'port', 'webgl', 'wasm']) assert.match(out, new RegExp(`^ok +${name} `, 'm'), `${name}: ${out}`);
  assert.match(out, /^(ok|note) +webgpu /m);
  assert.match(out, /everything required is here/);
});

test('doctor: a missing Chromium, ZooKeeper and Fashion-MNIST are each named with the command that fixes it; exit 1', { timeout: 60_000 }, async () => {
  const { code, out } = await run(['doctor', '--chromium', join(empty, 'chromium'), '--zk-jars', empty, '--fashion-dir', empty, '--port', '0']);
  assert.equal(code, 1, out);
  assert.match(out, new RegExp(`^MISSING chromium +no executable at ${join(empty, 'chromium')}.*\\n +fix: ${sudo}apt-get install -y --no-install-recommends chromium$`, 'm'));
  assert.match(out, new RegExp(`^MISSING zookeeper .*zookeeper\\.jar not found at ${join(empty, 'zookeeper.jar')}.*\\n +fix: ${sudo}apt-get install -y --no-install-recommends zookeeper$`, 'm'));
  assert.match(out, new RegExp(`^MISSING fashion-mnist .*\\n +fix: ${sudo}apt-get install -y --no-install-recommends dataset-fashion-mnist$`, 'm'));
  assert.match(out, /^ok +mnist /m);
  // Without a Chromium there is no browser to ask about backends.
  assert.doesNotMatch(out, /webgl/);
  assert.match(out, /3 required component\(s\) missing: chromium, zookeeper, fashion-mnist/);
});

test('--version prints package.json\'s version', { timeout: 30_000 }, async () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const { code, out } = await run(['--version']);
  assert.equal(code, 0);
  assert.equal(out.trim(), version);
});
