/**
 * docs/PROTOCOL.md against shared/protocol.ts, both ways, as errors.test.ts holds docs/errors.md
 * to the error catalogue: every MsgType and ChainMsg value is documented once with the same
 * number, every documented type exists, and each sits in the range its direction owns.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ChainMsg, MsgType } from './protocol.ts';

const doc = readFileSync(new URL('../docs/PROTOCOL.md', import.meta.url), 'utf8');
const CODE: Readonly<Record<string, number>> = { ...MsgType, ...ChainMsg };

/** Markdown table rows as trimmed cells, without the outer pipes. */
function rows(predicate: (line: string) => boolean): string[][] {
  return doc
    .split('\n')
    .filter(predicate)
    .map((line) => line.slice(line.indexOf('|') + 1, line.trimEnd().length - 1).split('|').map((cell) => cell.trim()));
}
const unquote = (s: string): string => s.replace(/^`|`$/g, '');

/** Rows of the message-type tables (1.3 and 6.1): | `NAME` | `0xNN` | direction | ... */
const typeRows = rows((line) => /^\|\s*`[A-Z][A-Z0-9_]*`\s*\|\s*`0x[0-9A-Fa-f]{2}`\s*\|/.test(line));
/** Rows of the range table: | `0xAA-0xBB` | direction | */
const rangeRows = rows((line) => /^\|\s*`0x[0-9A-Fa-f]{2}-0x[0-9A-Fa-f]{2}`\s*\|/.test(line)).map((r) => {
  const [lo, hi] = unquote(r[0]!).split('-').map((h) => Number.parseInt(h, 16)) as [number, number];
  return { lo, hi, direction: r[1]! };
});

describe('docs/PROTOCOL.md message types', () => {
  test('lists exactly the MsgType and ChainMsg types of shared/protocol.ts, each once', () => {
    const names = typeRows.map((r) => unquote(r[0]!));
    assert.equal(new Set(names).size, names.length, `a type is listed twice: ${names.join(', ')}`);
    assert.deepEqual([...names].sort(), Object.keys(CODE).sort());
  });

  test('every documented code is the number protocol.ts gives that type', () => {
    for (const [name, code] of typeRows.map((r) => [unquote(r[0]!), unquote(r[1]!)] as const)) {
      assert.ok(Object.hasOwn(CODE, name), `${name} is documented but protocol.ts has no such type`);
      assert.equal(Number.parseInt(code, 16), CODE[name], `${name}: documented ${code}, protocol.ts 0x${CODE[name]!.toString(16).padStart(2, '0')}`);
    }
  });

  test('no two types share a number', () => {
    const codes = Object.values(CODE);
    assert.equal(new Set(codes).size, codes.length, codes.join(','));
  });

  test('each type lies in the range its documented direction owns, worker types below PS types below PS-PS', () => {
    assert.equal(rangeRows.length, 3, 'the range table has worker -> PS, PS -> worker and PS -> PS');
    for (const row of typeRows) {
      const [name, code, direction] = [unquote(row[0]!), Number.parseInt(unquote(row[1]!), 16), row[2]!];
      const range = rangeRows.find((r) => code >= r.lo && code <= r.hi);
      assert.ok(range, `${name} (0x${code.toString(16)}) lies in no documented range`);
      assert.ok(range.direction.startsWith(direction), `${name}: direction '${direction}', but its range is '${range.direction}'`);
    }
    for (const code of Object.values(ChainMsg)) assert.ok(code >= 0x40 && code <= 0x5f, `chain type 0x${code.toString(16)} outside 0x40-0x5F`);
    for (const code of Object.values(MsgType)) assert.ok(code < 0x40, `worker/PS type 0x${code.toString(16)} in the PS-PS range`);
  });

  test("the validation table's type check names every worker/PS type", () => {
    const check = rows((line) => /^\|\s*5\s*\|\s*`type` is /.test(line))[0];
    assert.ok(check, 'validation row 5 (the type check) is missing');
    const named = [...check[1]!.split('(')[0]!.matchAll(/\b[A-Z][A-Z_]+\b/g)].map((m) => m[0]);
    assert.deepEqual(named.sort(), Object.keys(MsgType).sort());
  });
});
