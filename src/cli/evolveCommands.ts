import { dtypeName } from '../core/dtype.js';
import { LoomError, SpecError, UsageError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { forwardNetwork } from '../engine/run.js';
import { buildNetwork, parseJson } from '../grid/spec.js';
import { loadNetworkFile, readTextFile, saveNetworkFile } from '../io/modelFiles.js';
import { compareDNA, coordKey, extractDNA } from '../evolve/dna.js';
import { templatesForWidth } from '../evolve/mutate.js';
import { evolve, Population } from '../evolve/population.js';
import { findTask, TASK_NAMES } from '../evolve/tasks.js';
import { numberFlag, parseCommandArgs, stringFlag } from './args.js';

/** loom dna <a.json> <b.json> [--json]: per-coordinate overlap, overall overlap and logic shifts. */
export function dnaCommand(argv: string[], out: (s: string) => void): void {
  const { positionals, values } = parseCommandArgs('dna', argv, { json: { type: 'boolean' } });
  if (positionals.length !== 2) throw new UsageError('dna: expected two model files (usage: loom dna <a.json> <b.json> [--json])');
  const [pathA, pathB] = positionals;
  const dnaA = extractDNA(loadNetworkFile(pathA));
  const dnaB = extractDNA(loadNetworkFile(pathB));
  const result = compareDNA(dnaA, dnaB);
  if (values.json) {
    out(JSON.stringify(result, null, 2));
    return;
  }
  out(`DNA comparison: ${pathA} vs ${pathB}`);
  out(`overall overlap: ${result.overallOverlap.toFixed(4)} over ${Object.keys(result.layerOverlaps).length} shared coordinates`);
  const typeOf = new Map(dnaA.map((s) => [coordKey(s), `${s.type} ${dtypeName(s.dtype)}`]));
  for (const [key, overlap] of Object.entries(result.layerOverlaps)) out(`  (${key}) ${typeOf.get(key)?.padEnd(20)} ${overlap.toFixed(4)}`);
  const onlyA = dnaA.filter((s) => !(coordKey(s) in result.layerOverlaps)).map((s) => `(${coordKey(s)})`);
  const keysA = new Set(dnaA.map(coordKey));
  const onlyB = dnaB.filter((s) => !keysA.has(coordKey(s))).map((s) => `(${coordKey(s)})`);
  if (onlyA.length) out(`only in first: ${onlyA.join(' ')}`);
  if (onlyB.length) out(`only in second: ${onlyB.join(' ')}`);
  if (result.logicShifts.length === 0) out('logic shifts: none');
  else {
    out(`logic shifts: ${result.logicShifts.length}`);
    for (const s of result.logicShifts) out(`  (${s.from}) -> (${s.to})  overlap ${s.overlap.toFixed(4)}`);
  }
}

/**
 * loom evolve [spec.json] --task <xor|cartpole|spirals> --population N --generations G --seed S
 * [--scale σ] [--out best.json] [--json]. Without a spec the task's default network is used.
 */
export function evolveCommand(argv: string[], out: (s: string) => void): void {
  const { positionals, values } = parseCommandArgs('evolve', argv, {
    task: { type: 'string' },
    population: { type: 'string' },
    generations: { type: 'string' },
    seed: { type: 'string' },
    scale: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length > 1) throw new UsageError(`evolve: unexpected extra argument ${JSON.stringify(positionals[1])}`);
  const taskName = stringFlag(values, 'task');
  if (!taskName) throw new UsageError(`evolve: missing --task <name> (one of ${TASK_NAMES.join(', ')})`);
  const task = findTask(taskName);
  if (!task) throw new UsageError(`--task: expected one of ${TASK_NAMES.join(', ')}, got ${JSON.stringify(taskName)}`);
  const size = numberFlag(values, 'population', 50, (v) => Number.isInteger(v) && v >= 2 && v <= 100000, 'an integer of at least 2');
  const generations = numberFlag(values, 'generations', 100, (v) => Number.isInteger(v) && v >= 1, 'a positive integer');
  const seed = numberFlag(values, 'seed', 1, (v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff, 'an integer in 0..4294967295');
  const scale = numberFlag(values, 'scale', 0.5, (v) => v > 0, 'a positive number');
  const outPath = stringFlag(values, 'out');

  const specPath = positionals[0];
  const net = specPath ? buildNetwork(parseJson(readTextFile(specPath), specPath), { seed }) : buildNetwork(task.defaultSpec(), { seed });
  const probeShape = [1, task.inputSize];
  let probeOut: Tensor;
  try {
    probeOut = forwardNetwork(net, Tensor.zeros(probeShape)).output;
  } catch (e) {
    if (e instanceof LoomError) throw SpecError.at(specPath ?? 'spec', `the network must take ${task.inputSize} inputs for task ${task.name} (${e.message})`);
    throw e;
  }
  if (probeOut.size !== task.outputSize) throw SpecError.at(specPath ?? 'spec', `the network must give ${task.outputSize} output(s) for task ${task.name}, got ${probeOut.size}`);

  // Type swaps may insert width-preserving layers at any width the network already carries.
  const { trace } = forwardNetwork(net, Tensor.zeros(probeShape), { keepTrace: true });
  const widths = [...new Set(trace!.values.slice(1).map((v) => v.rowSize))];
  const population = new Population(net, {
    size,
    seed,
    mutation: { weightPerturbScale: scale, probeShape, templates: widths.flatMap(templatesForWidth) },
  });
  const started = performance.now();
  const result = evolve(population, (n) => task.fitness(n), {
    generations,
    target: task.target,
    onGeneration: (s) => {
      if (!values.json) out(`gen ${String(s.generation).padStart(4)}  best ${s.best.toFixed(4)}  mean ${s.mean.toFixed(4)}  worst ${s.worst.toFixed(4)}`);
    },
  });
  const seconds = (performance.now() - started) / 1000;
  if (outPath) saveNetworkFile(result.best, outPath);
  const summary = {
    task: task.name,
    population: size,
    seed,
    generationsRun: result.history.length,
    solved: result.solvedAt >= 0,
    solvedAtGeneration: result.solvedAt >= 0 ? result.solvedAt : null,
    bestFitness: result.bestFitness,
    target: task.target,
    seconds: Number(seconds.toFixed(3)),
    ...(outPath ? { saved: outPath } : {}),
  };
  if (values.json) {
    out(JSON.stringify({ ...summary, history: result.history }));
    return;
  }
  out(
    result.solvedAt >= 0
      ? `solved ${task.name} at generation ${result.solvedAt} (best fitness ${result.bestFitness.toFixed(4)} >= ${task.target}) in ${seconds.toFixed(2)} s`
      : `not solved after ${result.history.length} generations (best fitness ${result.bestFitness.toFixed(4)}, target ${task.target}) in ${seconds.toFixed(2)} s`,
  );
  if (outPath) out(`saved best network to ${outPath}`);
}
