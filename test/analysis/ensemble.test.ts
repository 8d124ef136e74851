import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findComplementaryPairs, formatEnsembleReport, majorityVote, performanceSimilarity } from '../../src/analysis/ensemble.js';
import { ShapeError } from '../../src/core/errors.js';

const models = [
  { modelId: 'left', mask: [true, true, false, false] },
  { modelId: 'right', mask: [false, false, true, true] },
  { modelId: 'mostly', mask: [true, true, true, false] },
];

test('complementary pairs: highest coverage first, then least overlap', () => {
  const pairs = findComplementaryPairs(models, 0.9);
  assert.deepEqual(pairs.map((p) => `${p.modelA}+${p.modelB}`), ['left+right', 'right+mostly']);
  assert.equal(pairs[0].coverage, 1);
  assert.equal(pairs[0].overlap, 0);
  assert.equal(pairs[1].overlap, 0.25);
  assert.equal(findComplementaryPairs(models).length, 3);
  assert.match(formatEnsembleReport(pairs), /left \+ right\s+100\.0%\s+0\.0%/);
});

test('performance similarity is the cosine of the correctness masks', () => {
  assert.equal(performanceSimilarity(models[0], models[1]), 0);
  assert.ok(Math.abs(performanceSimilarity(models[0], models[2]) - 2 / Math.sqrt(2 * 3)) < 1e-12);
});

test('majority vote, with ties going to the smallest class', () => {
  assert.deepEqual(majorityVote([[0, 1, 2, 3], [0, 2, 2, 1], [1, 2, 0, 2]]), [0, 2, 2, 1]);
  assert.deepEqual(majorityVote([]), []);
  assert.throws(() => majorityVote([[1], [1, 2]]), ShapeError);
});
