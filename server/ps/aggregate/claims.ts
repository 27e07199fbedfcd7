/**
 * What a push claims about itself, checked against what the PS knows. The base version feeds
 * the stale-update rule (a lie ahead makes a stale gradient look fresh); the count feeds the
 * rule's scale (a flush claiming few gradients for a large sum takes a large step).
 *
 * Base version: the PS remembers the highest version it sent on each session (the version at
 * join, every pull, every ack). A claim ahead of it is refused (PS_CLAIM_AHEAD). Two honest
 * cases get their weights elsewhere and are bounded by the PS's current version instead: relay
 * (signed weights from peers) and chains (strict reads from the tail); and a resumed session
 * may flush a buffer computed on an earlier session's weights until it pulls once.
 * Count: at most `maxCount` gradients per push or flush (PS_COUNT_TOO_LARGE).
 */
import { TabswarmError } from '../../../shared/errors.ts';

export interface ClaimLimits {
  /** Most gradients one push or flush may claim. @default 100000 */
  maxCount: number;
  /** Bound claims by what this session was sent (true) or by the current version (false: relay, chains). @default true */
  sessionBound: boolean;
}

interface Sent {
  version: number;
  /** A resumed session before its first pull: its flush may predate this session. */
  resumed: boolean;
}

export class ClaimCheck {
  /** Keyed by the session object, so it is bounded by the live sessions and needs no cleanup. */
  private readonly sent = new WeakMap<object, Sent>();

  constructor(public limits: ClaimLimits) {}

  joined(session: object, version: number, resumed: boolean): void {
    this.sent.set(session, { version, resumed });
  }

  /** A version told to the session: a pull's weights, or an ack. */
  served(session: object, version: number, pulled: boolean): void {
    const s = this.sent.get(session);
    if (!s) return void this.sent.set(session, { version, resumed: false });
    if (version > s.version) s.version = version;
    if (pulled) s.resumed = false;
  }

  /** Throws PS_CLAIM_AHEAD or PS_COUNT_TOO_LARGE; `current` is the store's version. */
  check(session: object, worker: number, baseVersion: number, count: number, current: number): void {
    if (count > this.limits.maxCount) throw new TabswarmError('PS_COUNT_TOO_LARGE', { worker, count, max: this.limits.maxCount });
    const s = this.sent.get(session);
    if (s?.resumed) return;
    const bound = this.limits.sessionBound && s ? s.version : current;
    if (baseVersion > bound) throw new TabswarmError('PS_CLAIM_AHEAD', { worker, claimed: baseVersion, sent: bound });
  }
}
