/**
 * Gossip during a `local` outage (see index.ts): after each local step the worker averages in
 * the weights a peer sent, and every `gossipEveryMs` starts one exchange. Peers' requests are
 * answered only during a `local` outage. Only the weights the worker computes on move: what it
 * flushes is its own summed gradients, and the first weights pulled from the PS end it all.
 */
import type { WorkerMesh } from './index.ts';

export class MeshGossip {
  private lastExchange = 0;
  private exchanging = false;
  /** A peer's weights, averaged into the own copy at the next local step. */
  private peer: Float32Array | undefined;

  constructor(
    private readonly mesh: WorkerMesh,
    /** The worker's own copy during a `local` outage, else undefined (client/outage.ts). */
    private readonly local: () => Float32Array | undefined,
    private readonly connected: () => boolean,
  ) {
    mesh.onGossip((theirs) => this.answer(theirs));
  }

  /** After a local step: averages in a peer's weights, and starts an exchange when one is due. */
  mix(w: Float32Array): void {
    const theirs = this.peer;
    this.peer = undefined;
    if (theirs) for (let i = 0; i < w.length; i++) w[i] = (w[i]! + theirs[i]!) / 2;
    const every = this.mesh.gossipEveryMs;
    if (every <= 0 || this.exchanging || Date.now() - this.lastExchange < every) return;
    this.exchanging = true;
    this.lastExchange = Date.now();
    void this.mesh
      .exchange(Float32Array.from(w))
      .then((peer) => {
        if (peer && this.local()) this.peer = peer;
      })
      .finally(() => (this.exchanging = false));
  }

  /** The PS's weights were taken: gossip from the outage never leaks into them. */
  forget(): void {
    this.peer = undefined;
  }

  /** A peer asks to average: only during a `local` outage; its weights are averaged in at the next step. */
  private answer(theirs: Float32Array): Float32Array | undefined {
    const own = this.local();
    if (!own || this.connected()) return undefined;
    this.peer = theirs;
    return Float32Array.from(own);
  }
}
