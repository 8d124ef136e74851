// The Loom playground: plain DOM and canvas over the browser bundle (../src/index.js becomes ./loom.js
// when scripts/buildBrowser.mjs bundles this file).
import {
  ALL_DTYPES,
  AdamW,
  DType,
  LOOM_META_NETWORK,
  Rng,
  Tensor,
  VolumetricNetwork,
  buildNetwork,
  createStepState,
  deserializeNetwork,
  dtypeName,
  evaluate,
  forwardNetwork,
  initKernels,
  kernelBackend,
  kernelPoolJobs,
  kernelThreads,
  loadNetworkWeights,
  makeBlobs,
  makeSpirals,
  morphLayer,
  networkToJson,
  networkToSafetensors,
  predict,
  readSafetensors,
  serializeNetwork,
  setThreads,
  stepForward,
  threadSupport,
  train,
  type Dataset,
  type EpochStats,
  type Layer,
  type StepState,
} from '../src/index.js';
import type { GpuContext } from '../src/gpu/browser.js';

/** The WebGPU backend (./loom-gpu.js in the bundle), loaded once at start-up. */
type GpuModule = typeof import('../src/gpu/browser.js');

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`playground: #${id} is missing from index.html`);
  return el as T;
};

const dense = (z: number, y: number, x: number, input: number, output: number, activation = 'Tanh') =>
  ({ z, y, x, l: 0, type: 'Dense', activation, dtype: 'float32', input_height: input, output_height: output, use_bias: true });

const PRESETS: Record<string, { data: string; doc: unknown }> = {
  'spirals MLP (1×1×3)': {
    data: 'spirals',
    doc: { id: 'spirals-mlp', depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: [dense(0, 0, 0, 2, 48), dense(0, 0, 1, 48, 48), dense(0, 0, 2, 48, 3, 'Linear')] },
  },
  'mixed cube (2×2×2)': {
    data: 'spirals',
    doc: {
      id: 'mixed-cube', depth: 2, rows: 2, cols: 2, layers_per_cell: 1,
      layers: [
        dense(0, 0, 0, 2, 32),
        dense(0, 0, 1, 32, 32),
        { z: 0, y: 1, x: 0, l: 0, type: 'Residual' },
        { z: 0, y: 1, x: 1, l: 0, type: 'LayerNorm', input_height: 32 },
        { z: 1, y: 0, x: 0, l: 0, type: 'SwiGLU', input_height: 32, output_height: 32 },
        { z: 1, y: 0, x: 1, l: 0, type: 'Residual' },
        { z: 1, y: 1, x: 0, l: 0, type: 'RMSNorm', input_height: 32 },
        dense(1, 1, 1, 32, 3, 'Linear'),
      ],
    },
  },
  'wide MLP (1×1×3, 256 wide)': {
    data: 'spirals',
    doc: { id: 'wide-mlp', depth: 1, rows: 1, cols: 3, layers_per_cell: 1, layers: [dense(0, 0, 0, 2, 256), dense(0, 0, 1, 256, 256), dense(0, 0, 2, 256, 3, 'Linear')] },
  },
  'xor (1×1×2)': {
    data: 'xor',
    doc: { id: 'xor', depth: 1, rows: 1, cols: 2, layers_per_cell: 1, layers: [dense(0, 0, 0, 2, 12), dense(0, 0, 1, 12, 2, 'Linear')] },
  },
};

const TYPE_COLORS: Record<string, string> = {
  Dense: '#4f8df7', Residual: '#f5a442', LayerNorm: '#49c48a', RMSNorm: '#2fa37a', SwiGLU: '#a974f0',
  Softmax: '#f06aa8', MultiHeadAttention: '#ef5b5b', Embedding: '#c49a6c', KMeans: '#46c6d8',
  RNN: '#e3cf4f', LSTM: '#cdb53a', CNN1: '#3fb8b0', CNN2: '#32a39b', CNN3: '#268a84',
  ConvTransposed1D: '#7fd3cd', ConvTransposed2D: '#6cc2bc', ConvTransposed3D: '#5aaea8', Sequential: '#9aa4b8', Parallel: '#b3bccd',
};
const CLASS_COLORS = ['#5aa9ff', '#ff8a5b', '#5be0a0', '#e07be0', '#f0d65a'];
const HEAT = ['#1b2338', '#3b2c7a', '#9c2f86', '#e2574c', '#f8a03b', '#fbe36a'];

type ColorMode = 'type' | 'activation';

interface Mesh {
  signal: StepState;
  baseline: StepState;
  sample: number;
}

const state = {
  net: null as VolumetricNetwork | null,
  data: null as Dataset | null,
  optimizer: new AdamW({ lr: 0.01 }),
  epoch: 0,
  losses: [] as number[],
  accuracies: [] as number[],
  training: false,
  specError: '' as string,
  trainError: '' as string,
  activity: null as Float64Array | null,
  colorMode: 'type' as ColorMode,
  selected: -1,
  mesh: null as Mesh | null,
  meshTimer: 0,
  nextSample: 0,
  hits: [] as { index: number; polys: [number, number][][] }[],
  /** Where the last epoch ran: the WebAssembly/TypeScript kernels or WebGPU. */
  device: 'cpu' as 'cpu' | 'gpu',
  gpu: null as GpuModule | null,
  gpuContext: null as GpuContext | null,
  gpuAvailable: false,
  gpuMessage: '',
  /** What the page says about the adapter when no GPU run has failed. */
  gpuAdapterMessage: '',
  threadsMessage: '',
};

