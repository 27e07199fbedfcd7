import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TabswarmError } from '../../shared/errors.ts';
import { splitArgs } from '../cluster-supervisor/cli.ts';
import { commandHelp, helpText } from '../cli.ts';
import { DEFAULTS, resolveOptions } from '../config.ts';
import { CHECKPOINT_DEFAULTS } from '../strategies/checkpoint/options.ts';
import { STRATEGY_NAMES } from '../strategies/index.ts';
import { defaultsOf, defineOptions, flagOf, parseOptions, renderHelp, type OptionTable } from './schema.ts';
import { NODE_OPTIONS, PS_OPTIONS, START_OPTIONS, WORKER_OPTIONS } from './server.ts';
import { CLUSTER_OPTIONS, EXPERIMENT_OPTIONS, SWARM_OPTIONS, ZK_OPTIONS } from './tools.ts';

const TABLE = defineOptions({
  workers: { type: 'int', min: 0, default: 2, help: 'tabs' },
  lr: { type: 'number', min: 0, exclusive: 'min', help: 'learning rate' },
  relay: { type: 'choice', values: ['on', 'off'], default: 'off', help: 'relay', symptom: 'pulls saturate the uplink' },
  url: { type: 'string', required: 'e.g. --url http://x/', help: 'the PS' },
  evalEveryMs: { flag: 'eval-every', type: 'int', min: 0, default: 5000, help: 'evaluation period' },
  kills: { type: 'list', of: 'number', min: 0, none: 'none', default: [30, 80], help: 'kill times' },
  json: { type: 'flag', help: 'JSON lines' },
});

/** Asserts that `fn` throws CONFIG_INVALID naming `option`, with `detail` in the message. */
function refuses(fn: () => unknown, option: string, detail: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof TabswarmError, `not a TabswarmError: ${String(err)}`);
    assert.equal(err.code, 'CONFIG_INVALID');
    assert.match(err.message, new RegExp(`Option ${option}: `));
    assert.match(err.message, detail);
    return true;
  });
}

const ALL_TABLES: Record<string, OptionTable> = { START_OPTIONS, NODE_OPTIONS, WORKER_OPTIONS, ZK_OPTIONS, CLUSTER_OPTIONS, SWARM_OPTIONS, EXPERIMENT_OPTIONS };

test('parsing coerces each type, applies the declared defaults and keeps the last of a repeated option', () => {
  const o = parseOptions(TABLE, ['--url', 'http://x/', '--lr', '0.05', '--eval-every', '0', '--kills', 'none', '--json', '--workers', '3', '--workers', '5']);
  assert.deepEqual(o, { workers: 5, lr: 0.05, relay: 'off', url: 'http://x/', evalEveryMs: 0, kills: [], json: true });
  assert.deepEqual(parseOptions(TABLE, ['--url=u', '--kills', '5, 7.5']), { workers: 2, relay: 'off', url: 'u', evalEveryMs: 5000, kills: [5, 7.5], json: false });
});

test('an unknown option, a missing value or a missing required option is CONFIG_INVALID naming it', () => {
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--bogus', '1']), '--bogus', /nknown option/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--lr']), '--lr', /argument missing/);
  refuses(() => parseOptions(TABLE, []), '--url', /is required: e\.g\. --url/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', 'stray']), 'command line', /Unexpected argument 'stray'/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--workers', '-1']), '--workers', /ambiguous: a value starting with '-' is written --workers=VALUE/);
});

test('a bad number is CONFIG_INVALID naming the option: not a number, not an integer, out of range', () => {
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--workers', 'abc']), '--workers', /'abc' is not a number/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--workers', '']), '--workers', /is not a number/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--workers', '1.5']), '--workers', /'1\.5' is not an integer/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--workers=-1']), '--workers', /must be >= 0, got -1/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--lr', '0']), '--lr', /must be > 0, got 0/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--lr', 'Infinity']), '--lr', /not a number/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--eval-every', '1e400']), '--eval-every', /not a number/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--kills', '5,x']), '--kills', /'x' is not a number/);
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--kills', '5,-1']), '--kills', /must be >= 0/);
});

