/**
 * One declaration per option: its type, default, allowed values, help text and the symptom that
 * calls for it. A command's parsing (`parseOptions`), its `--help` (`renderHelp`), its defaults
 * (`defaultsOf`) and the check of values given in code (`checkValues`) are all read from that
 * declaration, so an option cannot be parsed one way, documented another and defaulted a third.
 *
 *   const OPTIONS = defineOptions({
 *     workers: { type: 'int', min: 0, default: 2, help: 'headless worker tabs', arg: 'N' },
 *     backend: { type: 'choice', values: ['auto', 'cpu'], default: 'auto', help: 'their backend' },
 *   });
 *   const o = parseOptions(OPTIONS, ['--workers', '4']);   // { workers: 4, backend: 'auto' }
 *
 * Tokenizing is node:util's parseArgs (strict: an unknown option is refused); coercion and range
 * checks are this module's, once, for every command. Every bad value is a CONFIG_INVALID error
 * naming the option by its flag.
 */
import { parseArgs } from 'node:util';
import { TabswarmError } from '../../shared/errors.ts';

interface Common<V> {
  /** What the option does, one line. */
  readonly help: string;
  /** The symptom that calls for changing it (the operator's view, as in hivemind's optimizer docs). */
  readonly symptom?: string;
  /** The flag without `--`, when it is not the key in kebab-case (`evalEveryMs` is `--eval-every`). */
  readonly flag?: string;
  /** The value's placeholder in the help, e.g. `MS`. */
  readonly arg?: string;
  readonly default?: V;
  /** The default in words, when it is not a constant (e.g. "the model's"). */
  readonly defaultText?: string;
  /** Refused when absent; `required` says what to give (shown after "is required"). */
  readonly required?: string;
}
export interface IntSpec extends Common<number> { readonly type: 'int'; readonly min?: number; readonly max?: number }
export interface NumberSpec extends Common<number> {
  readonly type: 'number';
  readonly min?: number;
  readonly max?: number;
  /** The bounds themselves are refused: (min, max) rather than [min, max]. */
  readonly exclusive?: 'min' | 'max' | 'both';
}
export interface StringSpec extends Common<string> { readonly type: 'string'; readonly minLength?: number }
export interface ChoiceSpec extends Common<string> {
  readonly type: 'choice';
  /** The allowed values; a function when the list is a registry read at parse time. */
  readonly values: readonly string[] | (() => readonly string[]);
}
export interface FlagSpec extends Common<boolean> { readonly type: 'flag' }
export interface ListSpec extends Common<readonly (string | number)[]> {
  readonly type: 'list';
  /** Comma-separated numbers (`int`, `number`) or words. */
  readonly of: 'int' | 'number' | 'string';
  readonly min?: number;
  /** A word that means the empty list, e.g. `none`. */
  readonly none?: string;
  /** The allowed words of a list `of: 'string'`. @default any */
  readonly values?: readonly string[];
}
export type OptionSpec = IntSpec | NumberSpec | StringSpec | ChoiceSpec | FlagSpec | ListSpec;
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** The TypeScript type of one option's value. */
export type ValueOf<S> = S extends { type: 'int' | 'number' } ? number
  : S extends { type: 'string' } ? string
  : S extends { type: 'flag' } ? boolean
  : S extends { type: 'choice'; values: () => readonly string[] } ? string
  : S extends { type: 'choice'; values: readonly (infer V)[] } ? V
  : S extends { type: 'list'; of: 'string' } ? string[]
  : S extends { type: 'list' } ? number[]
  : never;
type Always<S> = S extends { default: unknown } | { type: 'flag' } | { required: string } ? true : false;
/** A parsed command line: options with a default (or required, or flags) are always present. */
export type Values<T extends OptionTable> =
  & { -readonly [K in keyof T as Always<T[K]> extends true ? K : never]: ValueOf<T[K]> }
  & { -readonly [K in keyof T as Always<T[K]> extends true ? never : K]?: ValueOf<T[K]> };
/** The declared defaults, typed. */
export type Defaults<T extends OptionTable> = { -readonly [K in keyof T as T[K] extends { default: unknown } ? K : never]: ValueOf<T[K]> };

/** Declares a command's options; the identity, for the literal types `Values` reads. */
export function defineOptions<const T extends OptionTable>(table: T): T {
  for (const [key, spec] of Object.entries(table)) {
    // A registry read lazily (the strategies) may not be loaded yet: its default is checked on parse.
    const lazy = spec.type === 'choice' && typeof spec.values === 'function';
    if (spec.default !== undefined && !lazy) checkOne(key, spec, spec.default);
  }
  return table;
}

