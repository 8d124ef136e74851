import { SpecError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { VolumetricNetwork } from '../grid/network.js';
import { cloneNetwork } from './clone.js';
import { mutateNetwork, type MutationConfig } from './mutate.js';
import { spliceNetworks, type SpliceConfig } from './splice.js';

export type FitnessFunction = (net: VolumetricNetwork, index: number) => number;

export interface PopulationConfig {
  size: number;
  seed?: number;
  /** Fraction of each generation kept unchanged as elites (at least one). Default 0.25. */
  eliteFraction?: number;
  mutation?: Omit<MutationConfig, 'seed'>;
  /** Crossover of two elites for each offspring (fitness is filled in). Default blend. */
  splice?: Omit<SpliceConfig, 'seed' | 'fitnessA' | 'fitnessB'>;
}

export interface GenerationStats {
  generation: number;
  best: number;
  mean: number;
  worst: number;
}

/**
 * A pool of networks evolved by elitism + splice + mutation. Every random choice comes from one
 * seeded Rng, and fitness ties keep the earlier member, so a seed reproduces a run exactly.
 */
export class Population {
  networks: VolumetricNetwork[];
  /** Fitness of `networks[i]` from the last evaluation (NaN before the first). */
  fitnesses: number[];
  generation = 0;
  private readonly rng: Rng;
  private readonly eliteCount: number;

  constructor(
    seedNetwork: VolumetricNetwork,
    readonly config: PopulationConfig,
  ) {
    const { size } = config;
    if (!Number.isInteger(size) || size < 2) throw new SpecError('size', 'an integer population size of at least 2', size);
    const elite = config.eliteFraction ?? 0.25;
    if (!Number.isFinite(elite) || elite <= 0 || elite > 1) throw new SpecError('eliteFraction', 'a number in (0, 1]', elite);
    this.eliteCount = Math.max(1, Math.floor(size * elite));
    this.rng = new Rng(config.seed ?? 1);
    // Member 0 is the seed itself so a good starting point is never lost; the rest are its mutants.
    this.networks = [cloneNetwork(seedNetwork)];
    while (this.networks.length < size) this.networks.push(this.mutate(seedNetwork));
    this.fitnesses = new Array(size).fill(NaN);
  }

  /** Scores every member and sorts the population best first. */
  evaluate(fitness: FitnessFunction): GenerationStats {
    const scored = this.networks.map((net, i) => {
      const f = fitness(net, i);
      if (typeof f !== 'number' || Number.isNaN(f)) throw new SpecError('fitness', 'a number (higher is better)', f);
      return { net, f, i };
    });
    scored.sort((p, q) => q.f - p.f || p.i - q.i);
    this.networks = scored.map((s) => s.net);
    this.fitnesses = scored.map((s) => s.f);
    const mean = this.fitnesses.reduce((a, b) => a + b, 0) / this.fitnesses.length;
    return { generation: this.generation, best: this.fitnesses[0], mean, worst: this.fitnesses[this.fitnesses.length - 1] };
  }

  /** Replaces everyone but the elites with mutated splices of two elites. Call after evaluate. */
  breed(): void {
    const next = this.networks.slice(0, this.eliteCount);
    while (next.length < this.networks.length) {
      const a = this.rng.int(this.eliteCount);
      let b = this.rng.int(this.eliteCount);
      if (this.eliteCount > 1) while (b === a) b = this.rng.int(this.eliteCount);
      const { child } = spliceNetworks(this.networks[a], this.networks[b], {
        ...this.config.splice,
        fitnessA: this.fitnesses[a],
        fitnessB: this.fitnesses[b],
        seed: this.rng.nextU32(),
      });
      next.push(this.mutate(child));
    }
    this.networks = next;
    this.fitnesses = this.fitnesses.slice(0, this.eliteCount).concat(new Array(next.length - this.eliteCount).fill(NaN));
    this.generation++;
  }

  /** One generation: evaluate, then breed. Returns the statistics of the evaluated generation. */
  step(fitness: FitnessFunction): GenerationStats {
    const stats = this.evaluate(fitness);
    this.breed();
    return stats;
  }

  /** The best member of the last evaluation. */
  best(): VolumetricNetwork {
    return this.networks[0];
  }

  bestFitness(): number {
    return this.fitnesses[0];
  }

  private mutate(net: VolumetricNetwork): VolumetricNetwork {
    return mutateNetwork(net, { ...this.config.mutation, seed: this.rng.nextU32() }).child;
  }
}

export interface EvolveOptions {
  generations: number;
  /** Stop at the first generation whose best fitness reaches this. */
  target?: number;
  onGeneration?: (stats: GenerationStats, population: Population) => void;
}

export interface EvolveResult {
  best: VolumetricNetwork;
  bestFitness: number;
  /** Generation (0-based) at which `target` was first reached, or -1. */
  solvedAt: number;
  history: GenerationStats[];
}

/** Runs up to `generations` generations; the returned best network is from the last evaluation. */
export function evolve(population: Population, fitness: FitnessFunction, options: EvolveOptions): EvolveResult {
  const { generations, target } = options;
  if (!Number.isInteger(generations) || generations < 1) throw new SpecError('generations', 'a positive integer', generations);
  const history: GenerationStats[] = [];
  let solvedAt = -1;
  for (let g = 0; g < generations; g++) {
    const stats = population.evaluate(fitness);
    history.push(stats);
    options.onGeneration?.(stats, population);
    if (target !== undefined && stats.best >= target) {
      solvedAt = stats.generation;
      break;
    }
    if (g < generations - 1) population.breed();
  }
  return { best: population.best(), bestFitness: population.bestFitness(), solvedAt, history };
}
