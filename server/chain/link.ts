/**
 * The node-to-node link: a WebSocket from a node to its successor (`/chain` on the successor),
 * one per chain epoch. The predecessor opens it with its member name, its epoch and a proof that
 * it holds the cluster's secret; the successor answers with one text message, its version (or
 * that it has no state yet), and from then on binary chain frames flow: FORWARD and STATE down,
 * CHAIN_ACK up.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
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

/** HMAC(secret, 'chain-link' | from | epoch): a node of another cluster cannot link in. */
export function linkProof(secret: string, from: string, epoch: number): string {
  return createHmac('sha256', secret).update(`chain-link:${from}:${epoch}`).digest('hex');
}

export function verifyLinkProof(secret: string, from: string, epoch: number, proof: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(proof)) return false;
  return timingSafeEqual(Buffer.from(linkProof(secret, from, epoch), 'hex'), Buffer.from(proof, 'hex'));
}

export function linkUrl(successorUrl: string, from: string, epoch: number, secret: string): string {
  const url = new URL('chain', successorUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('from', from);
  url.searchParams.set('epoch', String(epoch));
  url.searchParams.set('proof', linkProof(secret, from, epoch));
  return url.toString();
}

export interface OutLinkHandlers {
  onHello(hello: LinkHello): void;
  onFrame(bytes: Uint8Array): void;
  onClose(code: number, reason: string): void;
}

/** The predecessor's end of a link. */
export class OutLink {
  readonly socket: WebSocket;
  ready = false;
  closed = false;

  constructor(readonly target: { name: string; url: string }, readonly epoch: number, url: string, maxPayload: number, h: OutLinkHandlers) {
    this.socket = new WebSocket(url, { maxPayload, perMessageDeflate: false });
    this.socket.binaryType = 'nodebuffer';
    this.socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (this.closed) return;
      if (!isBinary) {
        let hello: LinkHello;
        try {
          hello = JSON.parse(data.toString('utf8')) as LinkHello;
        } catch {
          return this.closeWith(new TabswarmError('CHAIN_BAD_FRAME', { detail: 'the successor\'s hello is not JSON' }));
        }
        return h.onHello(hello);
      }
      h.onFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    this.socket.on('error', () => {});
    this.socket.on('close', (code: number, reason: Buffer) => {
      if (this.closed) return;
      this.closed = true;
      h.onClose(code, reason.toString('utf8'));
    });
  }

  send(bytes: Uint8Array): void {
    if (!this.closed && this.socket.readyState === WebSocket.OPEN) this.socket.send(bytes);
  }

  /** Bytes queued in the socket and not yet written. */
  get buffered(): number {
    return this.socket.bufferedAmount;
  }

  closeWith(err: TabswarmError): void {
    this.close(err.spec.wsClose, err.closeReason());
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