test('allowed values are enforced, and a declared default outside them fails at load time', () => {
  refuses(() => parseOptions(TABLE, ['--url', 'u', '--relay', 'maybe']), '--relay', /must be one of on, off, got 'maybe'/);
  refuses(() => defineOptions({ mode: { type: 'choice', values: ['a', 'b'], default: 'c', help: 'x' } }), '--mode', /one of a, b/);
  refuses(() => defineOptions({ n: { type: 'int', min: 1, default: 0, help: 'x' } }), '--n', /must be >= 1/);
});

test('help lists every declared option with its placeholder, allowed values, default and symptom', () => {
  const help = renderHelp(TABLE);
  assert.match(help, /--workers N +tabs \(integer >= 0; default 2\)/);
  assert.match(help, /--relay V +relay \(on \| off; default off\)\n +when: pulls saturate the uplink/);
  assert.match(help, /--url S +the PS \(required\)/);
  assert.match(help, /--eval-every N .*default 5000/);
  assert.match(help, /--kills S .*default 30,80/);
  assert.match(help, /--json +JSON lines$/m);
  for (const [name, table] of Object.entries(ALL_TABLES)) {
    const text = renderHelp(table);
    for (const [key, spec] of Object.entries(table)) {
      assert.match(text, new RegExp(`^  --${flagOf(key, spec)}\\b`, 'm'), `${name}: --${flagOf(key, spec)} missing from the help`);
      if (spec.default !== undefined && spec.type !== 'flag' && !Array.isArray(spec.default)) {
        const line = text.split('\n').find((l) => l.startsWith(`  --${flagOf(key, spec)} `))!;
        assert.ok(line.includes(`default ${spec.default === '' ? "''" : String(spec.default)}`), `${name}: the help of --${flagOf(key, spec)} lacks its default: ${line}`);
      }
    }
  }
});

test('`tabswarm help` lists every option of every command, and `node --help` every start option', () => {
  const help = helpText();
  for (const [name, table] of Object.entries(ALL_TABLES)) {
    for (const [key, spec] of Object.entries(table)) {
      if (name === 'NODE_OPTIONS' && key in START_OPTIONS && spec.default === (START_OPTIONS as OptionTable)[key]!.default) continue; // "every start option too"
      assert.ok(help.includes(`--${flagOf(key, spec)}`), `${name}: --${flagOf(key, spec)} missing from tabswarm help`);
    }
  }
  const node = commandHelp('node');
  for (const [key, spec] of Object.entries(NODE_OPTIONS)) assert.match(node, new RegExp(`^  --${flagOf(key, spec)}\\b`, 'm'));
  assert.match(node, /--strategy V .*none \| stateless \| checkpoint.*default none/);
  assert.match(node, /--port N .*default 0\)/);
});

test('config.ts DEFAULTS are the declared defaults (the checkpoint ones included)', () => {
  assert.deepEqual(DEFAULTS, defaultsOf(PS_OPTIONS));
  for (const [key, value] of Object.entries(CHECKPOINT_DEFAULTS)) assert.equal(DEFAULTS[key as keyof typeof DEFAULTS], value, key);
  assert.equal(DEFAULTS.model, 'fashion-cnn');
  assert.equal(DEFAULTS.strategy, 'none');
  // A command line with nothing on it resolves to exactly what buildServer({}) does.
  const parsed = parseOptions(START_OPTIONS, []);
  // Except the model: `start` defaults to the newcomer's fast one (mnist-mlp), the library to fashion-cnn.
  assert.equal(parsed.model, 'mnist-mlp');
  assert.equal(parseOptions(NODE_OPTIONS, ['--zk', 'h:1']).model, 'fashion-cnn');
  for (const key of Object.keys(PS_OPTIONS).filter((k) => k !== 'model')) assert.deepEqual(parsed[key as keyof typeof parsed], DEFAULTS[key as keyof typeof DEFAULTS], key);
  assert.equal(parsed.port, 8080);
  assert.equal(parseOptions(NODE_OPTIONS, ['--zk', 'h:1']).port, 0);
});

