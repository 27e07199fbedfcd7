/**
 * The model registry. A model is a declarative list of layers; the flat weight layout, the
 * parameter count and the forward pass are all derived from it, identically on server,
 * browser and Node (see layout.ts and forward.ts).
 */
import { TabswarmError } from './errors.ts';

export type LayerSpec =
  | { readonly kind: 'conv2d'; readonly filters: number; readonly kernel: number; readonly activation: 'relu' | 'linear' }
  | { readonly kind: 'maxpool'; readonly size: number }
  | { readonly kind: 'flatten' }
  | { readonly kind: 'dense'; readonly units: number; readonly activation: 'relu' | 'linear' }
  | { readonly kind: 'dropout'; readonly rate: number };

export interface ModelSpec {
  readonly name: string;
  readonly description: string;
  /** Input shape of one example, height x width x channels. */
  readonly input: readonly [number, number, number];
  readonly classes: number;
  readonly layers: readonly LayerSpec[];
  /** Hyperparameters that suit the model, used unless overridden. */
  readonly defaults: { readonly lr: number; readonly batch: number };
}

const MODELS = {
  /** The network of the reference experiment (Cao et al. 2024): about 813k parameters. */
  'fashion-cnn': {
    name: 'fashion-cnn',
    description: 'conv3x3x16-relu-pool, conv3x3x32-relu-pool, dense512-relu, dropout 0.25, dense10 (Cao et al. 2024)',
    input: [28, 28, 1],
    classes: 10,
    layers: [
      { kind: 'conv2d', filters: 16, kernel: 3, activation: 'relu' },
      { kind: 'maxpool', size: 2 },
      { kind: 'conv2d', filters: 32, kernel: 3, activation: 'relu' },
      { kind: 'maxpool', size: 2 },
      { kind: 'flatten' },
      { kind: 'dense', units: 512, activation: 'relu' },
      { kind: 'dropout', rate: 0.25 },
      { kind: 'dense', units: 10, activation: 'linear' },
    ],
    defaults: { lr: 0.01, batch: 32 },
  },
  /** Small and fast, for tests: 784-64-10. */
  'mnist-mlp': {
    name: 'mnist-mlp',
    description: 'flatten, dense64-relu, dense10',
    input: [28, 28, 1],
    classes: 10,
    layers: [
      { kind: 'flatten' },
      { kind: 'dense', units: 64, activation: 'relu' },
      { kind: 'dense', units: 10, activation: 'linear' },
    ],
    defaults: { lr: 0.1, batch: 64 },
  },
  /** Multinomial logistic regression, one of SCAR's workloads (Qiao et al. 2019). */
  'mnist-logreg': {
    name: 'mnist-logreg',
    description: 'flatten, dense10 (softmax regression)',
    input: [28, 28, 1],
    classes: 10,
    layers: [{ kind: 'flatten' }, { kind: 'dense', units: 10, activation: 'linear' }],
    defaults: { lr: 0.1, batch: 64 },
  },
} as const satisfies Record<string, ModelSpec>;

export type ModelName = keyof typeof MODELS;

export const MODEL_NAMES = Object.keys(MODELS) as ModelName[];

export function getModel(name: string): ModelSpec {
  if (!Object.hasOwn(MODELS, name)) throw new TabswarmError('MODEL_UNKNOWN', { model: name, known: MODEL_NAMES.join(', ') });
  return MODELS[name as ModelName];
}

/** Whether the model's gradient needs Conv2DBackpropFilter, which tfjs-wasm lacks. */
export function hasConvolutions(model: ModelSpec): boolean {
  return model.layers.some((l) => l.kind === 'conv2d');
}
