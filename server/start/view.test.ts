import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderStatusLine, sparkline, StatusLine, trend, workerSummary, type Sampler, type Snapshot } from './view.ts';

const base: Snapshot = {
  version: 312, updatesPerSec: 41.25, accuracy: [0.2, 0.5, 0.8, 0.912], loss: [2.1, 1.2, 0.5, 0.31],
  workers: [{ backend: 'webgl', state: 'connected' }, { backend: 'webgl', state: 'connected' }, { backend: 'cpu', state: 'buffering' }],
  psState: 'training', url: 'http://127.0.0.1:8080/',
};

test('renderStatusLine: version, accuracy with its sparkline and trend, loss, rate, workers, PS state, join URL', () => {
  assert.equal(
    renderStatusLine(base, 200),
    'v312 │ acc 0.912 ▁▄▇█↑ │ loss 0.310↓ │ 41.3 upd/s │ 2 webgl connected, 1 cpu buffering │ PS training │ join http://127.0.0.1:8080/',
  );
});

test('renderStatusLine: before the first evaluation, without workers, and never wider than the terminal', () => {
  const line = renderStatusLine({ ...base, accuracy: [], loss: [], workers: [], psState: 'idle' }, 200);
  assert.match(line, /^v312 │ acc - │ loss - │ 41\.3 upd\/s │ no workers │ PS idle │ join http:/);
  const narrow = renderStatusLine(base, 30);
  assert.equal([...narrow].length, 30);
  assert.ok(narrow.endsWith('…'));
});

test('sparkline scales between the minimum and maximum of the last values; trend compares the last two', () => {
  assert.equal(sparkline([0, 1]), '▁█');
  assert.equal(sparkline([5, 5, 5]), '███');
  assert.equal(sparkline([]), '');
  assert.equal(sparkline([1, 2, 3, 4, 5, 6, 7, 8], 4), '▁▃▆█');
  assert.equal(trend([0.5]), '');
  assert.equal(trend([0.5, 0.6]), '↑');
  assert.equal(trend([0.6, 0.5]), '↓');
  assert.equal(trend([0.5, 0.5]), '→');
  assert.equal(workerSummary([]), 'no workers');
});

test('StatusLine: log lines are printed above the status line, which is redrawn after each; stop leaves it with a newline', async () => {
  const written: string[] = [];
  const term = { columns: 200, write: (t: string) => written.push(t) > 0 };
  const sampler = { sample: async () => base } as unknown as Sampler;
  const view = new StatusLine(term, sampler, 60_000);
  view.print('before start\n');
  assert.deepEqual(written, ['before start\n']);
  view.start();
  await new Promise((r) => setImmediate(r));
  const line = renderStatusLine(base, 199);
  assert.equal(written.at(-1), `\r\x1b[2K${line}`);
  view.print('a log line\n');
  assert.equal(written.at(-1), `\r\x1b[2Ka log line\n${line}`);
  view.stop();
  assert.equal(written.at(-1), `\r\x1b[2K${renderStatusLine({ ...base, psState: 'down' }, 199)}\n`);
  view.print('after stop\n');
  assert.equal(written.at(-1), 'after stop\n');
});
