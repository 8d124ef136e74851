import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CONTROL_BYTES, CTL, MAX_THREADS, bitsOfFloat, floatOfBits, guidedUnits, pollFor, runShare, setSampleTiles, type GemmShareExports, type ThreadState } from '../../src/kernels/poolProtocol.js';

/** Kernel exports that record which entry point ran on which range instead of computing. */
function recorder(): { x: GemmShareExports; calls: string[] } {
  const calls: string[] = [];
  const x: GemmShareExports = {
    gemmRange: (_M, _N, _K, _a, _aKM, _b, _bKN, _c, _bias, _work, i0, i1, j0, j1) => void calls.push(`gemm ${i0}-${i1}×${j0}-${j1}`),
    convForward: (b0, b1) => void calls.push(`prepare+run ${b0}-${b1}`),
    convRun: (b0, b1) => void calls.push(`run ${b0}-${b1}`),
    convBackwardFilter: (f0, f1) => void calls.push(`dW ${f0}-${f1}`),
    convBackwardData: (b0, b1) => void calls.push(`dX ${b0}-${b1}`),
    attentionHeads: (t0, t1, ...rest) => void calls.push(`heads ${t0}-${t1} scale ${rest[5]}`),
    attentionGroupsBackward: (t0, t1) => void calls.push(`groups ${t0}-${t1}`),
    panelGemm: (_M, N, _K, _x, wp, out) => void calls.push(`panels ${N} rows at ${wp} → ${out}`),
    q4_0GemmQ16: (_M, rows, _cols, w, _xq, _xs, out) => void calls.push(`q4_0 ${rows} rows at ${w} → ${out}`),
    int8RowGemmQ16: (_M, rows, _cols, w, scales, _xq, _xs, out) => void calls.push(`int8 ${rows} rows at ${w} scales ${scales} → ${out}`),
  };
  return { x, calls };
}

const control = () => new Int32Array(new SharedArrayBuffer(CONTROL_BYTES));

test('setSampleTiles: tiles at multiples of 4 samples covering the batch, the counter reset', () => {
  const ctl = control();
  for (const [n, threads] of [[64, 2], [10, 3], [3, 2], [1000, 8]]) {
    ctl[CTL.nextTile] = 99;
    const tiles = setSampleTiles(ctl, n, threads);
    assert.equal(ctl[CTL.tiles], tiles);
    assert.equal(ctl[CTL.nextTile], 0);
    let next = 0;
    for (let t = 0; t < tiles; t++) {
      const [lo, hi] = [ctl[CTL.ranges + 4 * t], ctl[CTL.ranges + 4 * t + 1]];
      assert.equal(lo, next, `n=${n} tile ${t} starts where the last ended`);
      assert.ok(lo % 4 === 0 && (hi % 4 === 0 || hi === n) && hi >= lo);
      next = hi;
    }
    assert.equal(next, n);
  }
});

test('guidedUnits: tiles shrink as the work left shrinks, end small, cover everything, fit the control words', () => {
  assert.deepEqual(guidedUnits(16, 2), [4, 3, 3, 2, 1, 1, 1, 1]);
  assert.deepEqual(guidedUnits(3, 3), [1, 1, 1]);
  for (const [units, threads] of [[1, 1], [7, 2], [16, 2], [250, 8], [2500, 8], [4000, 2], [4000, 64]]) {
    const sizes = guidedUnits(units, threads);
    const least = Math.max(1, Math.ceil(units / (MAX_THREADS / 2)));
    assert.equal(sizes.reduce((a, b) => a + b, 0), units);
    assert.ok(sizes.length <= MAX_THREADS, `${units} units on ${threads} threads: ${sizes.length} tiles`);
    for (let t = 1; t < sizes.length; t++) assert.ok(sizes[t] <= sizes[t - 1] && sizes[t] >= 1);
    assert.ok(sizes[sizes.length - 1] <= least);
  }
  assert.deepEqual(guidedUnits(0, 2), [0]);
});

test('runShare: a thread prepares the weights on the first tile it takes in a call, whichever run of samples that is', () => {
  const ctl = control();
  const { x, calls } = recorder();
  const state: ThreadState = { preparedCall: -1 };
  ctl[CTL.op] = 1;
  ctl[CTL.convCall] = 7;
  // First run of samples: the other threads took every tile; this one ran nothing and prepared nothing.
  ctl[CTL.nextTile] = setSampleTiles(ctl, 16, 2);
  runShare(x, ctl, 1, 0, 0, state);
  assert.deepEqual(calls, []);
  // Second run: its first tile prepares, the next reuses.
  setSampleTiles(ctl, 16, 2);
  runShare(x, ctl, 1, 0, 0, state);
  assert.deepEqual(calls.splice(0), ['prepare+run 0-4', 'run 4-8', 'run 8-12', 'run 12-16']);
  // A new call prepares again.
  ctl[CTL.convCall] = 8;
  setSampleTiles(ctl, 8, 1);
  runShare(x, ctl, 1, 0, 0, state);
  assert.deepEqual(calls.splice(0), ['prepare+run 0-4', 'run 4-8']);
});