const specInput = $<HTMLTextAreaElement>('spec');

// ---- spec editing

function formatSpec(doc: Record<string, unknown>): string {
  const layers = Array.isArray(doc.layers) ? doc.layers : [];
  const head = Object.entries(doc).filter(([k]) => k !== 'layers').map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  const body = layers.map((l) => `    ${JSON.stringify(l)}`).join(',\n');
  return `{\n${head.join(',\n')},\n  "layers": [\n${body}\n  ]\n}\n`;
}

function specWithoutWeights(net: VolumetricNetwork): Record<string, unknown> {
  const drop = new Set(['weights', 'native', 'scale', 'zero_point']);
  return JSON.parse(JSON.stringify(networkToJson(net), (k, v) => (drop.has(k) ? undefined : v))) as Record<string, unknown>;
}

/** Message for a JSON syntax error, with line and column when the engine gives an offset. */
function jsonErrorText(text: string, e: Error): string {
  const m = /position (\d+)/.exec(e.message);
  if (!m || /line \d+/.test(e.message)) return `JSON: ${e.message}`;
  const before = text.slice(0, Number(m[1]));
  const line = before.split('\n').length;
  const column = Number(m[1]) - before.lastIndexOf('\n');
  return `JSON: ${e.message} (line ${line}, column ${column})`;
}

function seed(): number {
  const v = Number($<HTMLInputElement>('seed').value);
  return Number.isInteger(v) && v >= 0 ? v : 7;
}

function buildFromText(text: string): VolumetricNetwork | null {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    showSpecError(jsonErrorText(text, e as Error));
    return null;
  }
  try {
    const net = buildNetwork(doc, { seed: seed() });
    if (net.plan().length === 0) throw new Error('the grid has no enabled layers');
    showSpecError('');
    return net;
  } catch (e) {
    showSpecError((e as Error).message);
    return null;
  }
}

function showSpecError(message: string): void {
  state.specError = message;
  const box = $('spec-error');
  box.hidden = message === '';
  box.textContent = message;
  specInput.classList.toggle('invalid', message !== '');
}

function useNetwork(net: VolumetricNetwork): void {
  stopTraining();
  stopMesh();
  state.net = net;
  state.optimizer = new AdamW({ lr: learningRate(), weightDecay: 1e-4 });
  state.epoch = 0;
  state.losses = [];
  state.accuracies = [];
  state.activity = null;
  state.selected = -1;
  state.mesh = null;
  showTrainError('');
  if (state.gpuAvailable) showGpuStatus(state.gpuAdapterMessage, true);
  $('morph-table').querySelector('tbody')!.replaceChildren();
  fillLayerSelect();
  refreshActivity();
  renderAll();
}

let specTimer = 0;
specInput.addEventListener('input', () => {
  clearTimeout(specTimer);
  specTimer = window.setTimeout(() => {
    const net = buildFromText(specInput.value);
    if (net) useNetwork(net);
  }, 250);
});

function loadPreset(name: string): void {
  const preset = PRESETS[name];
  $<HTMLSelectElement>('dataset').value = preset.data;
  makeData();
  specInput.value = formatSpec(preset.doc as Record<string, unknown>);
  const net = buildFromText(specInput.value);
  if (net) useNetwork(net);
}

// ---- data

function makeXor(seedValue: number, perQuadrant = 100): Dataset {
  const rng = new Rng(seedValue);
  const count = 4 * perQuadrant;
  const inputs = new Float32Array(count * 2);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const sx = i % 2 === 0 ? 1 : -1;
    const sy = (i >> 1) % 2 === 0 ? 1 : -1;
    inputs[2 * i] = sx * (0.15 + 0.85 * rng.uniform());
    inputs[2 * i + 1] = sy * (0.15 + 0.85 * rng.uniform());
    labels[i] = sx * sy > 0 ? 0 : 1;
  }
  return { count, inputs, inputShape: [2], labels, targetWidth: 2, source: `xor(seed=${seedValue})` };
}

function makeData(): void {
  const s = seed();
  const kind = $<HTMLSelectElement>('dataset').value;
  state.data =
    kind === 'xor' ? makeXor(s) :
    kind === 'blobs' ? makeBlobs({ classes: 3, dims: 2, pointsPerClass: 150, spread: 0.7, seed: s }) :
    makeSpirals({ classes: 3, pointsPerClass: 200, noise: 0.15, seed: s });
}

function learningRate(): number {
  const v = Number($<HTMLInputElement>('lr').value);
  return Number.isFinite(v) && v > 0 ? v : 0.01;
}

function batchSize(): number {
  const v = Number($<HTMLInputElement>('batch').value);
  return Number.isInteger(v) && v > 0 ? v : 32;
}

// ---- training

function showTrainError(message: string): void {
  state.trainError = message;
  const box = $('train-error');
  box.hidden = message === '';
  box.textContent = message;
}

function runEpoch(): void {
  const { net, data } = state;
  if (!net || !data) return;
  state.optimizer.lr = learningRate();
  const result = train(net, data, {
    epochs: 1,
    startEpoch: state.epoch + 1,
    batchSize: batchSize(),
    loss: 'cross_entropy',
    optimizer: state.optimizer,
    seed: seed(),
  });
  record(result.history[0], 'cpu');
}

function record(stats: EpochStats, device: 'cpu' | 'gpu'): void {
  state.epoch = stats.epoch;
  state.losses.push(stats.loss);
  state.accuracies.push(stats.accuracy ?? NaN);
  state.device = device;
}

