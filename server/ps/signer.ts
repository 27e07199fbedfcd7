/**
 * What the PS issues so that what workers carry across a PS failure, or pass to each other, can
 * be trusted again. Both come from the deployment's secret (--secret or TABSWARM_SECRET), so
 * every PS process of a deployment (a restarted stateless PS, chain nodes) issues the same:
 *
 *   idTag       HMAC(secret, "id" | workerId): proves a worker may rejoin under an old id,
 *               keeping its applied-push record (exactly-once) across PS restarts.
 *   weightsTag  Ed25519 signature over layoutHash | version | record | SHA-256(weights)
 *               (shared/signing.ts), with a key derived from the secret. Asymmetric, so that
 *               workers can verify weights a peer relays (public key in GET /api/model) while
 *               only a PS can issue them; a volunteer cannot forge or alter any of it.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import type { AppliedRecordEntry } from '../../shared/protocol.ts';
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, signedMessage } from '../../shared/signing.ts';

export const TAG_BYTES = SIGNATURE_BYTES;
/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export class Signer {
  private readonly key: Buffer;
  private readonly signingKey: KeyObject;
  private readonly verifyingKey: KeyObject;
  /** The raw 32-byte Ed25519 public key, base64: what GET /api/model publishes. */
  readonly publicKey: string;
  /** True when the secret was generated for this process: tags then die with it. */
  readonly ephemeral: boolean;

  constructor(secret?: string) {
    this.ephemeral = !secret;
    this.key = secret ? Buffer.from(secret, 'utf8') : randomBytes(32);
    // The seed is a function of the secret alone: every PS of the deployment signs alike.
    const seed = createHmac('sha256', this.key).update('tabswarm weights signing key v1').digest();
    this.signingKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    this.verifyingKey = createPublicKey(this.signingKey);
    this.publicKey = this.verifyingKey.export({ format: 'der', type: 'spki' }).subarray(-PUBLIC_KEY_BYTES).toString('base64');
  }

  idTag(workerId: number): string {
    return createHmac('sha256', this.key).update(`id:${workerId >>> 0}`).digest('hex');
  }

  verifyIdTag(workerId: number, tag: string): boolean {
    if (!/^[0-9a-f]{64}$/.test(tag)) return false;
    return timingSafeEqual(Buffer.from(this.idTag(workerId), 'hex'), Buffer.from(tag, 'hex'));
  }

  /** The Ed25519 signature of a version. @param weightBytes the little-endian float32 bytes of the weights */
  weightsTag(layoutHash: number, version: number, record: readonly AppliedRecordEntry[], weightBytes: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, message(layoutHash, version, record, weightBytes), this.signingKey));
  }

  verifyWeightsTag(tag: Uint8Array, layoutHash: number, version: number, record: readonly AppliedRecordEntry[], weightBytes: Uint8Array): boolean {
    if (tag.length !== TAG_BYTES) return false;
    return verify(null, message(layoutHash, version, record, weightBytes), this.verifyingKey, tag);
  }
}

function message(layoutHash: number, version: number, record: readonly AppliedRecordEntry[], weightBytes: Uint8Array): Uint8Array {
  return signedMessage(layoutHash, version, record, createHash('sha256').update(weightBytes).digest());
}
