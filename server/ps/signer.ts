/**
 * HMAC tags the PS issues with a secret it shares with its own future restarts (from --secret
 * or TABSWARM_SECRET), so that what workers carry across a PS failure can be trusted again:
 *
 *   idTag       HMAC(secret, "id" | workerId): proves a worker may rejoin under an old id,
 *               keeping its applied-push record (exactly-once) across PS restarts.
 *   weightsTag  HMAC(secret, "weights" | layoutHash | version | record | SHA-256(weights)):
 *               a copy of the weights, its version and its applied-push record, as issued
 *               by a PS of this deployment; a volunteer cannot forge or alter any of them.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AppliedRecordEntry } from '../../shared/protocol.ts';

export const TAG_BYTES = 32;

export class Signer {
  private readonly key: Buffer;
  /** True when the secret was generated for this process: tags then die with it. */
  readonly ephemeral: boolean;

  constructor(secret?: string) {
    this.ephemeral = !secret;
    this.key = secret ? Buffer.from(secret, 'utf8') : randomBytes(32);
  }

  idTag(workerId: number): string {
    return createHmac('sha256', this.key).update(`id:${workerId >>> 0}`).digest('hex');
  }

  verifyIdTag(workerId: number, tag: string): boolean {
    if (!/^[0-9a-f]{64}$/.test(tag)) return false;
    return timingSafeEqual(Buffer.from(this.idTag(workerId), 'hex'), Buffer.from(tag, 'hex'));
  }

  /** @param weightBytes the little-endian float32 bytes of the weights */
  weightsTag(layoutHash: number, version: number, record: readonly AppliedRecordEntry[], weightBytes: Uint8Array): Uint8Array {
    const digest = createHash('sha256').update(weightBytes).digest();
    const head = Buffer.alloc(12 + 12 * record.length);
    head.writeUInt32LE(layoutHash >>> 0, 0);
    head.writeUInt32LE(version >>> 0, 4);
    head.writeUInt32LE(record.length, 8);
    record.forEach((r, i) => {
      head.writeUInt32LE(r.workerId >>> 0, 12 + 12 * i);
      head.writeUInt32LE(r.seq >>> 0, 16 + 12 * i);
      head.writeUInt32LE(r.version >>> 0, 20 + 12 * i);
    });
    return new Uint8Array(createHmac('sha256', this.key).update('weights:').update(head).update(digest).digest());
  }

  verifyWeightsTag(tag: Uint8Array, layoutHash: number, version: number, record: readonly AppliedRecordEntry[], weightBytes: Uint8Array): boolean {
    if (tag.length !== TAG_BYTES) return false;
    return timingSafeEqual(Buffer.from(this.weightsTag(layoutHash, version, record, weightBytes)), Buffer.from(tag));
  }
}