/** Thrown from onEpoch to end a GPU run when the user pauses or replaces the network. */
const STOP_GPU_RUN = Symbol('stop');

/**
 * Trains on WebGPU until paused, one epoch per onEpoch report (the weights are copied back to the
 * network before each). A failure (a layer without GPU kernels, a lost device) falls back to the CPU
 * with a visible message, and training goes on there.
 */
async function trainOnGpu(): Promise<void> {
  const { net, data, gpu } = state;
  if (!net || !data || !gpu) return;
  try {
    state.gpuContext ??= await gpu.createBrowserGpuContext({ label: 'playground' });
    // trainGpu does not take over an optimizer's state yet: every GPU run starts a fresh AdamW.
    const optimizer = new AdamW({ lr: learningRate(), weightDecay: 1e-4 });
    await gpu.trainGpu(net, data, {
      epochs: Number.MAX_SAFE_INTEGER - state.epoch - 1,
      startEpoch: state.epoch + 1,
      batchSize: batchSize(),
      loss: 'cross_entropy',
      optimizer,
      seed: seed(),
      gpu: state.gpuContext,
      onEpoch: (stats) => {
        if (state.net !== net) throw STOP_GPU_RUN;
        record(stats, 'gpu');
        refreshActivity();
        renderAll();
        if (!state.training) throw STOP_GPU_RUN;
      },
    });
  } catch (e) {
    if (e === STOP_GPU_RUN || state.net !== net) return;
    $<HTMLInputElement>('use-gpu').checked = false;
    showGpuStatus(`GPU training failed: ${(e as Error).message.split('\n')[0]}. Training continues on the CPU.`, false);
    state.optimizer = new AdamW({ lr: learningRate(), weightDecay: 1e-4 });
    if (state.training) setTimeout(trainLoop, 0);
  }
}

function showGpuStatus(message: string, ok: boolean): void {
  state.gpuMessage = message;
  const box = $('gpu-status');
  box.textContent = message;
  box.classList.toggle('on', ok);
}

function trainLoop(): void {
  if (!state.training) return;
  const started = performance.now();
  try {
    do runEpoch();
    while (performance.now() - started < 25);
    refreshActivity();
  } catch (e) {
    stopTraining();
    showTrainError((e as Error).message + widthHint());
  }
  renderAll();
  if (state.training) setTimeout(trainLoop, 0);
}

/** A hint when the network's output width does not match the dataset's classes. */
function widthHint(): string {
  const { net, data } = state;
  if (!net || !data) return '';
  try {
    const features = data.inputs.length / data.count;
    const width = forwardNetwork(net, new Tensor(data.inputs.slice(0, features), [1, ...data.inputShape])).output.size;
    return width === data.targetWidth ? '' : `\nThe network outputs ${width} values but ${data.source} has ${data.targetWidth} classes: set the last layer's output_height to ${data.targetWidth}.`;
  } catch {
    return '';
  }
}

function startTraining(): void {
  if (!state.net || state.specError) return;
  stopMesh();
  state.mesh = null;
  state.training = true;
  $('train').textContent = 'Pause';
  showTrainError('');
  if (state.gpuAvailable && state.gpu && $<HTMLInputElement>('use-gpu').checked) {
    const unsupported = state.gpu.gpuUnsupportedLayers(state.net);
    if (unsupported.length === 0) return void trainOnGpu();
    showGpuStatus(`No GPU kernels yet for ${unsupported.join(', ')}: this network trains on the CPU.`, false);
  }
  setTimeout(trainLoop, 0);
}

function stopTraining(): void {
  state.training = false;
  $('train').textContent = 'Train';
}

/** Mean |output| of every layer over a probe batch, by flat grid index. */
function refreshActivity(): void {
  const { net, data } = state;
  if (!net || !data) return;
  const n = Math.min(data.count, 128);
  const features = data.inputs.length / data.count;
  const probe = new Tensor(data.inputs.slice(0, n * features), [n, ...data.inputShape]);
  const activity = new Float64Array(net.cells.length);
  try {
    forwardNetwork(net, probe, { onLayer: (_layer, index, value) => (activity[index] = meanAbs(value.data)) });
    state.activity = activity;
  } catch (e) {
    showTrainError((e as Error).message);
  }
}

function meanAbs(values: Float32Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += Math.abs(values[i]);
  return values.length ? s / values.length : 0;
}

// ---- step mesh

function stopMesh(): void {
  clearInterval(state.meshTimer);
  state.meshTimer = 0;
  $('play').textContent = 'Play';
}

function meshTick(): void {
  const { net, data } = state;
  if (!net || !data) return;
  try {
    if (!state.mesh) {
      const features = data.inputs.length / data.count;
      const sample = state.nextSample++ % data.count;
      const signal = createStepState(net);
      const baseline = createStepState(net);
      signal.setInput(new Tensor(data.inputs.slice(sample * features, (sample + 1) * features), [1, ...data.inputShape]));
      baseline.setInput(Tensor.zeros([1, ...data.inputShape]));
      state.mesh = { signal, baseline, sample };
    }
    const { signal, baseline } = state.mesh;
    stepForward(signal);
    stepForward(baseline);
    const activity = new Float64Array(net.cells.length);
    for (let i = 0; i < activity.length; i++) {
      const a = signal.outputs[i];
      const b = baseline.outputs[i];
      if (!a || !b) continue;
      let s = 0;
      for (let k = 0; k < a.data.length; k++) s += Math.abs(a.data[k] - b.data[k]);
      activity[i] = s / a.data.length;
    }
    state.activity = activity;
    setColorMode('activation');
    renderMeshStatus();
  } catch (e) {
    stopMesh();
    showTrainError((e as Error).message);
  }
  renderGrid();
}

