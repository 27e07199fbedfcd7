/**
 * The node-to-node link: a WebSocket from a node to its successor (`/chain` on the successor),
 * one per chain epoch. Nothing secret travels in its URL, and every message after the
 * handshake is authenticated on the link (docs/chain.md, "Links"):
 *
 *   1. the predecessor opens `/chain?from=P&to=S&epoch=E&nonce=Np` (P, S: member names; Np:
 *      32 fresh random bytes);
 *   2. the successor answers (text) `{challenge: Ns, proof: HMAC(secret, successor | P, S, E, Np, Ns)}`,
 *      Ns fresh: it proves the cluster's secret for this very request;
 *   3. the predecessor checks that proof and answers `{proof: HMAC(secret, predecessor | P, S, E, Np, Ns)}`;
 *   4. both derive the link key HMAC(secret, key | P, S, E, Np, Ns); from then on every message
 *      is binary and ends with a 32-byte HMAC-SHA256 tag, under the link key, of its direction,
 *      its number on the link (0, 1, ... per direction) and its bytes: the successor's hello
 *      first (JSON: the version to resume from), then FORWARD and STATE down, CHAIN_ACK up.
 *
 * A handshake replayed from another link fails step 2 or 3 (the other side's nonce is new), a
 * proof for one sender, receiver or epoch does not verify for another, and a party without
 * the secret can neither complete the handshake nor forge, reorder or replay a message on a
 * link (CHAIN_BAD_LINK, CHAIN_BAD_MAC).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import WebSocket from 'ws';
import { TabswarmError } from '../../shared/errors.ts';

/** WebSocket's own close codes (RFC 6455); tabswarm's come from the error catalogue. */
export const WS_NORMAL = 1000;
export const WS_GOING_AWAY = 1001;
/** Reported locally when a socket closed without a close frame (the peer's process died). */
export const WS_ABNORMAL = 1006;

/** Closes `socket` with the catalogue's close code and reason for `err`. */
export function closeWithError(socket: { close(code: number, reason: string): void }, err: TabswarmError): void {
  socket.close(err.spec.wsClose, err.closeReason());
}

/** The successor's answer on a new link: where to resume. `version` is -1 when it has no state. */
export interface LinkHello {
  readonly version: number;
  readonly fresh: boolean;
  readonly epoch: number;
}

/** What both ends' proofs and the link key are bound to. */
export interface LinkTranscript {
  /** The predecessor's member name. */
  readonly from: string;
  /** The successor's member name. */
  readonly to: string;
  readonly epoch: number;
  readonly predecessorNonce: string;
  readonly successorNonce: string;
}

/** Bytes of the tag that ends every message after the handshake. */
export const LINK_TAG_BYTES = 32;
/** How long the successor waits for the predecessor's proof. */
export const LINK_HANDSHAKE_MS = 5000;

export function freshNonce(): string {
  return randomBytes(32).toString('hex');
}

export function isNonce(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{64}$/.test(value);
}

function mac(secret: string, label: 'successor' | 'predecessor' | 'key', t: LinkTranscript): Buffer {
  // JSON: no two transcripts serialise alike, whatever the names hold.
  return createHmac('sha256', secret).update(JSON.stringify([`tabswarm-chain-link-${label}`, t.from, t.to, t.epoch, t.predecessorNonce, t.successorNonce])).digest();
}

export function successorProof(secret: string, t: LinkTranscript): string {
  return mac(secret, 'successor', t).toString('hex');
}

export function predecessorProof(secret: string, t: LinkTranscript): string {
  return mac(secret, 'predecessor', t).toString('hex');
}

/** Constant-time comparison of a received proof (any value) with the expected one. */
export function proofMatches(expected: string, got: unknown): boolean {
  return isNonce(got) && timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(got, 'hex'));
}

/**
 * One end's authentication of the messages on a link: `seal` appends the tag to what it sends,
 * `open` checks and strips the tag of what it receives (undefined if it does not verify).
 * The message numbers make a replayed, dropped or reordered message fail.
 */
export class LinkAuth {
  private sent = 0n;
  private received = 0n;
  private readonly key: Buffer;

  constructor(secret: string, t: LinkTranscript, private readonly side: 'predecessor' | 'successor') {
    this.key = mac(secret, 'key', t);
  }

  private tag(direction: 'down' | 'up', n: bigint, bytes: Uint8Array): Buffer {
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64LE(n);
    return createHmac('sha256', this.key).update(direction).update(counter).update(bytes).digest();
  }

  seal(bytes: Uint8Array): Buffer {
    const tag = this.tag(this.side === 'predecessor' ? 'down' : 'up', this.sent++, bytes);
    return Buffer.concat([bytes, tag]);
  }

  open(message: Uint8Array): Uint8Array | undefined {
    if (message.byteLength < LINK_TAG_BYTES) return undefined;
    const body = message.subarray(0, message.byteLength - LINK_TAG_BYTES);
    const tag = this.tag(this.side === 'predecessor' ? 'up' : 'down', this.received, body);
    if (!timingSafeEqual(tag, message.subarray(message.byteLength - LINK_TAG_BYTES))) return undefined;
    this.received++;
    return body;
  }
}