export const flagOf = (key: string, spec: OptionSpec): string => spec.flag ?? key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const allowed = (spec: ChoiceSpec): readonly string[] => (typeof spec.values === 'function' ? spec.values() : spec.values);

const bad = (key: string, spec: OptionSpec, detail: string) => new TabswarmError('CONFIG_INVALID', { option: `--${flagOf(key, spec)}`, detail });

/** The declared defaults (`flag`s default to false). */
export function defaultsOf<T extends OptionTable>(table: T): Defaults<T> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) if (spec.default !== undefined) out[key] = spec.default;
  return out as Defaults<T>;
}

/** Turns one command-line string into the option's type, or throws CONFIG_INVALID naming it. */
function coerce(key: string, spec: OptionSpec, raw: string): unknown {
  const number = (text: string, integer: boolean): number => {
    const n = text.trim() === '' ? NaN : Number(text);
    if (!Number.isFinite(n)) throw bad(key, spec, `'${text}' is not a number`);
    if (integer && !Number.isInteger(n)) throw bad(key, spec, `'${text}' is not an integer`);
    return n;
  };
  switch (spec.type) {
    case 'int': return number(raw, true);
    case 'number': return number(raw, false);
    case 'list': {
      if (spec.none !== undefined && raw === spec.none) return [];
      const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
      return spec.of === 'string' ? items : items.map((s) => number(s, spec.of === 'int'));
    }
    default: return raw;
  }
}

/** Checks one typed value against its declaration (range, allowed values, length). */
function checkOne(key: string, spec: OptionSpec, v: unknown): void {
  const range = (n: number, s: { min?: number; max?: number; exclusive?: string }) => {
    const lowOpen = s.exclusive === 'min' || s.exclusive === 'both';
    const highOpen = s.exclusive === 'max' || s.exclusive === 'both';
    if (s.min !== undefined && (lowOpen ? !(n > s.min) : !(n >= s.min))) throw bad(key, spec, `must be ${lowOpen ? '>' : '>='} ${s.min}, got ${n}`);
    if (s.max !== undefined && (highOpen ? !(n < s.max) : !(n <= s.max))) throw bad(key, spec, `must be ${highOpen ? '<' : '<='} ${s.max}, got ${n}`);
  };
  switch (spec.type) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(key, spec, `must be an integer, got ${String(v)}`);
      return range(v, spec);
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(key, spec, `must be a number, got ${String(v)}`);
      return range(v, spec);
    case 'string':
      if (typeof v !== 'string') throw bad(key, spec, `must be a string, got ${String(v)}`);
      if (spec.minLength !== undefined && v.length < spec.minLength) throw bad(key, spec, `must be at least ${spec.minLength} characters`);
      return;
    case 'choice':
      if (typeof v !== 'string' || !allowed(spec).includes(v)) throw bad(key, spec, `must be one of ${allowed(spec).join(', ')}, got '${String(v)}'`);
      return;
    case 'flag':
      if (typeof v !== 'boolean') throw bad(key, spec, `must be true or false, got ${String(v)}`);
      return;
    case 'list':
      if (!Array.isArray(v)) throw bad(key, spec, `must be a list, got ${String(v)}`);
      if (spec.of !== 'string') for (const n of v) checkOne(key, { ...spec, type: spec.of } as IntSpec | NumberSpec, n);
      else if (spec.values) for (const w of v) if (!spec.values.includes(w)) throw bad(key, spec, `'${String(w)}' is not one of ${spec.values.join(', ')}`);
      return;
  }
}

/**
 * Checks values given in code (e.g. `buildServer({ shards: 0 })`) against the declaration:
 * undefined means "the default"; keys not declared are left to the caller.
 */
export function checkValues<T extends OptionTable>(table: T, values: { readonly [K in keyof T]?: unknown }, opts: { skip?: readonly (keyof T)[] } = {}): void {
  for (const [key, spec] of Object.entries(table)) {
    const v = values[key as keyof T];
    if (v !== undefined && !opts.skip?.includes(key as keyof T)) checkOne(key, spec, v);
  }
}

/** `--help` or `-h` anywhere before a `--`. */
export function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/**
 * Parses a command line against the declaration: unknown options, missing values, bad numbers,
 * values out of range or not allowed are all CONFIG_INVALID naming the option. Options left out
 * take their declared default. A repeated option takes its last value (wrappers append overrides).
 */