function renderMeshStatus(): void {
  const mesh = state.mesh;
  if (!mesh || !state.net || !state.data) {
    $('mesh-status').textContent = '';
    return;
  }
  const { signal, sample } = mesh;
  const out = signal.output().data;
  const features = state.data.inputs.length / state.data.count;
  const input = new Tensor(state.data.inputs.slice(sample * features, (sample + 1) * features), [1, ...state.data.inputShape]);
  const reference = forwardNetwork(state.net, input).output.data;
  const settled = signal.tick >= signal.latency;
  const same = settled && out.every((v, i) => Math.abs(v - reference[i]) <= 1e-5 * (1 + Math.abs(reference[i])));
  $('mesh-status').textContent =
    `sample ${sample} · tick ${signal.tick} · latency ${signal.latency} · output class ${argmax(out)}` +
    (settled ? (same ? ' = forward pass ✓' : ` (forward pass: ${argmax(reference)})`) : ' · filling…');
}

function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

// ---- isometric grid view

type Pt = [number, number];

function setColorMode(mode: ColorMode): void {
  state.colorMode = mode;
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name=color]')) r.checked = r.value === mode;
}

type Rgb = [number, number, number];

const rgbOf = (hex: string): Rgb => {
  const p = parseInt(hex.slice(1), 16);
  return [(p >> 16) & 255, (p >> 8) & 255, p & 255];
};
const css = ([r, g, b]: Rgb, f = 1): string => `rgb(${Math.round(r * f)} ${Math.round(g * f)} ${Math.round(b * f)})`;

function typeColor(name: string): Rgb {
  if (TYPE_COLORS[name]) return rgbOf(TYPE_COLORS[name]);
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const spare = Object.values(TYPE_COLORS);
  return rgbOf(spare[h % spare.length]);
}

function heat(t: number): Rgb {
  const x = Math.max(0, Math.min(1, t)) * (HEAT.length - 1);
  const i = Math.min(HEAT.length - 2, Math.floor(x));
  const a = rgbOf(HEAT[i]);
  const b = rgbOf(HEAT[i + 1]);
  const f = x - i;
  return [0, 1, 2].map((k) => a[k] * (1 - f) + b[k] * f) as Rgb;
}

function renderGrid(): void {
  const canvas = $<HTMLCanvasElement>('iso');
  const ctx = canvas.getContext('2d')!;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  state.hits = [];
  const net = state.net;
  if (!net) return;
  const { depth, rows, cols, layersPerCell } = net;
  $('grid-dims').textContent = `depth ${depth} × rows ${rows} × cols ${cols} × ${layersPerCell} layer${layersPerCell > 1 ? 's' : ''}/cell`;
  // Unequal axis angles and a taller row spacing (not true isometric) keep cells that lie on one
  // view diagonal, e.g. (x+1, z+1, y) and (x, z, y+1), from landing exactly on each other.
  const gap = 1.6;
  const rowGap = 1.9;
  const [ax, ay, zx, zy] = [0.906, 0.423, -0.613, 0.514];
  const project = (X: number, Z: number, H: number): Pt => [X * ax + Z * zx, X * ay + Z * zy - H];
  // Fit the whole grid (all cube corners) into the canvas.
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
  for (const X of [0, (cols - 1) * gap + 1]) for (const Z of [0, (depth - 1) * gap + 1]) for (const H of [0, (rows - 1) * rowGap + 1]) {
    const [x, y] = project(X, Z, H);
    minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
  }
  const pad = 34;
  const scale = Math.min((canvas.width - 2 * pad) / (maxX - minX), (canvas.height - 2 * pad) / (maxY - minY), 120);
  const ox = (canvas.width - (maxX - minX) * scale) / 2 - minX * scale;
  const oy = (canvas.height - (maxY - minY) * scale) / 2 - minY * scale;
  const P = (X: number, Z: number, H: number): Pt => {
    const [x, y] = project(X, Z, H);
    return [ox + x * scale, oy + y * scale];
  };

  let maxActivity = 0;
  if (state.activity) for (const v of state.activity) maxActivity = Math.max(maxActivity, v);

  // Floor under each depth slice, for orientation.
  ctx.lineWidth = 1;
  for (let z = 0; z < depth; z++) {
    const Z0 = z * gap - 0.2, Z1 = z * gap + 1.2;
    const floor = [P(-0.2, Z0, 0), P((cols - 1) * gap + 1.2, Z0, 0), P((cols - 1) * gap + 1.2, Z1, 0), P(-0.2, Z1, 0)];
    poly(ctx, floor, 'rgba(90,169,255,0.05)', 'rgba(90,169,255,0.18)');
  }

  const order: { x: number; y: number; z: number }[] = [];
  for (let z = 0; z < depth; z++) for (let y = 0; y < rows; y++) for (let x = 0; x < cols; x++) order.push({ x, y, z });
  order.sort((a, b) => a.x + a.z - (b.x + b.z) || b.y - a.y || a.x - b.x);
  for (const { x, y, z } of order) {
    const X = x * gap, Z = z * gap, H0 = (rows - 1 - y) * rowGap;
    for (let l = layersPerCell - 1; l >= 0; l--) {
      const index = net.index(z, y, x, l);
      const layer = net.cells[index];
      const h = 1 / layersPerCell;
      const hb = H0 + (layersPerCell - 1 - l) * h;
      const ht = hb + h * 0.92;
      const top = [P(X, Z, ht), P(X + 1, Z, ht), P(X + 1, Z + 1, ht), P(X, Z + 1, ht)];
      const right = [P(X + 1, Z, hb), P(X + 1, Z + 1, hb), P(X + 1, Z + 1, ht), P(X + 1, Z, ht)];
      const left = [P(X, Z + 1, hb), P(X + 1, Z + 1, hb), P(X + 1, Z + 1, ht), P(X, Z + 1, ht)];
      if (!layer) {
        ctx.setLineDash([3, 3]);
        for (const f of [top, right, left]) poly(ctx, f, null, 'rgba(138,151,179,0.35)');
        ctx.setLineDash([]);
        continue;
      }
      let base: Rgb;
      if (layer.disabled) base = rgbOf('#3a4258');
      else if (state.colorMode === 'activation') base = heat(maxActivity > 0 ? (state.activity?.[index] ?? 0) / maxActivity : 0);
      else base = typeColor(layer.kind.name);
      const edge = index === state.selected ? '#ffffff' : 'rgba(0,0,0,0.45)';
      ctx.lineWidth = index === state.selected ? 2.5 : 1;
      poly(ctx, left, css(base, 0.55), edge);
      poly(ctx, right, css(base, 0.75), edge);
      poly(ctx, top, css(base), edge);
      ctx.lineWidth = 1;
      state.hits.push({ index, polys: [top, right, left] });
      const [cx, cy] = centroid(top);
      const light = 0.299 * base[0] + 0.587 * base[1] + 0.114 * base[2] > 120;
      ctx.fillStyle = light ? 'rgba(8,12,20,0.85)' : 'rgba(235,240,250,0.9)';
      ctx.font = `${Math.max(9, Math.min(13, scale / 7))}px system-ui, sans-serif`;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      if (scale * h > 22) ctx.fillText(abbreviation(layer), cx, cy);
    }
  }
  // Data-flow hint: the order cells run in.
  ctx.fillStyle = '#8a97b3';
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'left';
  ctx.fillText('data flows z → y → x → l', 10, canvas.height - 10);
  renderLegend();
}

