import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Tensor } from '../../src/core/tensor.js';
import { AggregatingObserver, computeLayerStats, ConsoleObserver, HttpObserver, observedBackward, observedForward, type LayerEvent } from '../../src/analysis/observers.js';
import { forwardNetwork } from '../../src/engine/run.js';
import { SpecError } from '../../src/core/errors.js';
import { mlp, randomArray } from '../helpers.js';

const net = mlp([{ in: 3, out: 4, activation: 'ReLU' }, { in: 4, out: 2 }], 2);
const input = new Tensor(randomArray(6, 1), [2, 3]);

test('observers see every layer forward and backward; the observed pass gives the same output', () => {
  const events: LayerEvent[] = [];
  const lines: string[] = [];
  const recorder = { onForward: (e: LayerEvent) => events.push(e), onBackward: (e: LayerEvent) => events.push(e) };
  const result = observedForward(net, input, [recorder, new ConsoleObserver((l) => lines.push(l))], { keepTrace: true });
  assert.deepEqual(Array.from(result.output.data), Array.from(forwardNetwork(net, input).output.data));
  observedBackward(net, result.trace!, Tensor.from([2, 2], [1, 1, 1, 1]), [recorder, new ConsoleObserver((l) => lines.push(l))]);
  assert.deepEqual(events.map((e) => `${e.type} ${e.x} ${e.layerType}`), ['forward 0 Dense', 'forward 1 Dense', 'backward 1 Dense', 'backward 0 Dense']);
  assert.deepEqual(events[1].stats, computeLayerStats(result.output.data));
  assert.match(lines[0], /^\[FWD\] \(0,0,0,0\) Dense: avg=/);
  assert.match(lines[2], /^\[BWD\] \(0,0,1,0\) Dense: grad_avg=/);
});

test('layer stats', () => {
  const s = computeLayerStats([0, 1, -1, 2]);
  assert.deepEqual(s, { avg: 0.5, std: Math.sqrt(1.5 - 0.25), max: 2, min: -1, active: 3, total: 4 });
});

test('the HTTP observer POSTs events as JSON to a local server', async () => {
  const received: LayerEvent[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      assert.equal(req.method, 'POST');
      assert.equal(req.headers['content-type'], 'application/json');
      received.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const http = new HttpObserver(`http://127.0.0.1:${port}/events`);
    const { trace } = observedForward(net, input, [http], { keepTrace: true }, 'model-7');
    observedBackward(net, trace!, Tensor.from([2, 2], [1, 0, 0, 1]), [http], 'model-7');
    await http.flush();
    assert.equal(http.sent, 4);
    assert.equal(http.failed, 0);
    assert.deepEqual(received.map((e) => e.type).sort(), ['backward', 'backward', 'forward', 'forward']);
    assert.ok(received.every((e) => e.modelId === 'model-7' && e.stats.total > 0));
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
  // A dead endpoint is counted, never thrown into the pass.
  const dead = new HttpObserver('http://127.0.0.1:9/none', { timeoutMs: 500 });
  observedForward(net, input, [dead]);
  await dead.flush();
  assert.equal(dead.failed, 2);
  assert.throws(() => new HttpObserver('ftp://x'), SpecError);
});

test('the aggregating observer summarizes windows of events', () => {
  const agg = new AggregatingObserver(2);
  for (let i = 0; i < 5; i++) observedForward(net, input, [agg]);
  assert.equal(agg.history.length, 5);
  assert.equal(agg.pendingEvents, 0);
  const a = new AggregatingObserver(3);
  observedForward(net, input, [a]);
  assert.equal(a.history.length, 0);
  assert.equal(a.pendingEvents, 2);
  assert.throws(() => new AggregatingObserver(0), SpecError);
});