test('options given in code are checked against the same declaration, naming the option', () => {
  refuses(() => resolveOptions({ shards: 0 }), '--shards', /must be >= 1, got 0/);
  refuses(() => resolveOptions({ relay: 'maybe' as 'on' }), '--relay', /one of on, off/);
  refuses(() => resolveOptions({ priorityFraction: 0 }), '--priority-fraction', /must be > 0/);
  refuses(() => resolveOptions({ secret: 'short' }), '--secret', /at least 16 characters/);
  refuses(() => resolveOptions({ lr: -1 }), '--lr', /must be > 0/);
  assert.equal(resolveOptions({}).lr, 0.01, "the model's lr fills in when none is given");
});

test('`tabswarm node` accepts --strategy: every strategy name, default none', () => {
  assert.equal(parseOptions(NODE_OPTIONS, ['--zk', 'h:1']).strategy, 'none');
  for (const name of STRATEGY_NAMES()) assert.equal(parseOptions(NODE_OPTIONS, ['--zk', 'h:1', '--strategy', name]).strategy, name);
  refuses(() => parseOptions(NODE_OPTIONS, ['--zk', 'h:1', '--strategy', 'nope']), '--strategy', /must be one of none/);
  refuses(() => parseOptions(NODE_OPTIONS, ['--strategy', 'none']), '--zk', /is required/);
  refuses(() => parseOptions(NODE_OPTIONS, ['--zk', 'h:1', '--fast-detect', 'maybe']), '--fast-detect', /on, off/);
});

test('the worker and the tools parse with the same mechanism', () => {
  assert.deepEqual(parseOptions(WORKER_OPTIONS, ['--url', 'http://x/', '--log-acks']), { url: 'http://x/', logEveryMs: 2000, logAcks: true, overlap: false, codec: 'float32', topkRatio: 0.01, int8Block: 256 });
  refuses(() => parseOptions(WORKER_OPTIONS, ['--url', 'u', '--buffer-mode', 'x']), '--buffer-mode', /frozen, local/);
  refuses(() => parseOptions(ZK_OPTIONS, ['--ensemble', '0']), '--ensemble', />= 1/);
  refuses(() => parseOptions(SWARM_OPTIONS, ['--url', 'u', '--backend', 'gpu']), '--backend', /auto, webgpu/);
  assert.deepEqual(parseOptions(EXPERIMENT_OPTIONS, ['--kills', 'none', '--strategies', 'stateless,none']).kills, []);
  refuses(() => parseOptions(EXPERIMENT_OPTIONS, ['--baseline', 'maybe']), '--baseline', /yes, no/);
});

test('cluster: its own options are parsed by declaration, every other one goes to the nodes', () => {
  const { own, nodeArgs } = splitArgs(['--nodes', '3', '--model', 'mnist-mlp', '--replication=async', '--strategy', 'checkpoint', '--secret=-abcdefghijklmnop', '--lr', '0.1']);
  assert.deepEqual(nodeArgs, ['--model', 'mnist-mlp', '--strategy', 'checkpoint', '--lr', '0.1']);
  const o = parseOptions(CLUSTER_OPTIONS, own);
  assert.equal(o.nodes, 3);
  assert.equal(o.replication, 'async');
  assert.equal(o.secret, '-abcdefghijklmnop');
  assert.equal(o.port, 8090);
  refuses(() => parseOptions(CLUSTER_OPTIONS, splitArgs(['--nodes', '--model', 'x']).own), '--nodes', /argument missing/);
  refuses(() => parseOptions(CLUSTER_OPTIONS, splitArgs(['--reads', 'x']).own), '--reads', /strict, relaxed/);
});

test('a string list with allowed words refuses any other word, naming the option', () => {
  assert.deepEqual(parseOptions(PS_OPTIONS, ['--codecs', 'f16,topk']).codecs, ['f16', 'topk']);
  assert.throws(() => parseOptions(PS_OPTIONS, ['--codecs', 'f16,zip']), (e: unknown) => e instanceof TabswarmError && e.code === 'CONFIG_INVALID' && /--codecs/.test(e.message) && /zip/.test(e.message));
});
