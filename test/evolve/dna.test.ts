import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DType } from '../../src/core/dtype.js';
import { buildNetwork } from '../../src/grid/spec.js';
import { cloneNetwork } from '../../src/evolve/clone.js';
import { compareDNA, compareNetworks, extractDNA, layerSignature, normalize } from '../../src/evolve/dna.js';

function threeLayerNet(seed = 3) {
  return buildNetwork(
    {
      depth: 1, rows: 1, cols: 1, layers_per_cell: 5,
      layers: [
        { l: 0, type: 'Dense', activation: 'Tanh', input_height: 6, output_height: 6 },
        { l: 1, type: 'Dense', activation: 'Tanh', input_height: 6, output_height: 6 },
        { l: 2, type: 'Dense', activation: 'Tanh', input_height: 6, output_height: 6 },
        { l: 3, type: 'Parallel', combine_mode: 'add', parallel_branches: [
          { type: 'Dense', input_height: 6, output_height: 6 },
          { type: 'Sequential', sequential_layers: [{ type: 'RMSNorm', input_height: 6 }, { type: 'Softmax' }] },
        ] },
        { l: 4, type: 'Softmax' },
      ],
    },
    { seed },
  );
}

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

test('DNA of a network against itself is 1.0 everywhere with no logic shifts', () => {
  const net = threeLayerNet();
  const r = compareNetworks(net, net);
  assert.equal(r.overallOverlap, 1);
  assert.deepEqual(Object.keys(r.layerOverlaps), ['0,0,0,0', '0,0,0,1', '0,0,0,2', '0,0,0,3', '0,0,0,4']);
  for (const v of Object.values(r.layerOverlaps)) assert.ok(Math.abs(v - 1) < 1e-6);
  assert.deepEqual(r.logicShifts, []);
});

test('signatures: unit length, containers recurse into every branch, weightless layers are neutral [1]', () => {
  const net = threeLayerNet();
  const dna = extractDNA(net);
  for (const s of dna.slice(0, 4)) assert.ok(Math.abs(norm(s.weights) - 1) < 1e-5, `${s.type} signature is unit length`);
  assert.equal(dna[0].weights.length, 36);
  assert.equal(dna[3].weights.length, 36 + 6, 'Parallel: Dense branch + RMSNorm inside the Sequential branch');
  assert.deepEqual(Array.from(dna[4].weights), [1]);
  assert.equal(dna[3].type, 'Parallel');
});

test('signatures are precision-simulated: an int4 layer signs with what its forward pass sees', () => {
  const net = threeLayerNet();
  const layer = net.cells[0]!;
  const fp32 = layerSignature(layer);
  layer.dtype = DType.Int4;
  const int4 = layerSignature(layer);
  assert.deepEqual(Array.from(int4), Array.from(normalize(layer.weights!.getActive(DType.Int4))));
  assert.notDeepEqual(Array.from(int4), Array.from(fp32));
  // The original treats a dtype mismatch as no common ground.
  const quantized = cloneNetwork(threeLayerNet());
  quantized.morph(DType.Int8);
  assert.equal(compareNetworks(threeLayerNet(), quantized).layerOverlaps['0,0,0,0'], 0);
});

test('DNA against a permuted copy detects the logic shifts', () => {
  const net = threeLayerNet();
  const permuted = cloneNetwork(net);
  // Move layer 0's weights to layer 2 and back: same patterns, different coordinates.
  const w0 = permuted.cells[0]!.weights!;
  permuted.cells[0]!.weights = permuted.cells[2]!.weights;
  permuted.cells[2]!.weights = w0;
  const r = compareDNA(extractDNA(net), extractDNA(permuted));
  assert.ok(r.layerOverlaps['0,0,0,0'] < 0.5, `moved layer overlaps ${r.layerOverlaps['0,0,0,0']} in place`);
  assert.ok(Math.abs(r.layerOverlaps['0,0,0,1'] - 1) < 1e-6);
  assert.ok(r.overallOverlap < 0.8);
  const shifts = r.logicShifts.map((s) => `${s.from}->${s.to}`).sort();
  assert.deepEqual(shifts, ['0,0,0,0->0,0,0,2', '0,0,0,2->0,0,0,0']);
  for (const s of r.logicShifts) assert.ok(s.overlap > 0.999);
});

test('compareDNA ignores coordinates present in only one network', () => {
  const a = threeLayerNet();
  const dnaA = extractDNA(a);
  const r = compareDNA(dnaA, dnaA.slice(0, 2));
  assert.deepEqual(Object.keys(r.layerOverlaps), ['0,0,0,0', '0,0,0,1']);
  assert.equal(r.overallOverlap, 1);
});
