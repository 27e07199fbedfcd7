import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
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
});
