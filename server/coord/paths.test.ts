import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TabswarmError } from '../../shared/errors.ts';
import { ancestry, baseName, checkData, checkPath, formatSequence, joinPath, MAX_DATA_BYTES, parentOf, sequenceOf } from './paths.ts';

describe('znode paths', () => {
  test('valid and invalid paths', () => {
    for (const ok of ['/', '/a', '/a/b-c/d_e.f', '/tabswarm/chain/members']) checkPath('t', ok);
    for (const bad of ['', 'a', 'a/b', '/a/', '//a', '/a//b', '/a/./b', '/a/..', '/a\u0000b']) {
      assert.throws(() => checkPath('t', bad), (err: unknown) => err instanceof TabswarmError && err.code === 'COORD_BAD_ARGUMENT', JSON.stringify(bad));
    }
  });

  test('data is limited to 1 MiB of UTF-8', () => {
    checkData('t', 'x'.repeat(MAX_DATA_BYTES));
    assert.throws(() => checkData('t', 'é'.repeat(MAX_DATA_BYTES / 2 + 1)), /exceeds/);
  });

  test('parents, names, ancestry', () => {
    assert.equal(joinPath('/', 'a'), '/a');
    assert.equal(joinPath('/a', 'b'), '/a/b');
    assert.equal(parentOf('/a/b/c'), '/a/b');
    assert.equal(parentOf('/a'), '/');
    assert.equal(baseName('/a/b/c'), 'c');
    assert.deepEqual(ancestry('/a/b/c'), ['/a', '/a/b', '/a/b/c']);
    assert.deepEqual(ancestry('/'), []);
  });

  test('sequence numbers are 10 zero-padded digits at the end of the name', () => {
    assert.equal(formatSequence(7), '0000000007');
    assert.equal(sequenceOf('member-ab12-0000000007'), 7);
    assert.equal(sequenceOf('member-ab12-'), undefined);
    assert.equal(sequenceOf('epoch'), undefined);
  });
});
