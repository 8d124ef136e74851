import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SpecError } from '../../src/core/errors.js';
import {
  ADAPTATION_LAYERS,
  ADAPTATION_TASKS,
  AdaptationTracker,
  adaptationLayerNetwork,
  adaptationNetwork,
  makeTaskSwitchStream,
  runAdaptation,
  type TrackedStep,
} from '../../src/train/adaptation.js';
import { TRAINING_MODE_NAMES, TRAINING_MODES, parseTrainingMode, runTrainingMode, type StepOutcome } from '../../src/train/modes.js';

/** Steps of one window: `answered` of `steps` answered, the first `correct` of those right. */
const window = (steps: number, answered: number, correct: number, task: number): TrackedStep[] =>
  Array.from({ length: steps }, (_, i) => ({ answered: i < answered, correct: i < answered ? i < correct : null, task }));

test('tracker: window accuracy, availability, a change on a window boundary, pre/post accuracy and recovery', () => {
  const tracker = new AdaptationTracker({ windowSize: 10, recoveryFraction: 0.9 });
  const steps = [
    ...window(10, 10, 5, 0),
    ...window(10, 10, 8, 0),
    ...window(10, 10, 10, 0),
    ...window(10, 10, 2, 1), // change at step 30
    ...window(10, 8, 6, 1),
    ...window(10, 10, 9, 1),
  ];
  steps.forEach((s) => tracker.record(s));
  const r = tracker.report();
  assert.equal(r.steps, 60);
  assert.equal(r.answered, 58);
  assert.equal(r.correct, 40);
  assert.equal(r.accuracy, 40 / 58);
  assert.equal(r.availability, 58 / 60);
  assert.deepEqual(r.windows.map((w) => w.accuracy), [0.5, 0.8, 1, 0.2, 0.75, 0.9]);
  assert.deepEqual(r.windows.map((w) => w.availability), [1, 1, 1, 1, 0.8, 1]);
  assert.ok(Math.abs(r.meanWindowAccuracy! - (0.5 + 0.8 + 1 + 0.2 + 0.75 + 0.9) / 6) < 1e-12);
  assert.deepEqual(r.taskChanges, [
    { step: 30, from: 0, to: 1, preWindow: 2, postWindow: 3, preAccuracy: 1, postAccuracy: 0.2, recoveryWindows: 2, recoverySteps: 30 },
  ]);
});

test('tracker: a change inside a window compares the neighbouring whole windows; no recovery reads null', () => {
  const tracker = new AdaptationTracker({ windowSize: 10, recoveryFraction: 1 });
  [...window(10, 10, 6, 0), ...window(5, 5, 5, 0), ...window(5, 5, 0, 1), ...window(10, 10, 5, 1), ...window(10, 0, 0, 1), ...window(10, 10, 3, 2)].forEach((s) =>
    tracker.record(s),
  );
  const r = tracker.report();
  assert.deepEqual(r.windows.map((w) => w.tasks), [[0], [0, 1], [1], [1], [2]]);
  assert.equal(r.windows[3].accuracy, null, 'a window without answers has no accuracy');
  const [first, second] = r.taskChanges;
  assert.deepEqual(
    { pre: first.preWindow, post: first.postWindow, preAcc: first.preAccuracy, postAcc: first.postAccuracy, rec: first.recoveryWindows },
    { pre: 0, post: 2, preAcc: 0.6, postAcc: 0.5, rec: null },
  );
  // The second change is at step 40, a window boundary; the stream ends before accuracy recovers.
  assert.deepEqual({ step: second.step, pre: second.preWindow, post: second.postWindow, preAcc: second.preAccuracy, rec: second.recoveryWindows }, {
    step: 40, pre: 3, post: 4, preAcc: null, rec: null,
  });
  assert.throws(() => new AdaptationTracker({ windowSize: 0 }), SpecError);
  assert.throws(() => new AdaptationTracker({ windowSize: 5, recoveryFraction: 2 }), SpecError);
});

test('task-switch stream: deterministic, phases at a third and two thirds, chase and avoid labels', () => {
  const a = makeTaskSwitchStream({ steps: 300, seed: 4 });
  const b = makeTaskSwitchStream({ steps: 300, seed: 4 });
  assert.deepEqual(a, b);
  assert.deepEqual([a[0].task, a[99].task, a[100].task, a[199].task, a[200].task], [0, 0, 1, 1, 0]);
  for (const s of a) {
    const [, , , , dx, dy, , task] = s.input as Float32Array;
    const toward = Math.abs(dx) > Math.abs(dy) ? (dx > 0 ? 3 : 2) : dy > 0 ? 0 : 1;
    assert.equal(s.label, task === 0 ? toward : [1, 0, 3, 2][toward]);
    assert.equal(s.target[s.label!], 1);
  }
  assert.equal((makeTaskSwitchStream({ steps: 5, inputSize: 20 })[0].input as Float32Array).length, 20);
});

