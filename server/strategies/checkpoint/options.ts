/**
 * The checkpoint strategy's knobs, their defaults and the check that refuses a bad value with a
 * CONFIG_INVALID error naming the option. docs/checkpointing.md ties each knob to the symptom
 * that calls for it.
 */

export const CHECKPOINT_MODES = ['sync', 'async'] as const;
export type CheckpointMode = (typeof CHECKPOINT_MODES)[number];

export const RECOVERY_MODES = ['partial', 'full'] as const;
export type RecoveryMode = (typeof RECOVERY_MODES)[number];

export interface CheckpointOptions {
  /**
   * 'sync': the PS stops applying while it writes from the live arrays. 'async': it copies
   * what it saves and writes in the background while it keeps applying (one write in flight).
   * @default 'async'
   */
  checkpointMode: CheckpointMode;
  /** Checkpoint after this many applied updates; 0 = not by count. @default 100 */
  checkpointEvery: number;
  /** Checkpoint when this many ms have passed since the last one (checked on apply); 0 = off. @default 0 */
  checkpointEveryMs: number;
  /** Directory of the checkpoint streams (one folder per PS shard). @default 'checkpoints' */
  checkpointDir: string;
  /** Full checkpoints kept per shard (with the partial ones that build on them). @default 3 */
  checkpointKeep: number;
  /** Key-range shards of the PS state, each with its own version and checkpoint stream. @default 1 */
  psShards: number;
  /**
   * Prioritized checkpoints: the fraction r of each shard's blocks a checkpoint saves, those
   * that changed most since they were last saved. 1 = every checkpoint is full. @default 1
   * @example 0.25  // save the quarter that moved most; checkpoint 4x as often for the same bytes
   */
  priorityFraction: number;
  /** Values per block, the unit of prioritized checkpoints. @default 256 */
  checkpointBlock: number;
  /** With r < 1: every C-th checkpoint of a shard is full, bounding what a restore reads. 0 = never after the first. @default 10 */
  checkpointFullEvery: number;
  /** After a shard is lost: 'partial' restores that shard only; 'full' rolls every shard back. @default 'partial' */
  recovery: RecoveryMode;
}

export const CHECKPOINT_DEFAULTS: CheckpointOptions = {
  checkpointMode: 'async',
  checkpointEvery: 100,
  checkpointEveryMs: 0,
  checkpointDir: 'checkpoints',
  checkpointKeep: 3,
  psShards: 1,
  priorityFraction: 1,
  checkpointBlock: 256,
  checkpointFullEvery: 10,
  recovery: 'partial',
};