function abbreviation(layer: Layer): string {
  const short: Record<string, string> = { Dense: 'D', Residual: '+', LayerNorm: 'LN', RMSNorm: 'RMS', SwiGLU: 'GLU', MultiHeadAttention: 'Attn', Softmax: 'σ', Embedding: 'Emb' };
  const dt = layer.weights && layer.dtype !== DType.Float32 ? ` ${dtypeName(layer.dtype)}` : '';
  return (short[layer.kind.name] ?? layer.kind.name) + dt;
}

function poly(ctx: CanvasRenderingContext2D, pts: Pt[], fill: string | null, stroke: string | null): void {
  ctx.beginPath();
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (const [x, y] of pts.slice(1)) ctx.lineTo(x, y);
  ctx.closePath();
  if (fill) {
    ctx.fillStyle = fill;
    ctx.fill();
  }
  if (stroke) {
    ctx.strokeStyle = stroke;
    ctx.stroke();
  }
}

function centroid(pts: Pt[]): Pt {
  return [pts.reduce((s, p) => s + p[0], 0) / pts.length, pts.reduce((s, p) => s + p[1], 0) / pts.length];
}

function inside(p: Pt, pts: Pt[]): boolean {
  let hit = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

function renderLegend(): void {
  const legend = $('legend');
  if (state.colorMode === 'activation') {
    const stops = HEAT.map((c, i) => `${c} ${(100 * i) / (HEAT.length - 1)}%`).join(', ');
    legend.innerHTML = `<span>${state.mesh ? '|signal − baseline| per cell' : 'mean |output| on 128 samples'}</span>` +
      `<span style="display:inline-block;width:140px;height:10px;border-radius:3px;background:linear-gradient(90deg, ${stops})"></span><span>low → high</span>`;
    return;
  }
  const names = new Set(state.net ? state.net.layers().map((l) => l.kind.name) : []);
  legend.replaceChildren(
    ...[...names].map((n) => {
      const s = document.createElement('span');
      const i = document.createElement('i');
      i.style.background = css(typeColor(n));
      s.append(i, n);
      return s;
    }),
  );
}

$<HTMLCanvasElement>('iso').addEventListener('click', (ev) => {
  const canvas = ev.currentTarget as HTMLCanvasElement;
  const r = canvas.getBoundingClientRect();
  const p: Pt = [((ev.clientX - r.left) * canvas.width) / r.width, ((ev.clientY - r.top) * canvas.height) / r.height];
  const hit = [...state.hits].reverse().find((h) => h.polys.some((f) => inside(p, f)));
  state.selected = hit ? hit.index : -1;
  const select = $<HTMLSelectElement>('morph-layer');
  if (hit) select.value = [...select.options].some((o) => o.value === String(hit.index)) ? String(hit.index) : 'all';
  renderGrid();
  renderCellInfo();
});

function renderCellInfo(): void {
  const info = $('cell-info');
  const layer = state.net && state.selected >= 0 ? state.net.cells[state.selected] : undefined;
  if (!layer) {
    info.textContent = 'Click a cell to select its layer.';
    return;
  }
  const params = layer.weights?.count ?? 0;
  const bytes = layer.weights?.sizeInBytes(layer.dtype) ?? 0;
  const act = state.activity ? ` · activity ${state.activity[state.selected].toFixed(4)}` : '';
  info.textContent = `${layer.kind.name} at (z ${layer.z}, y ${layer.y}, x ${layer.x}, l ${layer.l}) · ${dtypeName(layer.dtype)} · ${params} parameters · ${formatBytes(bytes)}${act}`;
}

// ---- charts

function renderChart(id: string, values: number[], color: string, range?: [number, number], format = (v: number) => v.toFixed(3)): void {
  const canvas = $<HTMLCanvasElement>(id);
  const ctx = canvas.getContext('2d')!;
  const W = canvas.width, Hh = canvas.height;
  ctx.clearRect(0, 0, W, Hh);
  const left = 44, right = 10, top = 10, bottom = 20;
  const finite = values.filter(Number.isFinite);
  let [lo, hi] = range ?? [Math.min(...finite, Infinity), Math.max(...finite, -Infinity)];
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (hi - lo < 1e-9) hi = lo + 1;
  ctx.strokeStyle = '#263049';
  ctx.fillStyle = '#8a97b3';
  ctx.font = '10px system-ui, sans-serif';
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let k = 0; k <= 4; k++) {
    const y = top + ((Hh - top - bottom) * k) / 4;
    ctx.beginPath();
    ctx.moveTo(left, y);
    ctx.lineTo(W - right, y);
    ctx.stroke();
    ctx.fillText(format(hi - ((hi - lo) * k) / 4), left - 4, y);
  }
  ctx.textAlign = 'left';
  ctx.fillText(values.length ? `epoch ${values.length}` : 'no epochs yet', left, Hh - 8);
  if (values.length === 0) return;
  if (values.length > 0) {
    ctx.textAlign = 'right';
    ctx.fillStyle = color;
    ctx.fillText(format(values[values.length - 1]), W - right, Hh - 8);
  }
  const xOf = (i: number) => left + ((W - left - right) * (values.length === 1 ? 1 : i / (values.length - 1)));
  const yOf = (v: number) => top + (Hh - top - bottom) * (1 - (v - lo) / (hi - lo));
  ctx.beginPath();
  values.forEach((v, i) => (i === 0 ? ctx.moveTo(xOf(i), yOf(v)) : ctx.lineTo(xOf(i), yOf(v))));
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.stroke();
  ctx.lineWidth = 1;
}

