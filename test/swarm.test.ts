/**
 * `tabswarm swarm`: real headless Chromium tabs over two browser processes against a real PS,
 * with churn, through a real SIGKILL and restart of the PS. Checks the live status lines and
 * the closing summary against what the PS saw.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { spawnCli, startPs, until, type PsProc, type Proc, type Status } from './helpers.ts';

describe('tabswarm swarm', () => {
  let ps: PsProc | undefined;
  let swarm: Proc | undefined;
  after(async () => {
    await swarm?.kill('SIGKILL');
    await ps?.kill('SIGKILL');
  });

  test('N tabs over M browsers, churn, a PS failure seen by the tabs, and a closing summary', async () => {
    const psArgs = ['--model', 'mnist-logreg', '--dataset', 'mnist', '--eval-every', '0'];
    ps = await startPs(psArgs);
    const port = new URL(ps.url).port;
    swarm = spawnCli(['swarm', '--url', ps.url, '--workers', '3', '--browsers', '2', '--backend', 'wasm', '--duration', '90', '--churn', '10', '--seed', '7']);
    // --duration counts from the swarm's start: on a loaded machine the tabs may take most of a
    // minute to push, and a 45 s swarm then ended before its tabs reached the restarted PS.
    // Every tab trains: the PS sees three workers push.
    await until(async () => (await ps!.get<Status>('/api/status')).workers.filter((w) => w.pushes > 0).length >= 3, 'three tabs pushing', 60_000, 250);
    await until(() => /swarm \d+s: 3 tabs \(.*connected.*\); [1-9]\d* examples\/s; [1-9]\d* gradients; PS version [1-9]/.test(swarm!.output()), 'a live line with training tabs', 10_000);

    await ps.kill('SIGKILL');
    await until(() => /failures seen [1-9]/.test(swarm!.output().split('\n').filter(Boolean).at(-1) ?? ''), 'the tabs to notice the PS is gone', 20_000, 200);
    ps = await startPs([...psArgs, '--port', port]);
    await until(async () => (await ps!.get<Status>('/api/status')).workers.filter((w) => w.pushes > 0).length >= 2, 'tabs pushing to the restarted PS', 60_000, 250);

    await until(() => swarm!.child.exitCode !== null, 'the swarm to end after --duration', 120_000, 250);
    assert.equal(swarm.child.exitCode, 0, swarm.output().slice(-3000));
    const out = swarm.output();
    const table = out.slice(out.indexOf('| tab | browser |')).split('\n').filter((l) => /^\| \d/.test(l)).map((l) => l.split('|').map((c) => c.trim()).slice(1, -1));
    assert.equal(table.length, 3, out.slice(-2000));
    assert.deepEqual(table.map((r) => r[1]), ['0', '1', '0'], 'tabs spread round robin over 2 browsers');
    for (const [, , , backend, eps, steps] of table) {
      assert.equal(backend, 'wasm');
      assert.ok(Number(eps) > 0 && Number(steps) > 0, `examples/s ${eps}, gradients ${steps}`);
    }
    assert.ok(table.reduce((n, r) => n + Number(r[6]), 0) >= 1, 'failures seen');
    assert.ok(table.reduce((n, r) => n + Number(r[7]), 0) >= 1, 'tabs churned');
    assert.match(out, /total: \d+ gradients computed by 3 tab slot\(s\)/);
  });
});
