/**
 * What the PS signs for each version of the weights it hands out, and how anyone holding the
 * deployment's public key (published in GET /api/model) checks it. One Ed25519 signature covers
 * the layout hash, the version, the applied-push record and a SHA-256 digest of the weights, so
 * a worker can accept weights relayed by an untrusted peer, and a restarted stateless PS can
 * adopt a copy a worker offers. The run is bound through the key: it derives from the secret
 * and the run id (server/ps/signer.ts), so a copy from another run that shares the secret does
 * not verify under this run's public key. The meta block also names the signing key in clear
 * (its key id, `keyIdOf`), so a refusal can say "another run" rather than "forged" (`checkWeights`).
 * The server signs with Node's crypto (server/ps/signer.ts); this
 * file only uses WebCrypto (`globalThis.crypto.subtle`), present in browsers and in Node >= 20.
 */
import { KEY_ID_BYTES, type AppliedRecordEntry, type Frame } from './protocol.ts';

export const SIGNATURE_ALGORITHM = 'Ed25519';
/** Ed25519 signatures are 64 bytes; the meta block's `tag` field holds one. */
export const SIGNATURE_BYTES = 64;
export const PUBLIC_KEY_BYTES = 32;
const DOMAIN = new TextEncoder().encode('tabswarm-weights-v1\0');

/** The bytes the signature covers: domain | layoutHash | version | k | record | SHA-256(weights). */
export function signedMessage(layoutHash: number, version: number, record: readonly AppliedRecordEntry[], digest: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(DOMAIN.length + 12 + 12 * record.length + digest.length);
  out.set(DOMAIN, 0);
  const view = new DataView(out.buffer, DOMAIN.length);
  view.setUint32(0, layoutHash >>> 0, true);
  view.setUint32(4, version >>> 0, true);
  view.setUint32(8, record.length, true);
  record.forEach((r, i) => {
    view.setUint32(12 + 12 * i, r.workerId >>> 0, true);
    view.setUint32(16 + 12 * i, r.seq >>> 0, true);
    view.setUint32(20 + 12 * i, r.version >>> 0, true);
  });
  out.set(digest, DOMAIN.length + 12 + 12 * record.length);
  return out;
}

/** Imports the raw 32-byte public key from /api/model (base64) for `verifyWeights`. */
export async function importWeightsKey(base64: string): Promise<CryptoKey> {
  const raw = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  if (raw.length !== PUBLIC_KEY_BYTES) throw new TypeError(`importWeightsKey: key must be ${PUBLIC_KEY_BYTES} bytes, got ${raw.length}`);
  return crypto.subtle.importKey('raw', raw, { name: SIGNATURE_ALGORITHM }, false, ['verify']);
}

/** True when a decoded WEIGHTS (or OFFER) frame carries a valid signature of the PS's key. */
export async function verifyWeights(key: CryptoKey, frame: Pick<Frame, 'layoutHash' | 'modelVersion' | 'meta' | 'payloadBytes'>): Promise<boolean> {
  const meta = frame.meta;
  if (!meta || meta.tag.length !== SIGNATURE_BYTES) return false;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', frame.payloadBytes.slice()));
  const message = signedMessage(frame.layoutHash, frame.modelVersion, meta.record, digest);
  return crypto.subtle.verify({ name: SIGNATURE_ALGORITHM }, key, meta.tag.slice(), message);
}

/** A key's id, as the meta block carries it: the first 8 bytes of SHA-256 of the raw public key (base64). */
export async function keyIdOf(base64: string): Promise<Uint8Array> {
  const raw = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Uint8Array(await crypto.subtle.digest('SHA-256', raw)).slice(0, KEY_ID_BYTES);
}

export const hexOf = (bytes: Uint8Array | undefined): string => (bytes ? Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('') : 'none');

/**
 * Why a copy is refused, or 'ok'. 'other-run': the meta block names another key than `keyId`
 * (another run under the same secret, or another deployment); 'forged': it names this key, or
 * none, and the signature fails. The key id is in clear and a forger can write any: it only
 * names the refusal; acceptance rests on the signature alone.
 */
export async function checkWeights(key: CryptoKey, keyId: Uint8Array, frame: Pick<Frame, 'layoutHash' | 'modelVersion' | 'meta' | 'payloadBytes'>): Promise<'ok' | 'other-run' | 'forged'> {
  if (await verifyWeights(key, frame)) return 'ok';
  return otherKey(frame.meta?.keyId, keyId) ? 'other-run' : 'forged';
}

/** True when a copy's key id is present and is not `mine`. */
export function otherKey(theirs: Uint8Array | undefined, mine: Uint8Array): boolean {
  return theirs !== undefined && (theirs.length !== mine.length || theirs.some((b, i) => b !== mine[i]));
}
