import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../../src/core/rng.js';
import { Tensor } from '../../src/core/tensor.js';
import { hierarchicalGroup, kmeansCluster, layerActivations, silhouetteScore } from '../../src/analysis/clustering.js';
import { correlationMatrix, pearson, ranks, spearman } from '../../src/analysis/correlation.js';
import { mlp } from '../helpers.js';

function blobs(): number[][] {
  const rng = new Rng(4);
  const centers = [[0, 0], [5, 5], [0, 5]];
  const points: number[][] = [];
  for (let i = 0; i < 60; i++) {
    const c = centers[i % 3];
    points.push([c[0] + 0.3 * rng.normal(), c[1] + 0.3 * rng.normal()]);
  }
  return points;
}

test('k-means finds well separated blobs (silhouette near 1), deterministically for a seed', () => {
  const data = blobs();
  const r = kmeansCluster(data, 3, { seed: 2 });
  for (let i = 3; i < data.length; i++) assert.equal(r.assignments[i], r.assignments[i % 3], `point ${i}`);
  assert.equal(new Set(r.assignments).size, 3);
  const s = silhouetteScore(data, r.assignments);
  assert.ok(s > 0.85, `silhouette ${s}`);
  assert.deepEqual(kmeansCluster(data, 3, { seed: 2 }), r);
  // A bad clustering (round robin across blobs) scores far lower.
  assert.ok(silhouetteScore(data, data.map((_, i) => Math.floor(i / 20))) < 0.1);
});

test('silhouette matches a hand computation', () => {
  // Clusters {0, 1} and {4}: a(0)=1, b(0)=4 -> 0.75; a(1)=1, b(1)=3 -> 2/3; singleton -> 0.
  const s = silhouetteScore([[0], [1], [4]], [0, 0, 1]);
  assert.ok(Math.abs(s - (0.75 + 2 / 3 + 0) / 3) < 1e-12);
});

test('hierarchical grouping merges points closer than the threshold (single linkage)', () => {
  const groups = hierarchicalGroup([[0], [0.5], [1], [10], [10.4], [30]], 0.6);
  assert.deepEqual(groups, [0, 0, 0, 1, 1, 2]);
  assert.deepEqual(hierarchicalGroup([[0], [0.5]], 0.1), [0, 1]);
});

test('clustering network activations: rows of a chosen layer', () => {
  const net = mlp([{ in: 2, out: 3, activation: 'ReLU' }, { in: 3, out: 2 }], 3);
  const input = Tensor.from([60, 2], blobs().flat());
  const hidden = layerActivations(net, input, { z: 0, y: 0, x: 0, l: 0 });
  assert.equal(hidden.length, 60);
  assert.equal(hidden[0].length, 3);
  assert.equal(layerActivations(net, input)[0].length, 2);
  const r = kmeansCluster(hidden, 3, { seed: 1 });
  assert.equal(r.assignments.length, 60);
  assert.throws(() => layerActivations(net, input, { z: 0, y: 0, x: 5, l: 0 }), /no enabled layer at \(0,0,5,0\)/);
});

test('Pearson and Spearman agree with known values', () => {
  assert.ok(Math.abs(pearson([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]) - 1) < 1e-12);
  assert.ok(Math.abs(pearson([1, 2, 3], [3, 2, 1]) + 1) < 1e-12);
  // scipy.stats.pearsonr([1,2,3,4,5],[2,1,4,3,5]) = 0.8; spearmanr of a monotone cubic = 1.
  assert.ok(Math.abs(pearson([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) - 0.8) < 1e-12);
  assert.ok(Math.abs(spearman([1, 2, 3, 4, 5], [1, 8, 27, 64, 125]) - 1) < 1e-12);
  assert.deepEqual(Array.from(ranks([10, 20, 20, 30])), [1, 2.5, 2.5, 4]);
  // scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138 (ties averaged).
  assert.ok(Math.abs(spearman([1, 2, 2, 3], [1, 3, 2, 4]) - 0.9486832980505138) < 1e-12);
  assert.equal(pearson([1, 1, 1], [1, 2, 3]), 0);
  const m = correlationMatrix([[1, 2], [2, 4], [3, 7]]);
  assert.equal(m[0][0], 1);
  assert.ok(m[0][1] > 0.98);
});
