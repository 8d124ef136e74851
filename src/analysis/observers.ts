import { SpecError } from '../core/errors.js';
import type { Tensor } from '../core/tensor.js';
import { backwardNetwork, forwardNetwork, type ForwardOptions, type ForwardResult, type ForwardTrace, type BackwardResult, type LayerHook } from '../engine/run.js';
import type { VolumetricNetwork } from '../grid/network.js';
import type { Coord } from '../layers/layer.js';

export interface LayerStats {
  avg: number;
  std: number;
  max: number;
  min: number;
  /** Values with |v| > 1e-6. */
  active: number;
  total: number;
}

export interface LayerEvent extends Coord {
  /** forward: the layer's output; backward: the gradient it passes toward its input. */
  type: 'forward' | 'backward';
  layerType: string;
  stats: LayerStats;
  /** Events this hub has emitted before this one. */
  sequence: number;
  modelId: string;
}

export interface NetworkObserver {
  onForward?(event: LayerEvent): void;
  onBackward?(event: LayerEvent): void;
}

export function computeLayerStats(data: ArrayLike<number>): LayerStats {
  const n = data.length;
  if (n === 0) return { avg: 0, std: 0, max: 0, min: 0, active: 0, total: 0 };
  let sum = 0;
  let sumSq = 0;
  let max = -Infinity;
  let min = Infinity;
  let active = 0;
  for (let i = 0; i < n; i++) {
    const v = data[i];
    sum += v;
    sumSq += v * v;
    if (v > max) max = v;
    if (v < min) min = v;
    if (Math.abs(v) > 1e-6) active++;
  }
  const avg = sum / n;
  return { avg, std: Math.sqrt(Math.max(0, sumSq / n - avg * avg)), max, min, active, total: n };
}

/** Engine hooks (ForwardOptions.onLayer / BackwardOptions.onLayer) that turn layer values into events for `observers`. */
export function observerHooks(observers: readonly NetworkObserver[], modelId = 'network'): { forward: LayerHook; backward: LayerHook } {
  let sequence = 0;
  const hook = (type: 'forward' | 'backward'): LayerHook => (layer, _index, value) => {
    const event: LayerEvent = { type, z: layer.z, y: layer.y, x: layer.x, l: layer.l, layerType: layer.kind.name, stats: computeLayerStats(value.data), sequence: sequence++, modelId };
    for (const o of observers) (type === 'forward' ? o.onForward : o.onBackward)?.call(o, event);
  };
  return { forward: hook('forward'), backward: hook('backward') };
}

/** forwardNetwork with observers notified after each layer. */
export function observedForward(net: VolumetricNetwork, input: Tensor, observers: readonly NetworkObserver[], options: ForwardOptions = {}, modelId = net.id): ForwardResult {
  return forwardNetwork(net, input, { ...options, onLayer: observerHooks(observers, modelId).forward });
}

/** backwardNetwork with observers notified after each layer. */
export function observedBackward(net: VolumetricNetwork, trace: ForwardTrace, gradOutput: Tensor, observers: readonly NetworkObserver[], modelId = net.id): BackwardResult {
  return backwardNetwork(net, trace, gradOutput, { onLayer: observerHooks(observers, modelId).backward });
}

/** Prints one line per event. */
export class ConsoleObserver implements NetworkObserver {
  constructor(private readonly write: (line: string) => void = (line) => console.log(line)) {}

  onForward(e: LayerEvent): void {
    this.write(`[FWD] (${e.z},${e.y},${e.x},${e.l}) ${e.layerType}: avg=${e.stats.avg.toFixed(4)} max=${e.stats.max.toFixed(4)} active=${e.stats.active}/${e.stats.total}`);
  }

  onBackward(e: LayerEvent): void {
    this.write(`[BWD] (${e.z},${e.y},${e.x},${e.l}) ${e.layerType}: grad_avg=${e.stats.avg.toFixed(4)} grad_max=${e.stats.max.toFixed(4)}`);
  }
}

/**
 * POSTs each event as JSON to `url` with fetch. Sending never blocks or throws into the pass being
 * observed: failures are counted, and `flush()` waits for everything in flight.
 */
export class HttpObserver implements NetworkObserver {
  sent = 0;
  failed = 0;
  lastError: string | undefined;
  private readonly pending = new Set<Promise<void>>();
  private readonly fetchImpl: typeof fetch;

  constructor(
    readonly url: string,
    options: { fetch?: typeof fetch; timeoutMs?: number } = {},
  ) {
    if (typeof url !== 'string' || !/^https?:\/\//i.test(url)) throw new SpecError('url', 'an http:// or https:// URL', url);
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? 2000;
  }

  private readonly timeoutMs: number;

  onForward(e: LayerEvent): void {
    this.send(e);
  }

  onBackward(e: LayerEvent): void {
    this.send(e);
  }

  private send(e: LayerEvent): void {
    const p = this.fetchImpl(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(e),
      signal: AbortSignal.timeout(this.timeoutMs),
    })
      .then(async (res) => {
        await res.arrayBuffer();
        if (res.ok) this.sent++;
        else {
          this.failed++;
          this.lastError = `HTTP ${res.status}`;
        }
      })
      .catch((err: unknown) => {
        this.failed++;
        this.lastError = (err as Error)?.message ?? String(err);
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** Resolves when every event sent so far has been delivered or has failed. */
  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}

/** Aggregates forward events into windows of `windowSize`: mean avg/std/active, extreme max/min. */
export class AggregatingObserver implements NetworkObserver {
  readonly history: LayerStats[] = [];
  private window: LayerEvent[] = [];

  constructor(readonly windowSize: number) {
    if (!Number.isInteger(windowSize) || windowSize < 1) throw new SpecError('windowSize', 'a positive integer', windowSize);
  }

  onForward(e: LayerEvent): void {
    this.window.push(e);
    if (this.window.length < this.windowSize) return;
    const w = this.window;
    this.window = [];
    const n = w.length;
    this.history.push({
      avg: w.reduce((s, x) => s + x.stats.avg, 0) / n,
      std: w.reduce((s, x) => s + x.stats.std, 0) / n,
      max: Math.max(...w.map((x) => x.stats.max)),
      min: Math.min(...w.map((x) => x.stats.min)),
      active: Math.round(w.reduce((s, x) => s + x.stats.active, 0) / n),
      total: e.stats.total,
    });
  }

  /** Events waiting for their window to fill. */
  get pendingEvents(): number {
    return this.window.length;
  }
}
