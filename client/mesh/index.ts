/**
 * The worker mesh as the training loop sees it: no PeerJS, no DOM. The loop calls it for two
 * things and nothing else:
 *
 *   gossip  (`local` buffer mode, PS unreachable) every `gossipEveryMs` the worker averages its
 *           own weights with one peer's (pairwise: both ends average). Only the weights it
 *           computes on change; what it flushes later is still its own summed gradients, so
 *           exactly-once is untouched.
 *   relay   (PS up, `relay` on) a worker holds the latest signed WEIGHTS frame it took and
 *           serves it to peers; a worker needing weights asks a peer first and pulls from the
 *           PS only on a miss. Relayed frames are verified against the PS's signature.
 *
 * client/mesh/peerjs.ts implements it over WebRTC data channels.
 */
import type { PullResult } from '../transport.ts';

/** What the mesh did, for the page, `window.tabswarm.mesh` and tests. */
export interface MeshStatus {
  peerId: string;
  /** Signaling server reachable (false during a PS outage: open channels carry on). */
  signaling: boolean;
  /** Peers with an open data channel. */
  peers: string[];
  /** Peers with a channel dialled or offered but not open yet. */
  dialing: string[];
  /** Channels given up for not opening within the open timeout (an offer or answer lost, ICE failed, the peer gone). */
  stalled: number;
  /** Gossip exchanges completed: started here and answered here. */
  gossipStarted: number;
  gossipAnswered: number;
  /** Gossip requests that got no weights back (declined, timed out, no peer). */
  gossipMisses: number;
  /** Relay: frames served to peers, taken from peers, and requests that fell back to the PS. */
  relayServed: number;
  relayReceived: number;
  relayMisses: number;
  lastRelay: { from: string; version: number } | null;
  /** Messages refused, by error code (MESH_*). */
  rejected: Record<string, number>;
  /** Peers disconnected for what they sent (never dialled again). */
  reported: { peer: string; code: string; at: number }[];
}

export type GossipHandler = (theirs: Float32Array) => Float32Array | undefined;

export interface WorkerMesh {
  readonly status: MeshStatus;
  /** Gossip period in ms; 0 = no gossip. */
  readonly gossipEveryMs: number;
  readonly relay: boolean;
  /** Relay: a peer's copy may be at most this many versions behind the worker's last ack. */
  readonly relayMaxLag: number;
  /** Sends `weights` to one peer; resolves with that peer's weights (before it averaged), or undefined. */
  exchange(weights: Float32Array): Promise<Float32Array | undefined>;
  /** Answers peers' gossip: gets their (validated) weights, returns ours, or undefined to decline. */
  onGossip(handler: GossipHandler): void;
  /** The latest signed WEIGHTS frame this worker holds (from the PS or verified from a peer): served to peers. */
  hold(frame: Uint8Array, version: number): void;
  /** Signed weights of at least `minVersion` from a peer, verified; undefined on a miss. */
  fetch(minVersion: number): Promise<PullResult | undefined>;
  close(): void;
}
