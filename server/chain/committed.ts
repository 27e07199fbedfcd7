/**
 * The highest committed version, kept in ZooKeeper (`<root>/committed`, issue 13: no stale head
 * after a mass expiry). The head records each version the tail has applied before the workers'
 * acks for it are released (sync mode: replica.ts waits on `recorded`), so the znode is never
 * below an acknowledged version. Writes are grouped: one compare-and-set in flight at a time,
 * carrying the newest commit, so a burst of acks costs one ZooKeeper round trip, not one each.
 *
 * What reads it: a node that holds no trusted state may head a warm chain only with a version at
 * or above it (replica.ts), and a cold chain never warms on a fresh node (membership.ts
 * nextOrder), so a node started empty while every session expired cannot reset the cluster.
 * The value only grows (compare-and-set on a maximum): a fenced old head cannot lower it.
 */
import type { FastifyBaseLogger } from 'fastify';
import { Backoff } from '../../shared/backoff.ts';
import { TabswarmError } from '../../shared/errors.ts';
import type { Coordination } from '../coord/index.ts';

export class CommittedRecord {
  /** The highest version known to be recorded (by this node or another). */
  recorded = 0;
  private wanted = 0;
  private writing = false;
  /** The znode's version after this node's last write or read (-1: read it first). */
  private stat = -1;
  private stopped = false;
  private readonly backoff = new Backoff({ minMs: 50, maxMs: 1000 });

  constructor(
    private readonly coord: Coordination,
    readonly path: string,
    private readonly log: () => Pick<FastifyBaseLogger, 'warn'>,
    /** Called whenever `recorded` rises. */
    private readonly onRecorded: (version: number) => void,
  ) {}

  /** The stored value (0 when absent). */
  async read(): Promise<number> {
    const stored = await this.coord.exists(this.path);
    if (!stored) return 0;
    const got = await this.coord.get(this.path);
    const value = parse(got.data);
    if (value > this.recorded) this.raise(value);
    return value;
  }

  /** Asks for `version` to be recorded; `onRecorded` says when it is. */
  request(version: number): void {
    if (version <= this.recorded || version <= this.wanted) return;
    this.wanted = version;
    if (!this.writing) void this.pump();
  }

  stop(): void {
    this.stopped = true;
  }

  private raise(value: number): void {
    this.recorded = value;
    this.onRecorded(value);
  }

  private async pump(): Promise<void> {
    this.writing = true;
    try {
      while (!this.stopped && this.wanted > this.recorded) {
        const version = this.wanted;
        try {
          await this.write(version);
          this.backoff.reset();
          if (version > this.recorded) this.raise(version);
        } catch (err) {
          // ZooKeeper silent or the session changing: the acks behind it wait; try again.
          this.stat = -1;
          this.log().warn({ err: (err as Error).message, version }, 'could not record the committed version; retrying');
          await new Promise((r) => setTimeout(r, this.backoff.fail()).unref());
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async write(version: number): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      if (this.stat < 0) {
        if (!(await this.coord.exists(this.path))) {
          try {
            await this.coord.ensure(this.path, JSON.stringify({ version }));
          } catch {
            // Created meanwhile by another node: compare below.
          }
        }
        const got = await this.coord.get(this.path);
        this.stat = got.version;
        const stored = parse(got.data);
        if (stored > this.recorded) this.raise(stored);
        if (stored >= version) return;
      }
      try {
        this.stat = await this.coord.set(this.path, JSON.stringify({ version }), this.stat);
        return;
      } catch (err) {
        if (!(err instanceof TabswarmError && err.code === 'COORD_VERSION_CONFLICT')) throw err;
        this.stat = -1; // another writer: re-read, and stop if it already holds as much
      }
    }
    throw new Error(`${this.path}: 20 compare-and-set conflicts in a row`);
  }
}

function parse(data: string): number {
  let v: unknown;
  try {
    v = (JSON.parse(data) as { version?: unknown }).version;
  } catch {
    return 0; // unreadable: as if absent (only the cluster's credentials can write it)
  }
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0;
}

/**
 * Whether a node must not head the warm chain it was just made head of: it holds no state the
 * chain agreed on (it registered anew) and its version is below the recorded committed version
 * or below a live member's registered version, so heading would drop updates another node (or
 * an acknowledgement) holds. It then turns the chain cold instead, where the highest version heads.
 */
export function mustNotHead(version: number, committed: number, members: readonly { version: number }[]): boolean {
  return version < committed || members.some((m) => m.version > version);
}
