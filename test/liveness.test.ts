/**
 * Liveness and backpressure with real sockets: a half-open socket (one that never answers a
 * ping) loses its session; a socket that does no work loses it with PS_NO_WORK; a client that
 * does not read its replies is cut off with PS_SLOW_READER; a body that trickles in is cut off
 * by the request timeout. Through all of it a good worker keeps its session and its record.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ERRORS } from '../shared/errors.ts';
import { MsgType, decodeFrame } from '../shared/protocol.ts';
import { until } from './helpers.ts';
import { RawWorkerSocket, mustJoin, pullHttp, pushHttp, rejectedCount, startTestPs, type TestPs } from './abuse-tools.ts';

describe('liveness: pings and work', () => {
  let ps: TestPs;
  before(async () => {
    ps = await startTestPs({ wsPingMs: 200, workIdleMs: 1500 });
  });
  after(() => ps?.close());

  test('a socket that answers no ping loses its session within two ping periods; a working one stays', async () => {
    const good = await mustJoin(ps.url);
    const goodSocket = new RawWorkerSocket(ps.url, good);
    await goodSocket.opened();
    await goodSocket.next(); // hello
    const silent = await mustJoin(ps.url);
    const halfOpen = new RawWorkerSocket(ps.url, silent, { autoPong: false });
    await halfOpen.opened();
    const started = Date.now();
    // The good worker pulls every 100 ms (work, and its pongs come from ws itself).
    let working = true;
    const loop = (async () => {
      while (working) {
        goodSocket.pull(good);
        let reply = await goodSocket.next();
        while (typeof reply === 'string') reply = await goodSocket.next(); // an assign message
        assert.equal(decodeFrame(new Uint8Array(reply as Buffer), { layoutHash: good.layoutHash, layoutSize: good.layoutSize }).type, MsgType.WEIGHTS);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await until(() => ps.built.ps.sessions.get(silent.workerId) === undefined, 'the half-open session to expire', 5000, 20);
    const took = Date.now() - started;
    assert.ok(took <= 2 * 200 + 500, `expired after ${took} ms (ping period 200 ms)`);
    await halfOpen.closed;
    assert.ok(ps.built.ps.sessions.get(good.workerId), 'the working worker keeps its session');
    working = false;
    await loop;
    goodSocket.close();
  });

  test('a socket that answers pings but does no work is closed with PS_NO_WORK after --work-idle-ms', async () => {
    const idle = await mustJoin(ps.url);
    const socket = new RawWorkerSocket(ps.url, idle);
    await socket.opened();
    const started = Date.now();
    const { code, reason } = await socket.closed;
    assert.equal(code, ERRORS.PS_NO_WORK.wsClose);
    assert.match(reason, /^PS_NO_WORK/);
    assert.ok(Date.now() - started >= 1500 - 50, 'not before the limit');
    assert.equal(ps.built.ps.sessions.get(idle.workerId), undefined, 'its session ended and its shards moved on');
  });
});

describe('backpressure: queues, slow bodies', () => {
  let ps: TestPs;
  before(async () => {
    // The queue limit has a floor of three full exchanges (server/plugins/ws.ts); 64 KiB asks for the floor.
    ps = await startTestPs({ maxQueuedBytes: 65536, requestTimeoutMs: 1000, wsPingMs: 0 });
  });
  after(() => ps?.close());

  test('a client that does not read its replies is disconnected with PS_SLOW_READER; a good worker is not', async () => {
    const good = await mustJoin(ps.url);
    const v = (await pullHttp(ps.url, good)).version;
    const first = await pushHttp(ps.url, good, 1, v);
    assert.equal(first.status, 200);

    const hog = await mustJoin(ps.url);
    const socket = new RawWorkerSocket(ps.url, hog);
    await socket.opened();
    await socket.next(); // hello
    socket.ws.pause(); // stop reading: replies pile up in the kernel, then in the PS
    const before = await rejectedCount(ps.built, 'PS_SLOW_READER');
    for (let i = 0; i < 4000 && (await rejectedCount(ps.built, 'PS_SLOW_READER')) === before; i++) {
      socket.pull(hog);
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 10));
    }
    await until(async () => (await rejectedCount(ps.built, 'PS_SLOW_READER')) > before, 'the PS to cut off the client that does not read', 10000, 50);
    socket.ws.resume();
    await socket.closed;
    const { record, version } = await pullHttp(ps.url, good);
    assert.deepEqual(record.find((r) => r.workerId === good.workerId), { workerId: good.workerId, seq: 1, version: first.version });
    assert.equal((await pushHttp(ps.url, good, 2, version)).status, 200, 'the good worker still trains');
  });

  test('a body that trickles in is cut off by --request-timeout-ms; the PS answers others meanwhile', async () => {
    const port = Number(new URL(ps.url).port);
    const started = Date.now();
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        s.write('POST /api/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{');
        const drip = setInterval(() => s.write(' '), 100);
        s.on('close', () => clearInterval(drip));
      });
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', reject);
      setTimeout(() => reject(new Error('the slow body was never cut off')), 8000).unref();
    });
    const took = Date.now() - started;
    assert.match(answer, /^HTTP\/1\.1 408/, `answered ${JSON.stringify(answer.slice(0, 40))}`);
    assert.equal(ERRORS.PS_REQUEST_TIMEOUT.http, 408);
    assert.ok(took >= 900 && took < 4000, `cut off after ${took} ms`);
    const res = await fetch(new URL('/api/status', ps.url), { signal: AbortSignal.timeout(2000) });
    assert.equal(res.status, 200);
  });
});