test('runShare: convolution backward runs the thread\'s own filters, then input-gradient tiles (the flipped path prepares once)', () => {
  const ctl = control();
  const { x, calls } = recorder();
  ctl[CTL.op] = 2;
  ctl[CTL.convDX] = 1;
  ctl.set([4, 12], CTL.ranges + 4 * 1 + 2);
  setSampleTiles(ctl, 8, 1);
  runShare(x, ctl, 1, 0, 0, { preparedCall: -1 });
  assert.deepEqual(calls.splice(0), ['dW 4-12', 'dX 0-4', 'dX 4-8']);
  ctl[CTL.convFlip] = 64;
  setSampleTiles(ctl, 12, 3);
  runShare(x, ctl, 1, 0, 0, { preparedCall: -1 });
  assert.deepEqual(calls.splice(0), ['dW 4-12', 'prepare+run 0-4', 'run 4-8', 'run 8-12']);
  ctl[CTL.convDX] = 0;
  setSampleTiles(ctl, 12, 3);
  runShare(x, ctl, 1, 0, 0, { preparedCall: -1 });
  assert.deepEqual(calls.splice(0), ['dW 4-12']);
});

test('runShare: product tiles in the order the counter hands them out', () => {
  const ctl = control();
  const { x, calls } = recorder();
  ctl[CTL.op] = 0;
  ctl.set([0, 8, 0, 16, 0, 8, 16, 20, 0, 0, 0, 0], CTL.ranges);
  ctl[CTL.tiles] = 3;
  ctl[CTL.nextTile] = 1;
  runShare(x, ctl, 0, 0, 0, { preparedCall: -1 });
  assert.deepEqual(calls, ['gemm 0-8×16-20']);
  assert.ok(ctl[CTL.nextTile] >= 3);
});

test('attention ops: every thread takes heads (op 3) or KV groups (op 4) from the shared tiles; the scale crosses as float32 bits', () => {
  for (const op of [3, 4]) {
    const ctl = control();
    ctl[CTL.op] = op;
    ctl.set([70, 16, 4, 2, 1, bitsOfFloat(0.125)], CTL.attention);
    setSampleTiles(ctl, 10, 2, 1);
    const { x, calls } = recorder();
    const state: ThreadState = { preparedCall: -1 };
    runShare(x, ctl, 0, 0, 0, state);
    const ranges = calls.map((c) => c.split(' ')[1].split('-').map(Number));
    assert.deepEqual(ranges.flat()[0], 0);
    assert.equal(ranges[ranges.length - 1][1], 10, 'all 10 tasks taken');
    for (let i = 1; i < ranges.length; i++) assert.equal(ranges[i][0], ranges[i - 1][1]);
    assert.ok(calls.every((c) => c.startsWith(op === 3 ? 'heads' : 'groups')));
    if (op === 3) assert.ok(calls.every((c) => c.endsWith('scale 0.125')));
  }
  assert.equal(floatOfBits(bitsOfFloat(Math.fround(0.1))), Math.fround(0.1));
});

test('pollFor: true as soon as the word differs from what was seen, false once the time is up', () => {
  const ctl = control();
  ctl[CTL.generation] = 5;
  assert.equal(pollFor(ctl, CTL.generation, 4, 1000), true);
  const t0 = performance.now();
  assert.equal(pollFor(ctl, CTL.generation, 5, 2), false);
  assert.ok(performance.now() - t0 >= 2);
});

test('row products (op 5): runs of 16 rows, each run at its rows of the matrix, scales and output', () => {
  const ctl = control();
  ctl[CTL.op] = 5;
  const calls: string[][] = [];
  for (const format of [0, 1, 2]) {
    // 40 rows of 64 columns: matrix at 1000, scales at 9000, out at 5000.
    ctl.set([format, 40, 64, 1000, 9000, 0, 0, 0, 5000, 0], CTL.rowProduct);
    setSampleTiles(ctl, 40, 2, 16);
    const { x, calls: c } = recorder();
    runShare(x, ctl, 0, 0, 0, { preparedCall: -1 });
    calls.push(c);
  }
  assert.deepEqual(calls[0], ['panels 16 rows at 1000 → 5000', 'panels 16 rows at 5096 → 5064', 'panels 8 rows at 9192 → 5128']);
  assert.deepEqual(calls[1], ['q4_0 16 rows at 1000 → 5000', 'q4_0 16 rows at 1576 → 5064', 'q4_0 8 rows at 2152 → 5128']);
  assert.deepEqual(calls[2], ['int8 16 rows at 1000 scales 9000 → 5000', 'int8 16 rows at 2024 scales 9064 → 5064', 'int8 8 rows at 3048 scales 9128 → 5128']);
});