/** The URL a predecessor opens: names, epoch and its nonce, nothing derived from the secret. */
export function linkUrl(successorUrl: string, from: string, to: string, epoch: number, nonce: string): string {
  const url = new URL('chain', successorUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('from', from);
  url.searchParams.set('to', to);
  url.searchParams.set('epoch', String(epoch));
  url.searchParams.set('nonce', nonce);
  return url.toString();
}

/**
 * Step 3, the predecessor's: checks the successor's challenge (text) and returns the answer to
 * send and the link's authentication. CHAIN_BAD_LINK if the successor did not prove the secret
 * for this link.
 */
export function answerChallenge(secret: string, base: Omit<LinkTranscript, 'successorNonce'>, text: string): { reply: string; auth: LinkAuth } {
  let challenge: { challenge?: unknown; proof?: unknown };
  try {
    challenge = JSON.parse(text) as typeof challenge;
  } catch {
    challenge = {};
  }
  if (!isNonce(challenge.challenge)) throw new TabswarmError('CHAIN_BAD_LINK', { from: base.to, detail: 'the successor sent no challenge' });
  const t: LinkTranscript = { ...base, successorNonce: challenge.challenge };
  if (!proofMatches(successorProof(secret, t), challenge.proof)) throw new TabswarmError('CHAIN_BAD_LINK', { from: base.to, detail: 'the successor did not prove this cluster\'s secret for this link' });
  return { reply: JSON.stringify({ proof: predecessorProof(secret, t) }), auth: new LinkAuth(secret, t, 'predecessor') };
}

export interface OutLinkHandlers {
  onHello(hello: LinkHello): void;
  onFrame(bytes: Uint8Array): void;
  onClose(code: number, reason: string): void;
}

/**
 * The predecessor's end of a link: runs the handshake (steps 1 and 3), then hands the
 * successor's hello and acks, each checked against its tag, to its owner.
 */
export class OutLink {
  readonly socket: WebSocket;
  ready = false;
  closed = false;
  private auth: LinkAuth | undefined;
  private hello = false;

  constructor(readonly target: { name: string; url: string }, readonly epoch: number, from: string, secret: string, maxPayload: number, private readonly h: OutLinkHandlers) {
    const base = { from, to: target.name, epoch, predecessorNonce: freshNonce() };
    this.socket = new WebSocket(linkUrl(target.url, from, target.name, epoch, base.predecessorNonce), { maxPayload, perMessageDeflate: false });
    this.socket.binaryType = 'nodebuffer';
    this.socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.closed) return;
      if (!this.auth) {
        if (isBinary) return this.closeWith(new TabswarmError('CHAIN_BAD_LINK', { from: target.name, detail: 'the successor sent a frame before the handshake' }));
        try {
          const { reply, auth } = answerChallenge(secret, base, data.toString('utf8'));
          this.auth = auth;
          this.socket.send(reply);
        } catch (err) {
          this.closeWith(err as TabswarmError);
        }
        return;
      }
      const body = isBinary ? this.auth.open(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)) : undefined;
      if (!body) return this.closeWith(new TabswarmError('CHAIN_BAD_MAC', { from: target.name, detail: isBinary ? 'its tag does not verify with this link\'s key and message number' : 'text after the handshake' }));
      if (this.hello) return h.onFrame(body);
      this.hello = true;
      let hello: LinkHello;
      try {
        hello = JSON.parse(Buffer.from(body).toString('utf8')) as LinkHello;
      } catch {
        return this.closeWith(new TabswarmError('CHAIN_BAD_FRAME', { detail: 'the successor\'s hello is not JSON' }));
      }
      h.onHello(hello);
    });
    this.socket.on('error', () => {});
    this.socket.on('close', (code: number, reason: Buffer) => {
      if (this.closed) return;
      this.closed = true;
      h.onClose(code, reason.toString('utf8'));
    });
  }

  /** Sends a frame with its tag; nothing before the handshake is done. */
  send(bytes: Uint8Array): void {
    if (!this.closed && this.auth && this.socket.readyState === WebSocket.OPEN) this.socket.send(this.auth.seal(bytes));
  }

  /** Bytes queued in the socket and not yet written. */
  get buffered(): number {
    return this.socket.bufferedAmount;
  }

  /** Ends the link on a failure: its owner hears of it (onClose) and links again. */
  closeWith(err: TabswarmError): void {
    if (this.closed) return;
    this.close(err.spec.wsClose, err.closeReason());
    this.h.onClose(err.spec.wsClose, err.closeReason());
  }

  close(code = WS_NORMAL, reason = 'chain reconfigured'): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate();
      else this.socket.close(code, reason);
    } catch {
      this.socket.terminate();
    }
  }
}
