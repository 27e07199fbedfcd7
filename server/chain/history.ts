/**
 * The (worker, seq) of each applied version a node remembers, oldest first: sent with a STATE so
 * a new node can prove what it holds, and read by /api/admin/chain/history to check that every
 * acknowledged push was applied exactly once. Bounded: the oldest entries go first.
 */
import type { HistoryEntry } from './frames.ts';

export class AppliedHistory {
  private list: HistoryEntry[] = [];
  private first = 1;

  constructor(private readonly limit: number) {}

  /** Version of entries[0]. */
  get start(): number {
    return this.first;
  }

  get entries(): readonly HistoryEntry[] {
    return this.list;
  }

  /** Version `version` was made by (workerId, seq). */
  remember(workerId: number, seq: number, version: number): void {
    if (version !== this.first + this.list.length) {
      // A gap (state restored without history, e.g. from a checkpoint): start again here.
      this.list = [];
      this.first = version;
    }
    this.list.push({ workerId, seq });
    const extra = this.list.length - this.limit;
    if (extra > 0) {
      this.list.splice(0, extra);
      this.first += extra;
    }
  }

  /** Replaced by a STATE's history. */
  replace(start: number, entries: readonly HistoryEntry[]): void {
    this.list = [...entries];
    this.first = start;
  }
}
