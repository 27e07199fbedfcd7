import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mustNotHead } from './committed.ts';
import { nextOrder, type ChainNodeInfo, type ChainView } from './membership.ts';

const node = (name: string, version: number): ChainNodeInfo => ({ name, url: `http://${name}/`, version });
const names = (o: { nodes: readonly ChainNodeInfo[] }) => o.nodes.map((n) => n.name);

describe('chain order (the cold-start rule)', () => {
  test('a warm chain keeps its survivors in order and appends newcomers, whatever their versions', () => {
    const chain: ChainView = { epoch: 4, warm: true, nodes: [node('b', 10), node('a', 10), node('c', 10)] };
    const o = nextOrder(chain, [node('a', 10), node('b', 10), node('d', 999)], 50, 1000);
    assert.deepEqual(names(o), ['b', 'a', 'd']);
    assert.equal(o.warm, true);
  });

  test('cold (no survivor of a warm chain): the highest version first; warm once it reaches the durable version', () => {
    const dead: ChainView = { epoch: 9, warm: true, nodes: [node('a', 0), node('b', 0)] };
    const waiting = nextOrder(dead, [node('x', 95)], 100, 1000);
    assert.deepEqual(names(waiting), ['x']);
    assert.equal(waiting.warm, false, 'x holds an older checkpoint than one some node made durable: wait');
    assert.deepEqual(waiting.cold, { since: 1000, expect: 2 });
    const cold: ChainView = { epoch: 10, ...waiting };
    const o = nextOrder(cold, [node('x', 95), node('y', 100), node('z', 98)], 100, 2000);
    assert.deepEqual(names(o), ['y', 'z', 'x']);
    assert.equal(o.warm, true);
    assert.equal(o.cold, undefined);
  });

  test('cold: the published durable version may lag a crash; the chain waits for as many nodes as it had, or coldWaitMs', () => {
    const dead: ChainView = { epoch: 3, warm: true, nodes: [node('a', 0), node('b', 0), node('c', 0)] };
    const one = nextOrder(dead, [node('x', 40)], 40, 1000, 30000);
    assert.equal(one.warm, false, 'x reaches the published version, but a node back later may hold a newer unpublished one');
    const cold: ChainView = { epoch: 4, ...one };
    assert.equal(nextOrder(cold, [node('x', 40), node('y', 45)], 40, 2000, 30000).warm, false);
    const all = nextOrder(cold, [node('x', 40), node('y', 45), node('z', 30)], 40, 3000, 30000);
    assert.deepEqual(names(all), ['y', 'x', 'z']);
    assert.equal(all.warm, true);
    assert.equal(nextOrder(cold, [node('x', 40)], 40, 31000, 30000).warm, true, 'after coldWaitMs, the best of those back');
    assert.equal(nextOrder(cold, [node('x', 39)], 40, 31000, 30000).warm, false, 'never below the published durable version');
  });

  test('a fresh cluster (nothing durable) is warm at once, in registration order', () => {
    const o = nextOrder({ epoch: 0, nodes: [], warm: false }, [node('a', 0), node('b', 0)], 0, 1000);
    assert.deepEqual(names(o), ['a', 'b']);
    assert.equal(o.warm, true);
  });

  test('mass expiry: a cold chain never warms on a fresh node once something was committed', () => {
    const dead: ChainView = { epoch: 7, warm: true, nodes: [node('a', 0), node('b', 0)] };
    // Nothing durable (no checkpoints), 120 committed: a fresh node waits, whatever the wait.
    const fresh = nextOrder(dead, [node('f', 0)], 0, 1000, 30000, 120);
    assert.equal(fresh.warm, false);
    const cold: ChainView = { epoch: 8, ...fresh };
    assert.equal(nextOrder(cold, [node('f', 0), node('g', 0)], 0, 99000, 30000, 120).warm, false, 'not even after coldWaitMs, nor with as many nodes back');
    // The old nodes re-register with their versions: the highest heads, the fresh node last.
    const back = nextOrder(cold, [node('f', 0), node('a2', 118), node('b2', 125)], 0, 2000, 30000, 120);
    assert.deepEqual(names(back), ['b2', 'a2', 'f']);
    assert.equal(back.warm, true);
    // Every process died (checkpoints only, below the committed version): the best checkpoint
    // still heads once the nodes are back, as before.
    assert.equal(nextOrder(cold, [node('x', 100), node('y', 90)], 100, 2000, 30000, 120).warm, true);
    // Nothing ever committed: a fresh cluster is warm at once.
    assert.equal(nextOrder({ epoch: 0, nodes: [], warm: false }, [node('f', 0)], 0, 1000, 30000, 0).warm, true);
  });

  test('mass expiry: a node without trusted state may not head a warm chain below the committed version or a live member', () => {
    assert.equal(mustNotHead(0, 120, [node('f', 0)]), true, 'a fresh node left alone in a warm chain');
    assert.equal(mustNotHead(118, 120, [node('a', 118)]), true, 'below an acknowledged version');
    assert.equal(mustNotHead(120, 120, [node('a', 120), node('b', 125)]), true, 'behind a live member');
    assert.equal(mustNotHead(125, 120, [node('b', 125), node('a', 120), node('f', 0)]), false);
    assert.equal(mustNotHead(0, 0, [node('f', 0)]), false, 'a fresh cluster');
  });
});