function renderBoundary(): void {
  const canvas = $<HTMLCanvasElement>('boundary');
  const ctx = canvas.getContext('2d')!;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const { net, data } = state;
  if (!net || !data || data.inputShape.length !== 1 || data.inputShape[0] !== 2) return;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < data.count; i++) {
    x0 = Math.min(x0, data.inputs[2 * i]); x1 = Math.max(x1, data.inputs[2 * i]);
    y0 = Math.min(y0, data.inputs[2 * i + 1]); y1 = Math.max(y1, data.inputs[2 * i + 1]);
  }
  const mx = (x1 - x0) * 0.08, my = (y1 - y0) * 0.08;
  x0 -= mx; x1 += mx; y0 -= my; y1 += my;
  const N = 60;
  const grid = new Float32Array(N * N * 2);
  for (let j = 0; j < N; j++) for (let i = 0; i < N; i++) {
    grid[2 * (j * N + i)] = x0 + ((i + 0.5) / N) * (x1 - x0);
    grid[2 * (j * N + i) + 1] = y1 - ((j + 0.5) / N) * (y1 - y0);
  }
  let out: Tensor;
  try {
    out = predict(net, { count: N * N, inputs: grid, inputShape: [2], targetWidth: data.targetWidth, source: 'grid' }, 3600, false);
  } catch {
    return;
  }
  const K = out.data.length / (N * N);
  const img = new ImageData(N, N);
  for (let p = 0; p < N * N; p++) {
    const row = out.data.subarray(p * K, (p + 1) * K);
    const c = argmax(row);
    let z = 0;
    for (const v of row) z += Math.exp(v - row[c]);
    const conf = 1 / z;
    const rgb = parseInt(CLASS_COLORS[c % CLASS_COLORS.length].slice(1), 16);
    img.data[4 * p] = (rgb >> 16) & 255;
    img.data[4 * p + 1] = (rgb >> 8) & 255;
    img.data[4 * p + 2] = rgb & 255;
    img.data[4 * p + 3] = Math.round(40 + 90 * conf);
  }
  const tmp = document.createElement('canvas');
  tmp.width = tmp.height = N;
  tmp.getContext('2d')!.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
  const step = Math.max(1, Math.floor(data.count / 600));
  for (let i = 0; i < data.count; i += step) {
    const px = ((data.inputs[2 * i] - x0) / (x1 - x0)) * canvas.width;
    const py = ((y1 - data.inputs[2 * i + 1]) / (y1 - y0)) * canvas.height;
    ctx.beginPath();
    ctx.arc(px, py, 2.2, 0, 2 * Math.PI);
    ctx.fillStyle = CLASS_COLORS[(data.labels?.[i] ?? 0) % CLASS_COLORS.length];
    ctx.fill();
    ctx.strokeStyle = 'rgba(0,0,0,0.6)';
    ctx.stroke();
  }
}

// ---- morphing

function fillLayerSelect(): void {
  const select = $<HTMLSelectElement>('morph-layer');
  const options = [new Option('all layers', 'all')];
  if (state.net) {
    for (const [index, layer] of state.net.entries()) {
      if (!layer.weights) continue;
      options.push(new Option(`${layer.kind.name} (${layer.z},${layer.y},${layer.x},${layer.l})`, String(index)));
    }
  }
  select.replaceChildren(...options);
}

