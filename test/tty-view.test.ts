/**
 * `tabswarm start` on a terminal (a pseudo-terminal from util-linux's script(1)): human-readable
 * log lines, and under them one status line redrawn in place with the version, the accuracy,
 * the workers, the PS's state and the join URL; `--workers 0` says that no workers run. SIGTERM
 * stops the redraw and leaves the last status line, ended by a newline.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '../server/spawn.ts';
import { exitWithin, killGroup, ROOT, until } from './helpers.ts';

const SCRIPT = '/usr/bin/script';
const BIN = fileURLToPath(new URL('../bin/tabswarm.mjs', import.meta.url));
const children: number[] = [];
after(() => {
  for (const pgid of children) killGroup(pgid, 'SIGKILL');
});

/** What the terminal shows: the status line is redrawn after `\r` and an erase-line sequence. */
const redraws = (out: string): string[] => out.split('\r\x1b[2K').map((s) => s.replace(/\r?\n[\s\S]*$/, ''));

test('on a terminal: pretty log lines, and a status line with version, accuracy, workers, PS state and join URL', { timeout: 90_000, skip: !existsSync(SCRIPT) && 'no script(1)' }, async () => {
  const command = `stty cols 200; exec ${process.execPath} ${BIN} start --port 0 --workers 0 --model mnist-logreg --eval-every 500 --eval-examples 1000`;
  // `script -qfec CMD /dev/null`: CMD on a new pseudo-terminal, its output copied to ours, flushed.
  const child = spawnTied(SCRIPT, ['-qfec', command, '/dev/null'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  children.push(child.pid!);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));

  const url = await until(() => /join at (http:\/\/\S+)/.exec(out)?.[1], 'the ready line', 60_000, 100);
  assert.match(out, /no workers launched \(--workers 0\)/);
  // The first evaluation runs as the server is ready: version 0, an accuracy near chance.
  const line = await until(() => redraws(out).find((l) => /^v0 │ acc 0\.\d{3} .*│ no workers │ PS idle │ join http/.test(l)), 'a status line with the accuracy', 30_000, 100);
  assert.ok(line.includes(`join ${url}`), line);
  // Log lines are pretty (time, level, message), not JSON, and never share a row with the status line.
  assert.match(out, /\[\d\d:\d\d:\d\d\] .*INFO.*: .*Server listening at/);
  assert.doesNotMatch(out, /\{"level":/);
  // What a row shows is what follows its last erase: the log line alone.
  const visible = out.split('\n').map((row) => row.split('\r\x1b[2K').at(-1)!);
  const listening = visible.filter((row) => /Server listening/.test(row));
  assert.equal(listening.length, 1);
  assert.doesNotMatch(listening[0]!, /│ PS /);

  // script(1) puts the PS in a session of its own, on the pseudo-terminal: signal the PS itself.
  const ps = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
  assert.ok(ps > 0, 'the PS under script(1)');
  process.kill(ps, 'SIGTERM');
  assert.ok(await exitWithin(child, 30_000), `exit after SIGTERM: ${out.slice(-500)}`);
  assert.equal(child.exitCode, 0, out.slice(-500));
  // The last status line stays, ended by a newline, and nothing is redrawn after it.
  const tail = out.slice(out.lastIndexOf('\r\x1b[2K') + '\r\x1b[2K'.length);
  assert.match(tail, /^v0 │ acc 0\.\d{3}.*PS down │ join http\S+\r?\n/);
});
