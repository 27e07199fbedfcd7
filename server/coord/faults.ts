/**
 * Named faults for tests of coordination users (the PS cluster): `expireZkSession(node)` in the
 * house's words. Works on both backends the same way.
 */
import { TabswarmError } from '../../shared/errors.ts';
import { CoordinationClient } from './client.ts';
import type { Coordination } from './types.ts';

/**
 * Makes ZooKeeper expire `coord`'s session, as it would after a partition longer than the
 * session timeout: a second connection attaches to the session with its id and password and
 * closes it. Resolves once `coord` has reported 'expired' (its ephemeral znodes are gone);
 * it then opens a new session by itself.
 */
export async function expireSession(coord: Coordination, timeoutMs = 15000): Promise<void> {
  if (!(coord instanceof CoordinationClient)) throw new TabswarmError('COORD_BAD_ARGUMENT', { op: 'expireSession', detail: `a ${coord.kind} coordination client cannot be expired from outside` });
  await coord.forceExpire(timeoutMs);
}
