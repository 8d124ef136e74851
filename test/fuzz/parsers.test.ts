/**
 * The seeded CI slice of `npm run fuzz`: FUZZ_CI_RUNS (default 300) inputs per parser, valid documents
 * and mutations of them, each of which must parse or fail with a LoomError, in time and within memory.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { runOne, runTarget, seedFor } from '../../fuzz/harness.js';
import { loadTargets, removeScratch } from '../../fuzz/targets.js';

const RUNS = Number(process.env.FUZZ_CI_RUNS ?? 300);
const SEED = 20240611;
const { targets, pending } = await loadTargets();
after(removeScratch);

for (const target of targets) {
  test(`fuzz ${target.name} (${target.parser}): ${RUNS} seeded inputs`, { timeout: 60_000 }, () => {
    const report = runTarget(target, { runs: RUNS, seed: seedFor(SEED, target.name) });
    assert.equal(report.failure, undefined, report.failure);
    assert.equal(report.runs, RUNS);
    // The generators must reach past the first validation step, or the slice tests nothing.
    assert.ok((report.outcomes.ok ?? 0) > RUNS / 20, `${target.name}: only ${report.outcomes.ok ?? 0} of ${RUNS} inputs parsed: ${JSON.stringify(report.outcomes)}`);
  });
}

for (const p of pending) {
  test(`fuzz ${p.name} (${p.parser})`, { skip: `pending: ${p.pending}; the target joins automatically once the module is built` }, () => {});
}

test('unmutated documents from every generator parse', () => {
  for (const target of targets) {
    const valid = fc.sample(target.input, { numRuns: 200, seed: seedFor(SEED + 1, target.name) }).filter((i) => target.unmutated(i));
    assert.ok(valid.length > 10, `${target.name}: too few unmutated samples (${valid.length})`);
    for (const input of valid) {
      const { label } = runOne(target, input);
      assert.equal(label, 'ok', `${target.name}: a valid document failed to parse: ${target.preview(input)}`);
    }
  }
});
