import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { TabswarmError } from './errors.ts';
import { parseAs } from './validate.ts';

const S = Type.Object({ shards: Type.Array(Type.Integer({ minimum: 0 })) });

test('parseAs returns a value that matches and refuses one that does not with WORKER_BAD_RESPONSE', () => {
  assert.deepEqual(parseAs(S, { shards: [1, 2] }, 'POST /api/report'), { shards: [1, 2] });
  assert.throws(() => parseAs(S, { shards: [1, 'x'] }, 'POST /api/report'), (e: unknown) => {
    assert.ok(e instanceof TabswarmError);
    assert.equal(e.code, 'WORKER_BAD_RESPONSE');
    assert.match(e.message, /POST \/api\/report/);
    assert.match(e.message, /\/shards\/1/);
    return true;
  });
  assert.throws(() => parseAs(S, null, 'x'), /WORKER_BAD_RESPONSE/);
});
