/**
 * Checks JSON a client received against the schema that `shared/api.ts` declares for it. A
 * worker never casts a PS's answer: what does not match is a catalogued WORKER_BAD_RESPONSE,
 * naming the request and the first mismatch, and nothing of it is used.
 *
 * TypeBox's `Value.Check` interprets the schema (no code generation), so it runs under a page's
 * Content-Security-Policy as well as in Node.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { TabswarmError } from './errors.ts';

/** Returns `value` typed by `schema`, or throws WORKER_BAD_RESPONSE naming `what` and the first mismatch. */
export function parseAs<S extends TSchema>(schema: S, value: unknown, what: string): Static<S> {
  if (Value.Check(schema, value)) return value;
  const first = Value.Errors(schema, value).First();
  const detail = first ? `${first.path || '/'}: ${first.message}` : 'does not match';
  throw new TabswarmError('WORKER_BAD_RESPONSE', { what, detail });
}
