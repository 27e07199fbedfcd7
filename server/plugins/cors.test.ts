/** The record of member origins behind the chain's CORS rule: bounded, oldest forgotten first. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemberOrigins } from './cors.ts';

test('member origins: every node seen is kept, URLs reduce to origins, junk is skipped', () => {
  const m = new MemberOrigins();
  m.note(['http://127.0.0.1:9001/', 'http://127.0.0.1:9002/']);
  m.note(['http://127.0.0.1:9002/']); // a later view without 9001: it is still allowed
  assert.ok(m.has('http://127.0.0.1:9001') && m.has('http://127.0.0.1:9002'));
  m.note(['https://node.example:8443/some/path?x=1', 'not a url', 'data:text/plain,x']);
  assert.ok(m.has('https://node.example:8443'));
  assert.equal(m.size, 3, 'the unparseable URL and the opaque (null) origin were not recorded');
  assert.ok(!m.has('null'));
});

test('member origins: bounded; the least recently seen goes first', () => {
  const m = new MemberOrigins(3);
  m.note(['http://a.example/', 'http://b.example/', 'http://c.example/']);
  m.note(['http://a.example/']); // seen again: now the most recent
  m.note(['http://d.example/']);
  assert.equal(m.size, 3);
  assert.ok(!m.has('http://b.example'), 'b was the least recently seen');
  assert.ok(m.has('http://a.example') && m.has('http://c.example') && m.has('http://d.example'));
  for (let i = 0; i < 1000; i++) m.note([`http://n${i}.example/`]);
  assert.equal(m.size, 3);
});