function morphSelected(): void {
  const { net, data } = state;
  if (!net || !data) return;
  const target = $<HTMLSelectElement>('morph-layer').value;
  const dtype = Number($<HTMLSelectElement>('morph-dtype').value) as DType;
  try {
    const tbody = $('morph-table').querySelector('tbody')!;
    if (tbody.children.length === 0) addMorphRow('—', 'before', net, data);
    let label: string;
    if (target === 'all') {
      net.morph(dtype);
      label = 'all';
    } else {
      const layer = net.cells[Number(target)]!;
      morphLayer(layer, dtype);
      label = `${layer.kind.name} (${layer.z},${layer.y},${layer.x},${layer.l})`;
    }
    addMorphRow(label, dtypeName(dtype), net, data);
    refreshActivity();
    renderAll();
  } catch (e) {
    showTrainError((e as Error).message);
  }
}

function addMorphRow(layers: string, dtype: string, net: VolumetricNetwork, data: Dataset): void {
  const r = evaluate(net, data, 'cross_entropy', 500, false);
  const tr = document.createElement('tr');
  for (const [text, num] of [[layers, false], [dtype, false], [pct(r.accuracy ?? NaN), true], [formatBytes(net.sizeInBytes()), true]] as const) {
    const td = document.createElement('td');
    td.textContent = text;
    if (num) td.className = 'num';
    tr.append(td);
  }
  $('morph-table').querySelector('tbody')!.append(tr);
}

function pct(v: number): string {
  return Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '—';
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

// ---- save and load

function download(name: string, bytes: BlobPart, type: string): void {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 5000);
}

async function loadFile(file: File): Promise<void> {
  const status = $('io-status');
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    let net: VolumetricNetwork;
    const firstChar = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
    if (file.name.endsWith('.safetensors') || firstChar !== 0x7b) {
      const reader = readSafetensors(bytes);
      const spec = reader.metadata[LOOM_META_NETWORK];
      if (spec === undefined) throw new Error(`${file.name}: no ${LOOM_META_NETWORK} metadata; the playground loads safetensors written by Loom`);
      net = buildNetwork(spec, { seed: seed() });
      loadNetworkWeights(net, reader);
    } else {
      net = deserializeNetwork(new TextDecoder().decode(bytes));
    }
    specInput.value = formatSpec(specWithoutWeights(net));
    showSpecError('');
    useNetwork(net);
    const r = state.data ? evaluate(net, state.data, 'cross_entropy', 500, false) : null;
    status.textContent = `loaded ${file.name}: ${net.parameterCount()} parameters, ${formatBytes(net.sizeInBytes())}` +
      (r?.accuracy !== undefined ? `, accuracy ${pct(r.accuracy)} on the current data` : '');
  } catch (e) {
    status.textContent = '';
    showTrainError((e as Error).message);
  }
}

// ---- wiring

function renderSummary(): void {
  const net = state.net;
  $('spec-summary').textContent = net ? `${net.plan().length} layers · ${net.parameterCount()} parameters · ${formatBytes(net.sizeInBytes())}` : '';
  const last = state.losses.length - 1;
  const where = state.device === 'gpu' ? 'WebGPU' : `CPU, ${kernelThreads()} thread${kernelThreads() > 1 ? 's' : ''}`;
  $('train-status').textContent = last >= 0 ? `epoch ${state.epoch} · loss ${state.losses[last].toFixed(4)} · accuracy ${pct(state.accuracies[last])} · ${where}` : '';
}

let lastBoundaryEpoch = -1;
function renderAll(): void {
  renderSummary();
  renderGrid();
  renderCellInfo();
  renderChart('loss-chart', state.losses, '#ff8a5b');
  renderChart('acc-chart', state.accuracies, '#5be0a0', [0, 1], (v) => `${Math.round(100 * v)}%`);
  if (state.epoch !== lastBoundaryEpoch || !state.training) {
    lastBoundaryEpoch = state.epoch;
    renderBoundary();
  }
  if (!state.mesh) $('mesh-status').textContent = '';
}

/**
 * Kernel threads: Web Workers sharing the kernels' memory, available when the page is cross-origin
 * isolated (loom serve sends the COOP/COEP headers). Results are the same bits for any count.
 */
async function useThreads(requested: number): Promise<void> {
  const support = threadSupport();
  const threads = support.available ? await setThreads(requested) : 1;
  state.threadsMessage = !support.available
    ? `single-threaded: ${support.reason}`
    : threads === requested
      ? `${threads} kernel thread${threads > 1 ? 's' : ''}${threads > 1 ? ` (the page and ${threads - 1} Web Worker${threads > 2 ? 's' : ''}; products of 2^20 multiply-adds and up are split)` : ''}`
      : `asked for ${requested} threads, running ${threads}: the Web Workers could not start`;
  $('threads-status').textContent = state.threadsMessage;
  $<HTMLSelectElement>('threads').value = String(threads);
  renderSummary();
  renderChips();
}

function setUpThreads(): number {
  const select = $<HTMLSelectElement>('threads');
  const support = threadSupport();
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  const most = support.available ? Math.min(8, Math.max(2, cores)) : 1;
  select.replaceChildren(...Array.from({ length: most }, (_, i) => new Option(String(i + 1), String(i + 1))));
  select.disabled = most === 1;
  select.addEventListener('change', () => void useThreads(Number(select.value)));
  return Math.min(most, 4, cores);
}

