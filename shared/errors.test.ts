import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ERRORS, TabswarmError, codeForClose, formatMessage, isErrorCode, isRetryableClose, type ErrorCode } from './errors.ts';

const CODES = Object.keys(ERRORS) as ErrorCode[];
const utf8 = (s: string): number => new TextEncoder().encode(s).length;

describe('the error catalogue', () => {
  test('every code is UPPER_SNAKE with a known area prefix', () => {
    assert.ok(CODES.length >= 20);
    for (const code of CODES) {
      assert.match(code, /^(PROTO|PS|DATA|CONFIG|MODEL|WORKER|ADMIN|CHECKPOINT|ZK|COORD|CHAIN|MESH)_[A-Z0-9_]+$/, code);
    }
  });

  test('every entry has a message, a 4xx/5xx HTTP status and an application close code', () => {
    for (const code of CODES) {
      const spec = ERRORS[code];
      assert.equal(typeof spec.message, 'string', code);
      assert.ok(spec.message.trim().length > 10, `${code}: message too short`);
      assert.ok(Number.isInteger(spec.http) && spec.http >= 400 && spec.http <= 599, `${code}: http ${spec.http}`);
      assert.ok(Number.isInteger(spec.wsClose) && spec.wsClose >= 4000 && spec.wsClose <= 4999, `${code}: wsClose ${spec.wsClose}`);
      assert.equal(typeof spec.retryable, 'boolean', code);
    }
  });

  test('retryable <=> close code in 4000-4099; terminal codes in 4400-4499', () => {
    for (const code of CODES) {
      const { wsClose, retryable } = ERRORS[code];
      const inRetryBand = wsClose >= 4000 && wsClose <= 4099;
      const inTerminalBand = wsClose >= 4400 && wsClose <= 4499;
      assert.equal(retryable, inRetryBand, `${code}: retryable=${retryable} but close code ${wsClose}`);
      assert.equal(!retryable, inTerminalBand, `${code}: terminal but close code ${wsClose} is outside 4400-4499`);
      assert.equal(isRetryableClose(wsClose), retryable, `${code}: isRetryableClose(${wsClose})`);
    }
  });

  test('isRetryableClose: standard closes and the 4000-4099 band retry, everything else does not', () => {
    for (const c of [1000, 1001, 1006, 1011, 4000, 4050, 4099]) assert.equal(isRetryableClose(c), true, String(c));
    for (const c of [4100, 4399, 4400, 4420, 4499, 4500, 4999]) assert.equal(isRetryableClose(c), false, String(c));
  });

  test('both bands are used: some codes retry, the protocol codes do not', () => {
    assert.ok(CODES.some((c) => ERRORS[c].retryable));
    for (const c of CODES.filter((c) => c.startsWith('PROTO_'))) assert.equal(ERRORS[c].retryable, false, c);
  });

  test('codeForClose maps every close code back to an entry with that close code', () => {
    for (const code of CODES) {
      const back = codeForClose(ERRORS[code].wsClose);
      assert.ok(back, code);
      assert.equal(ERRORS[back].wsClose, ERRORS[code].wsClose);
      assert.equal(ERRORS[back].retryable, ERRORS[code].retryable, `close ${ERRORS[code].wsClose} is shared by entries that disagree on retrying`);
    }
    assert.equal(codeForClose(4400), 'PROTO_TOO_SHORT');
    assert.equal(codeForClose(1006), undefined);
    assert.equal(codeForClose(4999), undefined);
  });

  test('the protocol codes have distinct close codes, so a client can tell them apart', () => {
    const proto = CODES.filter((c) => c.startsWith('PROTO_') || c.startsWith('PS_'));
    const closes = proto.map((c) => ERRORS[c].wsClose);
    assert.equal(new Set(closes).size, closes.length, closes.join(','));
  });

  test('isErrorCode', () => {
    assert.equal(isErrorCode('PROTO_TOO_SHORT'), true);
    assert.equal(isErrorCode('NOPE'), false);
    assert.equal(isErrorCode('toString'), false, 'inherited properties are not codes');
    assert.equal(isErrorCode(4400), false);
  });
});

