// The ZooKeeper adapter's guard against the library's error table (zookeeper.ts): a reply with
// a code the library does not know must fail its request, not throw from the socket handler.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import zookeeper from 'node-zookeeper-client';
import './zookeeper.ts';

type ZkException = InstanceType<typeof zookeeper.Exception>;
// `create` is exported by the library but missing from its types.
const create = (code: number, path?: string): ZkException => (zookeeper.Exception as unknown as { create(code: number, path?: string): ZkException }).create(code, path);

test('an error code the library does not know (3.8 UNKNOWN_SESSION, -12) becomes an Exception, not a throw', () => {
  // The connection manager answers a request with `Exception.create(header.err)`; before the
  // guard this threw "Unknown code: -12" out of the socket's data handler.
  const e = create(-12);
  assert.ok(e instanceof zookeeper.Exception);
  assert.ok(e instanceof Error);
  assert.equal(e.getCode(), -12);
  assert.equal(e.getName(), 'ZOOKEEPER_ERROR_-12');
  assert.match(e.message, /\[-12\]/);
  const withPath = create(-127, '/tabswarm/x');
  assert.equal(withPath.getPath(), '/tabswarm/x');
  // Known codes are untouched.
  const known = create(zookeeper.Exception.NO_NODE);
  assert.equal(known.getName(), 'NO_NODE');
  assert.equal(known.getCode(), -101);
});
