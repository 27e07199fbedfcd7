/**
 * Fast detection of a crashed neighbour: a link that dropped without a close handshake, then a
 * port that refuses connections, is the signature of a dead process (a slow one would answer or
 * time out). The caller then removes its registration at once instead of waiting a session
 * timeout. A timeout or any answer proves nothing and leaves it to ZooKeeper.
 */
export async function refusesConnections(url: string, stillMember: () => boolean): Promise<boolean> {
  let refused = 0;
  for (let attempt = 0; attempt < 10 && refused < 3; attempt++) {
    if (!stillMember()) return false;
    try {
      await fetch(new URL('/api/cluster', url), { signal: AbortSignal.timeout(500) });
      return false; // it answers: alive
    } catch (err) {
      const code = (err as { cause?: { code?: string } }).cause?.code;
      if (code === 'ECONNREFUSED') refused += 1;
      // A process being killed can close its links before its listening socket (seen on a
      // loaded machine): the probe's connection is then reset, not refused. Ask again.
      else if (code !== 'ECONNRESET' && code !== 'UND_ERR_SOCKET') return false; // a timeout proves nothing
    }
    await new Promise((r) => setTimeout(r, refused > 0 ? 20 : 100));
  }
  return refused >= 3 && stillMember();
}

/** Promises that resolve once a counter (the chain epoch) reaches a value, or after a timeout. */
export class EpochWaiters {
  private readonly waiters = new Set<() => void>();

  constructor(private readonly current: () => number) {}

  /** Call after the epoch changed. */
  notify(): void {
    for (const w of this.waiters) w();
  }

  /** Resolves once the epoch is `epoch` or later, or after `ms`. */
  wait(epoch: number, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        if (this.current() < epoch) return;
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve();
      }, ms);
      this.waiters.add(done);
    });
  }
}