describe('formatMessage and TabswarmError', () => {
  test('formatMessage fills every placeholder', () => {
    assert.equal(formatMessage('PROTO_TOO_SHORT', { bytes: 7, header: 32 }), 'Frame of 7 bytes is shorter than the 32-byte header');
    assert.equal(formatMessage('PROTO_BAD_LENGTH', { got: 3, want: 5, type: 'PUSH' }), 'Payload of 3 values does not match the 5 the PUSH frame needs');
    assert.equal(formatMessage('PROTO_NON_FINITE', { index: 0, value: 'NaN' }), 'Payload value at index 0 is not finite (NaN)');
    assert.equal(formatMessage('PS_SHUTTING_DOWN', {}), ERRORS.PS_SHUTTING_DOWN.message);
  });

  test('formatMessage keeps a placeholder it has no value for, and false/0 are values', () => {
    assert.equal(formatMessage('PROTO_TOO_SHORT', { bytes: 0 }), 'Frame of 0 bytes is shorter than the {header}-byte header');
    assert.equal(formatMessage('PS_BAD_REQUEST', { detail: false }), 'Invalid request: false');
  });

  test('every template is fully filled when all its names are given', () => {
    for (const code of CODES) {
      const names = [...ERRORS[code].message.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      const details = Object.fromEntries(names.map((n) => [n, `<${n}>`]));
      const text = formatMessage(code, details);
      assert.doesNotMatch(text, /\{\w+\}/, code);
      for (const n of names) assert.ok(text.includes(`<${n}>`), `${code}: ${n}`);
    }
  });

  test('TabswarmError carries code, details, spec, and a JSON body', () => {
    const e = new TabswarmError('PS_FULL', { max: 8 });
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'TabswarmError');
    assert.equal(e.code, 'PS_FULL');
    assert.equal(e.message, 'PS_FULL: The server already serves 8 workers');
    assert.deepEqual(e.details, { max: 8 });
    assert.equal(e.spec, ERRORS.PS_FULL);
    assert.deepEqual(JSON.parse(JSON.stringify(e)), { code: 'PS_FULL', message: 'The server already serves 8 workers', retryable: true, details: { max: 8 } });
  });

  test('fromJSON rebuilds a catalogued error from its HTTP body, details included, and refuses the rest', () => {
    const sent = new TabswarmError('CHAIN_NOT_HEAD', { node: 'b', epoch: 3, head: 'http://127.0.0.1:9001/' });
    const back = TabswarmError.fromJSON(JSON.parse(JSON.stringify(sent)))!;
    assert.equal(back.code, 'CHAIN_NOT_HEAD');
    assert.deepEqual(back.details, sent.details);
    assert.equal(back.message, sent.message);
    assert.deepEqual(TabswarmError.fromJSON({ code: 'PS_FULL', message: 'full', details: { max: 2, bad: { nested: 1 } } })!.details, { max: 2 });
    for (const body of [null, 'PS_FULL', {}, { code: 'INTERNAL', message: 'x' }, { code: 'toString' }]) assert.equal(TabswarmError.fromJSON(body), undefined);
  });

  test('closeReason is the whole text when it fits in 123 bytes', () => {
    const e = new TabswarmError('PROTO_BAD_COUNT', { count: 0 });
    assert.equal(e.closeReason(), 'PROTO_BAD_COUNT: Gradient count 0 must be a positive integer');
  });

  test('closeReason is at most 123 UTF-8 bytes for long details, ASCII and multi-byte', () => {
    const fillers = ['x', 'é', '€', '😀'];
    for (const filler of fillers) {
      // Shift the multi-byte characters across the cut point with a varying ASCII prefix.
      for (let prefix = 0; prefix < 8; prefix++) {
        for (const code of ['PS_BAD_REQUEST', 'DATA_MISSING', 'CONFIG_INVALID'] as const) {
          const long = 'a'.repeat(prefix) + filler.repeat(200);
          const e = new TabswarmError(code, { detail: long, dataset: long, path: long, hint: long, option: long });
          const reason = e.closeReason();
          assert.ok(utf8(reason) <= 123, `${code} ${filler} +${prefix}: ${utf8(reason)} bytes`);
          assert.ok(utf8(reason) >= 110, 'the reason is cut, not dropped');
          assert.ok(reason.startsWith(`${code}: `), reason);
          assert.ok(reason.endsWith('...'), reason);
          assert.ok(!reason.includes('\uFFFD'), 'no broken character at the cut');
          // The cut keeps a prefix of the full text.
          assert.ok(e.message.startsWith(reason.slice(0, -3)));
        }
      }
    }
  });
});

describe('docs/errors.md', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  /** Rows of the table: | `CODE` | `message` | http | close | yes/no | advice | */
  const rows = doc
    .split('\n')
    .filter((line) => /^\|\s*`[A-Z][A-Z0-9_]*`\s*\|/.test(line))
    .map((line) => line.slice(1, line.trimEnd().length - 1).split('|').map((cell) => cell.trim()));
  const unquote = (s: string): string => s.replace(/^`|`$/g, '');

  test('lists exactly the codes of the catalogue, each once', () => {
    const codes = rows.map((r) => unquote(r[0]!));
    assert.equal(new Set(codes).size, codes.length, 'a code is listed twice');
    assert.deepEqual([...codes].sort(), [...CODES].sort());
  });

  test('message, HTTP status, close code and retryable agree with the catalogue; every row says what to do', () => {
    for (const row of rows) {
      assert.equal(row.length, 6, `row ${row.join(' | ')}`);
      const [code, message, http, close, retryable, advice] = row as [string, string, string, string, string, string];
      const c = unquote(code);
      assert.ok(isErrorCode(c), c);
      const spec = ERRORS[c];
      assert.equal(unquote(message), spec.message, `${c}: message`);
      assert.equal(Number(http), spec.http, `${c}: http`);
      assert.equal(Number(close), spec.wsClose, `${c}: close code`);
      assert.equal(retryable, spec.retryable ? 'yes' : 'no', `${c}: retryable`);
      assert.ok(advice.length > 15, `${c}: no advice for the client`);
    }
  });
});
