import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isRoutineRequestLine, prettyStream, resolveLogFormat } from './logger.ts';

test('resolveLogFormat: auto is pretty on a terminal and JSON otherwise; an explicit format wins', () => {
  assert.equal(resolveLogFormat('auto', true), 'pretty');
  assert.equal(resolveLogFormat('auto', false), 'json');
  assert.equal(resolveLogFormat('json', true), 'json');
  assert.equal(resolveLogFormat('pretty', false), 'pretty');
});

test('the pretty log drops the routine per-request lines, keeps failed requests and everything else', () => {
  const lines: string[] = [];
  const stream = prettyStream(() => ({ write: (t) => lines.push(t) }), { colorize: false });
  const at = 1_700_000_000_000;
  stream.write(`${JSON.stringify({ level: 30, time: at, reqId: 'req-1', req: { method: 'POST', url: '/api/report' }, msg: 'incoming request' })}\n`);
  stream.write(`${JSON.stringify({ level: 30, time: at, reqId: 'req-1', res: { statusCode: 200 }, msg: 'request completed' })}\n`);
  stream.write(`${JSON.stringify({ level: 30, time: at, reqId: 'req-2', res: { statusCode: 429 }, msg: 'request completed' })}\n`);
  stream.write(`${JSON.stringify({ level: 30, time: at, pid: 1, hostname: 'h', version: 7, accuracy: 0.91, msg: 'evaluation' })}\n`);
  stream.write('not json\n');
  assert.equal(lines.length, 3, lines.join(''));
  assert.match(lines[0]!, /INFO.*request completed.*429/);
  assert.match(lines[1]!, /^\[\d\d:\d\d:\d\d\] INFO: evaluation \{"version":7,"accuracy":0.91\}\n$/);
  assert.equal(lines[2], 'not json\n');
  assert.equal(isRoutineRequestLine({ msg: 'incoming request' }), false, 'only Fastify\'s request lines, which carry a reqId');
});
