import { cpus } from 'node:os';
import { forwardNetwork } from '../src/engine/run.js';
import { ADAPTATION_LAYERS, adaptationLayerNetwork, makeTaskSwitchStream, runAdaptation, type AdaptationLayer } from '../src/train/adaptation.js';
import { TRAINING_MODE_NAMES, sampleInput, type TrainingModeName } from '../src/train/modes.js';

/**
 * `npm run bench -- adaptation`: the original's "Layer × Training Mode" study. Each layer family's
 * network (the layer under test → Dense 32 → Dense 4) meets one seeded chase → avoid → chase stream
 * in every training mode, starting from the same weights. Prints a table to stderr and JSON to stdout.
 * Env: ADAPT_STEPS (default 10000), ADAPT_WINDOW (default 100), ADAPT_SEED (default 1), ADAPT_LR (default 0.1),
 * ADAPT_LAYERS (comma list, default all).
 */
const steps = Number(process.env.ADAPT_STEPS ?? 10000);
const windowSize = Number(process.env.ADAPT_WINDOW ?? 100);
const seed = Number(process.env.ADAPT_SEED ?? 1);
const learningRate = Number(process.env.ADAPT_LR ?? 0.1);
const layers = (process.env.ADAPT_LAYERS?.split(',') ?? ADAPTATION_LAYERS) as AdaptationLayer[];

const stream = makeTaskSwitchStream({ steps, seed, inputSize: 16 });
const switches = stream.flatMap((s, i) => (i > 0 && s.task !== stream[i - 1].task ? [i] : []));

interface Cell {
  layer: AdaptationLayer;
  mode: TrainingModeName;
  accuracy: number | null;
  availability: number;
  /** Share of all stream steps answered correctly: accuracy × availability. */
  effective: number;
  meanWindowAccuracy: number | null;
  trainedSamples: number;
  blockedSteps: number;
  latency: number;
  /** Longest wall-clock pause between two consecutive stream steps (the time one step blocks), ms. */
  maxStallMs: number;
  /** Median wall-clock time of one stream step, ms. */
  medianStepMs: number;
  changes: { step: number; from: unknown; to: unknown; pre: number | null; post: number | null; recoveryWindows: number | null; recoverySteps: number | null }[];
  ms: number;
}

function untrainedAccuracy(layer: AdaptationLayer): number {
  const net = adaptationLayerNetwork(layer, { seed });
  let correct = 0;
  for (const s of stream) {
    const out = forwardNetwork(net, sampleInput(s)).output.data;
    let best = 0;
    for (let i = 1; i < out.length; i++) if (out[i] > out[best]) best = i;
    if (best === s.label) correct++;
  }
  return correct / stream.length;
}

const cells: Cell[] = [];
const untrained: Record<string, number> = {};
const t0 = performance.now();
for (const layer of layers) {
  untrained[layer] = untrainedAccuracy(layer);
  for (const mode of TRAINING_MODE_NAMES) {
    const net = adaptationLayerNetwork(layer, { seed });
    const start = performance.now();
    let last = start;
    const stepMs = new Float64Array(stream.length);
    let k = 0;
    const onStep = () => {
      const now = performance.now();
      stepMs[k++] = now - last;
      last = now;
    };
    const { summary, report } = runAdaptation(net, mode, stream, { windowSize, learningRate, onStep });
    cells.push({
      layer,
      mode,
      accuracy: report.accuracy,
      availability: report.availability,
      effective: report.steps > 0 ? report.correct / report.steps : 0,
      meanWindowAccuracy: report.meanWindowAccuracy,
      trainedSamples: summary.trainedSamples,
      blockedSteps: summary.blockedSteps,
      latency: summary.latency,
      maxStallMs: Math.max(...stepMs.subarray(0, k)),
      medianStepMs: stepMs.subarray(0, k).sort()[k >> 1],
      changes: report.taskChanges.map((c) => ({
        step: c.step, from: c.from, to: c.to, pre: c.preAccuracy, post: c.postAccuracy, recoveryWindows: c.recoveryWindows, recoverySteps: c.recoverySteps,
      })),
      ms: performance.now() - start,
    });
  }
}
const totalSeconds = (performance.now() - t0) / 1000;

const pct = (v: number | null): string => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);
const recovery = (c: Cell): string => c.changes.map((ch) => (ch.recoverySteps === null ? 'never' : String(ch.recoverySteps))).join(' / ');
const rows = [['layer', 'mode', 'accuracy', 'available', 'effective', 'vs NormalBP', 'post-switch acc', 'recovery steps', 'max stall ms', 'total ms']];
for (const c of cells) {
  const base = cells.find((b) => b.layer === c.layer && b.mode === 'NormalBP')!;
  const delta = c.effective - base.effective;
  rows.push([
    c.layer,
    c.mode,
    pct(c.accuracy),
    pct(c.availability),
    pct(c.effective),
    c.mode === 'NormalBP' ? 'baseline' : `${delta >= 0 ? '+' : ''}${(100 * delta).toFixed(1)} pt`,
    c.changes.map((ch) => pct(ch.post)).join(' / '),
    recovery(c),
    c.maxStallMs.toFixed(1),
    c.ms.toFixed(0),
  ]);
}
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
const lines = rows.map((r) => r.map((v, i) => v.padEnd(widths[i])).join('  '));
lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
process.stderr.write(
  `Layer × Training Mode: ${steps} steps (chase → avoid → chase, switches at ${switches.join(' and ')}), ` +
    `window ${windowSize}, lr ${learningRate}, seed ${seed}\n` +
    `untrained accuracy: ${layers.map((l) => `${l} ${pct(untrained[l])}`).join(', ')}\n` +
    lines.join('\n') +
    `\n${totalSeconds.toFixed(1)} s in all\n`,
);

const best: Record<string, { mode: TrainingModeName; effective: number }> = {};
for (const c of cells) if (!best[c.layer] || c.effective > best[c.layer].effective) best[c.layer] = { mode: c.mode, effective: c.effective };
process.stdout.write(
  JSON.stringify(
    {
      benchmark: 'adaptation',
      machine: { node: process.version, platform: `${process.platform}-${process.arch}`, cpus: cpus().length },
      stream: { kind: 'chase/avoid task switch', steps, seed, inputSize: 16, tasks: [0, 1, 0] },
      windowSize,
      learningRate,
      seconds: totalSeconds,
      untrainedAccuracy: untrained,
      bestModePerLayer: best,
      results: cells,
    },
    null,
    2,
  ) + '\n',
);
