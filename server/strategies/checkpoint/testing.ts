/**
 * Helpers for the checkpoint module's unit tests: a small model, a store, a logger that keeps
 * what it was told, and a deterministic gradient. Not used by the server.
 */
import type { FastifyBaseLogger } from 'fastify';
import { deriveLayout, type Layout } from '../../../shared/layout.ts';
import type { ModelSpec } from '../../../shared/models.ts';
import { ParameterStore, type Update } from '../../ps/store.ts';
import { CHECKPOINT_DEFAULTS, type CheckpointOptions } from './options.ts';

/** 100 inputs -> 10 outputs: 1,010 parameters. */
export const SMALL: ModelSpec = {
  name: 'small',
  description: 'test',
  input: [10, 10, 1],
  classes: 10,
  layers: [{ kind: 'flatten' }, { kind: 'dense', units: 10, activation: 'linear' }],
  defaults: { lr: 0.1, batch: 1 },
};
export const SMALL_LAYOUT: Layout = deriveLayout(SMALL);

export function smallStore(momentum = 0.5): ParameterStore {
  const initial = Float32Array.from({ length: SMALL_LAYOUT.size }, (_, i) => Math.cos(i) / 10);
  return new ParameterStore(SMALL_LAYOUT, initial, { lr: 0.1, momentum });
}

/** A gradient that moves some regions far more than others, as real ones do. */
export function gradient(step: number, size = SMALL_LAYOUT.size): Float32Array {
  return Float32Array.from({ length: size }, (_, i) => Math.sin(step * 0.37 + i) * (i % 300 < 40 ? 3 : 0.05));
}

export function update(workerId: number, seq: number, baseVersion = 0): Update {
  return { workerId, seq, baseVersion, count: 1, grad: gradient(workerId * 1000 + seq) };
}

export interface LogLine {
  level: string;
  msg: string;
  obj: unknown;
}

export function recordingLogger(lines: LogLine[] = []): FastifyBaseLogger & { lines: LogLine[] } {
  const at = (level: string) => (obj: unknown, msg?: string) => {
    lines.push(typeof obj === 'string' ? { level, msg: obj, obj: undefined } : { level, msg: msg ?? '', obj });
  };
  const log = { lines, level: 'debug', info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug'), fatal: at('fatal'), trace: at('trace'), silent: () => {} };
  return Object.assign(log, { child: () => log }) as unknown as FastifyBaseLogger & { lines: LogLine[] };
}

export function options(over: Partial<CheckpointOptions> = {}): CheckpointOptions & { model: string } {
  return { ...CHECKPOINT_DEFAULTS, checkpointBlock: 32, ...over, model: SMALL.name };
}

export const same = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