test('modes: availability follows the blocking model; step modes answer `latency` ticks late and never block', () => {
  const stream = makeTaskSwitchStream({ steps: 300, seed: 2 });
  for (const mode of ['NormalBP', 'Tween', 'TweenChain'] as const) {
    const outcomes: StepOutcome[] = [];
    const s = runTrainingMode(mode, adaptationNetwork(), stream, { trainInterval: 50, stepsPerTrainedSample: 0.5, onStep: (o) => outcomes.push(o) });
    // 50 answered steps, then 25 blocked, four times over.
    assert.equal(s.answered, 200, mode);
    assert.equal(s.blockedSteps, 100, mode);
    assert.equal(s.trainedSamples, 200, mode);
    assert.deepEqual(outcomes.slice(48, 52).map((o) => o.answered), [true, true, false, false], mode);
    assert.ok(outcomes.every((o) => !o.answered || o.answerFor === o.step));
  }
  for (const mode of ['StepBP', 'StepTweenChain'] as const) {
    const outcomes: StepOutcome[] = [];
    const s = runTrainingMode(mode, adaptationNetwork({ hidden: [16, 16, 16] }), stream, { onStep: (o) => outcomes.push(o) });
    assert.equal(s.latency, 3, mode);
    assert.equal(s.answered, 297, mode);
    assert.equal(s.blockedSteps, 0, mode);
    assert.ok(outcomes.every((o) => !o.answered || o.answerFor === o.step - 3), mode);
  }
});

test('every mode updates the network and is deterministic', () => {
  const stream = makeTaskSwitchStream({ steps: 120, seed: 3 });
  for (const mode of TRAINING_MODE_NAMES) {
    const net = adaptationNetwork({ seed: 2 });
    const before = net.layers().map((l) => [...l.weights!.master]);
    const first = runAdaptation(net, mode, stream, { windowSize: 20, trainInterval: 30, learningRate: 0.05 });
    assert.ok(net.layers().some((l, k) => l.weights!.master.some((v, i) => v !== before[k][i])), `${mode} changed no weight`);
    const again = runAdaptation(adaptationNetwork({ seed: 2 }), mode, stream, { windowSize: 20, trainInterval: 30, learningRate: 0.05 });
    assert.deepEqual(again, first, mode);
    assert.equal(first.report.taskChanges.length, 2);
  }
  assert.equal(parseTrainingMode('steptweenchain'), 'StepTweenChain');
  assert.throws(() => parseTrainingMode('adam'), SpecError);
  assert.equal(Object.keys(TRAINING_MODES).length, 5);
});

test('online step modes learn the chase/avoid stream well above an untrained network (29%)', () => {
  const stream = makeTaskSwitchStream({ steps: 3000, seed: 1 });
  for (const mode of ['StepBP', 'StepTweenChain'] as const) {
    const { report } = runAdaptation(adaptationNetwork({ seed: 1 }), mode, stream, { windowSize: 200, learningRate: 0.1 });
    assert.ok(report.accuracy! > 0.45, `${mode}: ${report.accuracy}`);
    assert.ok(report.availability > 0.99);
    assert.equal(report.windows.length, 15);
  }
});

test('study networks: every mode trains the first layer of Dense, Conv2D, RNN, LSTM and attention networks', () => {
  const stream = makeTaskSwitchStream({ steps: 60, seed: 5, inputSize: 16 });
  for (const layer of ADAPTATION_LAYERS) {
    for (const mode of TRAINING_MODE_NAMES) {
      const net = adaptationLayerNetwork(layer, { seed: 2 });
      const first = net.layers()[0];
      const before = [...first.weights!.master];
      const { report } = runAdaptation(net, mode, stream, { windowSize: 20, trainInterval: 10, learningRate: 0.1 });
      assert.ok(first.weights!.master.some((v, i) => v !== before[i]), `${layer} × ${mode}: the ${first.kind.name} layer did not learn`);
      assert.ok(report.answered > 0, `${layer} × ${mode}`);
    }
  }
  assert.throws(() => adaptationLayerNetwork('GRU' as never), /layer: expected one of Dense, Conv2D, RNN, LSTM, Attention/);
});

test('built-in tasks: phases and switches as described', () => {
  const phases = (name: string) => {
    const s = ADAPTATION_TASKS[name].make({ steps: 400, seed: 1, inputSize: 8 });
    assert.equal(s.length, 400);
    return s.flatMap((x, i) => (i === 0 || x.task !== s[i - 1].task ? [`${i}:${x.task}`] : []));
  };
  assert.deepEqual(phases('chase-avoid'), ['0:0', '133:1', '266:0']);
  assert.deepEqual(phases('chase-avoid-hidden'), ['0:0', '133:1', '266:0']);
  assert.deepEqual(phases('alternate'), ['0:0', '100:1', '200:0', '300:1']);
  assert.deepEqual(phases('chase'), ['0:0']);
  const hidden = ADAPTATION_TASKS['chase-avoid-hidden'].make({ steps: 400, seed: 1, inputSize: 8 });
  assert.ok(hidden.every((x) => (x.input as Float32Array)[7] === 0), 'the task id is hidden');
  assert.equal((ADAPTATION_TASKS['chase-avoid'].make({ steps: 400, seed: 1, inputSize: 8 })[200].input as Float32Array)[7], 1);
});