/** Loads the WebGPU backend and asks for an adapter; without one, GPU training stays off and the page says why. */
async function setUpGpu(): Promise<void> {
  const checkbox = $<HTMLInputElement>('use-gpu');
  try {
    state.gpu = await import('../src/gpu/browser.js');
    const status = await state.gpu.webGpuStatus();
    state.gpuAvailable = status.available;
    if (status.available) {
      const { vendor, architecture, description } = status.adapter;
      checkbox.disabled = false;
      state.gpuAdapterMessage = `WebGPU adapter: ${[vendor, architecture, description].filter(Boolean).join(' ') || 'unnamed'}. Tick "Train on GPU" to train there.`;
      showGpuStatus(state.gpuAdapterMessage, true);
    } else {
      showGpuStatus(`Train on GPU is unavailable: ${status.reason}.`, false);
    }
  } catch (e) {
    state.gpuAvailable = false;
    showGpuStatus(`The WebGPU backend did not load (${(e as Error).message}). Training runs on the CPU.`, false);
  }
  checkbox.disabled = !state.gpuAvailable;
  renderChips();
}

function renderChips(): void {
  const backend = kernelBackend();
  const threads = kernelThreads();
  const chips: [string, boolean][] = [
    [`kernels: ${backend === 'wasm' ? 'WebAssembly SIMD' : 'TypeScript'}`, backend === 'wasm'],
    [crossOriginIsolated ? `cross-origin isolated · ${threads} thread${threads > 1 ? 's' : ''}` : 'not isolated: single-threaded', crossOriginIsolated && threads > 1],
    [state.gpuAvailable ? 'WebGPU adapter available' : 'no WebGPU adapter', state.gpuAvailable],
  ];
  $('chips').replaceChildren(
    ...chips.map(([text, on]) => {
      const s = document.createElement('span');
      s.className = on ? 'chip on' : 'chip';
      s.textContent = text;
      return s;
    }),
  );
}

function wire(): void {
  const preset = $<HTMLSelectElement>('preset');
  preset.replaceChildren(...Object.keys(PRESETS).map((n) => new Option(n, n)));
  preset.addEventListener('change', () => loadPreset(preset.value));
  $<HTMLSelectElement>('morph-dtype').replaceChildren(...ALL_DTYPES.map((d) => new Option(dtypeName(d), String(d))));
  $<HTMLSelectElement>('morph-dtype').value = String(DType.Int8);
  $('train').addEventListener('click', () => (state.training ? stopTraining() : startTraining()));
  $('reset').addEventListener('click', () => {
    const net = buildFromText(specInput.value);
    if (net) useNetwork(net);
  });
  const regenerate = () => {
    makeData();
    const net = buildFromText(specInput.value);
    if (net) useNetwork(net);
  };
  $('dataset').addEventListener('change', regenerate);
  $('seed').addEventListener('change', regenerate);
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name=color]')) {
    r.addEventListener('change', () => {
      setColorMode(r.value as ColorMode);
      renderGrid();
    });
  }
  $('tick').addEventListener('click', () => {
    stopTraining();
    meshTick();
  });
  $('play').addEventListener('click', () => {
    if (state.meshTimer) return stopMesh();
    stopTraining();
    state.meshTimer = window.setInterval(meshTick, 350);
    $('play').textContent = 'Stop';
  });
  $('mesh-reset').addEventListener('click', () => {
    stopMesh();
    state.mesh = null;
    refreshActivity();
    renderAll();
  });
  $('morph').addEventListener('click', morphSelected);
  $('save-json').addEventListener('click', () => state.net && download(`${state.net.id}.json`, serializeNetwork(state.net), 'application/json'));
  $('save-st').addEventListener('click', () => state.net && download(`${state.net.id}.safetensors`, networkToSafetensors(state.net) as Uint8Array<ArrayBuffer>, 'application/octet-stream'));
  $<HTMLInputElement>('load').addEventListener('change', (ev) => {
    const input = ev.currentTarget as HTMLInputElement;
    const file = input.files?.[0];
    if (file) void loadFile(file).finally(() => (input.value = ''));
  });
}

/** What the end-to-end tests read. */
export interface PlaygroundSnapshot {
  backend: string;
  epoch: number;
  losses: number[];
  accuracies: number[];
  training: boolean;
  specError: string;
  trainError: string;
  tick: number;
  parameterCount: number;
  sizeInBytes: number;
  threads: number;
  poolJobs: number;
  threadsMessage: string;
  device: 'cpu' | 'gpu';
  gpuAvailable: boolean;
  gpuMessage: string;
}

async function start(): Promise<void> {
  await initKernels();
  wire();
  await Promise.all([useThreads(setUpThreads()), setUpGpu()]);
  loadPreset(Object.keys(PRESETS)[0]);
  (window as unknown as { loomPlayground: unknown }).loomPlayground = {
    snapshot: (): PlaygroundSnapshot => ({
      backend: kernelBackend(),
      epoch: state.epoch,
      losses: [...state.losses],
      accuracies: [...state.accuracies],
      training: state.training,
      specError: state.specError,
      trainError: state.trainError,
      tick: state.mesh?.signal.tick ?? 0,
      parameterCount: state.net?.parameterCount() ?? 0,
      sizeInBytes: state.net?.sizeInBytes() ?? 0,
      threads: kernelThreads(),
      poolJobs: kernelPoolJobs(),
      threadsMessage: state.threadsMessage,
      device: state.device,
      gpuAvailable: state.gpuAvailable,
      gpuMessage: state.gpuMessage,
    }),
  };
  document.body.dataset.ready = 'true';
}

void start();