export function parseOptions<T extends OptionTable>(table: T, argv: readonly string[]): Values<T> {
  const byFlag = new Map<string, [string, OptionSpec]>();
  const tokens: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [key, spec] of Object.entries(table)) {
    const flag = flagOf(key, spec);
    byFlag.set(flag, [key, spec]);
    tokens[flag] = { type: spec.type === 'flag' ? 'boolean' : 'string' };
  }
  let parsed: Record<string, string | boolean | undefined>;
  try {
    parsed = parseArgs({ args: [...argv], options: tokens, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    // node:util's messages name the option ("Unknown option '--x'", "Option '--x <value>' argument missing").
    const message = (err as Error).message;
    const option = /'(-[^' ]+)/.exec(message)?.[1] ?? 'command line';
    const first = message.split(/\.(?:\s|$)/)[0]!.replace(/^Option '[^']*' /, '');
    const hint = /ambiguous/.test(message) ? `: a value starting with '-' is written ${option}=VALUE` : '; run with --help for the options';
    throw new TabswarmError('CONFIG_INVALID', { option, detail: `${first}${hint}` });
  }
  const out: Record<string, unknown> = {};
  for (const [flag, [key, spec]] of byFlag) {
    const raw = parsed[flag];
    if (raw === undefined) {
      if (spec.default !== undefined) out[key] = spec.default;
      else if (spec.type === 'flag') out[key] = false;
      else if (spec.required !== undefined) throw bad(key, spec, `is required: ${spec.required}`);
      continue;
    }
    const value = typeof raw === 'boolean' ? raw : coerce(key, spec, raw);
    checkOne(key, spec, value);
    out[key] = value;
  }
  return out as Values<T>;
}

/** What the help says about a default and the allowed values. */
function defaultWords(spec: OptionSpec): string | undefined {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.type === 'flag' || spec.default === undefined) return undefined;
  if (Array.isArray(spec.default)) return spec.default.length ? spec.default.join(',') : (spec.type === 'list' && spec.none) || 'none';
  return spec.default === '' ? "''" : String(spec.default);
}

function allowedWords(spec: OptionSpec): string | undefined {
  if (spec.type === 'choice') return allowed(spec).join(' | ');
  if (spec.type === 'list' && spec.values) return `comma list of ${spec.values.join(' | ')}`;
  if (spec.type !== 'int' && spec.type !== 'number') return undefined;
  const ex = spec.type === 'number' ? spec.exclusive : undefined;
  const lo = spec.min === undefined ? '' : `${ex === 'min' || ex === 'both' ? '>' : '>='} ${spec.min}`;
  const hi = spec.max === undefined ? '' : `${ex === 'max' || ex === 'both' ? '<' : '<='} ${spec.max}`;
  const kind = spec.type === 'int' ? 'integer' : 'number';
  return [lo, hi].filter(Boolean).length ? `${kind} ${[lo, hi].filter(Boolean).join(', ')}` : kind;
}

/**
 * One block of help: each option with its placeholder, help, allowed values and default, and on
 * the next line the symptom that calls for it.
 */
export function renderHelp(table: OptionTable, opts: { keys?: readonly string[] } = {}): string {
  const lines: string[] = [];
  const keys = opts.keys ?? Object.keys(table);
  const heads = keys.map((key) => {
    const spec = table[key]!;
    const arg = spec.type === 'flag' ? '' : ` ${spec.arg ?? (spec.type === 'choice' ? 'V' : spec.type === 'int' || spec.type === 'number' ? 'N' : 'S')}`;
    return `  --${flagOf(key, spec)}${arg}`;
  });
  const width = Math.min(30, Math.max(...heads.map((h) => h.length)) + 2);
  keys.forEach((key, i) => {
    const spec = table[key]!;
    const facts = [allowedWords(spec), spec.required !== undefined ? 'required' : undefined, defaultWords(spec) !== undefined ? `default ${defaultWords(spec)}` : undefined].filter(Boolean);
    const head = heads[i]!;
    const pad = head.length + 1 > width ? `\n${' '.repeat(width)}` : ' '.repeat(width - head.length);
    lines.push(`${head}${pad}${spec.help}${facts.length ? ` (${facts.join('; ')})` : ''}`);
    if (spec.symptom) lines.push(`${' '.repeat(width)}when: ${spec.symptom}`);
  });
  return lines.join('\n');
}

/**
 * For scripts (the benches): `--help` prints `usage` and the options and exits; anything else is
 * parsed as `parseOptions` does, a bad option ending the script with the CONFIG_INVALID message.
 */
export function parseCommandLine<T extends OptionTable>(table: T, usage: string, argv: readonly string[] = process.argv.slice(2)): Values<T> {
  if (wantsHelp(argv)) {
    console.log(`${usage}\n${renderHelp(table)}`);
    process.exit(0);
  }
  try {
    return parseOptions(table, argv);
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
}
