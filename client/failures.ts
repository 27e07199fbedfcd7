/**
 * What a worker does about each failure. Outages (closed, refused, timed out, PS restarting)
 * are retried with backoff while training goes on; a session the PS no longer knows is
 * rejoined (under the same id when the id tag still verifies); a frame the PS refused as
 * malformed is dropped rather than resent; a wrong model or backend stops the worker; a
 * cluster node that is not (or no longer) the head sends the worker to look for the head.
 */
import { ERRORS, isRetryableClose, type TabswarmError } from '../shared/errors.ts';

export type ErrorAction = 'retry' | 'relocate' | 'rejoin' | 'forget-identity' | 'drop-outgoing' | 'fatal';

export function classify(e: TabswarmError): ErrorAction {
  switch (e.code) {
    case 'WORKER_DISCONNECTED':
    case 'WORKER_TIMEOUT':
    case 'PS_FORGED_WEIGHTS': // the copy was dropped by the caller; reconnect without offering
    case 'PS_OTHER_RUN': // another run's copy (issue 13): dropped the same way
    case 'PROTO_BAD_META':
      return 'retry';
    case 'CHAIN_NOT_HEAD':
    case 'CHAIN_FENCED':
    case 'CHAIN_NOT_READY':
      // A cluster node that may not take this write: find the head, rejoin there, resend.
      return 'relocate';
    case 'PS_NO_SESSION':
    case 'PS_SESSION_EXPIRED':
    case 'PS_REPLACED':
    case 'PS_WRONG_WORKER':
    case 'PS_NO_WORK':
      return 'rejoin';
    case 'PS_BAD_RESUME':
    case 'PS_RECORD_EXPIRED': // the loop also drops what it owed under the old id (client/loop.ts)
      return 'forget-identity';
    case 'PROTO_LAYOUT_MISMATCH':
    case 'MODEL_UNKNOWN':
    case 'WORKER_BACKEND_UNSUPPORTED':
    case 'CONFIG_INVALID':
      return 'fatal';
    default:
      if (e.code.startsWith('PROTO_')) return 'drop-outgoing';
      return ERRORS[e.code].retryable && isRetryableClose(ERRORS[e.code].wsClose) ? 'retry' : 'fatal';
  }
}
