import { DType, dtypeName, parseDType } from '../core/dtype.js';
import { describeValue, FormatError, UsageError } from '../core/errors.js';
import { Tensor } from '../core/tensor.js';
import { forwardNetwork } from '../engine/run.js';
import { tiedOwners } from '../grid/persistence.js';
import { parseJson } from '../grid/spec.js';
import { activationName } from '../layers/activations.js';
import { coordText } from '../layers/layer.js';
import { loadNetworkFile, readTextFile, saveNetworkFile } from '../io/modelFiles.js';
import { parseCommandArgs, requireOne, stringFlag } from './args.js';
import { isTensorPath, tensorInfoCommand } from './llmCommands.js';

/** loom run <model.json> --input <in.json>: prints {"shape":[...],"data":[...]}. */
export function runCommand(argv: string[], out: (s: string) => void): void {
  const { positionals, values } = parseCommandArgs('run', argv, { input: { type: 'string' }, dtype: { type: 'string' } });
  const modelPath = requireOne(positionals, 'run', 'model.json');
  const inputPath = stringFlag(values, 'input');
  if (!inputPath) throw new UsageError('run: missing --input <in.json> (a file holding {"shape":[...],"data":[...]})');
  const net = loadNetworkFile(modelPath);
  const dtype = stringFlag(values, 'dtype');
  if (dtype !== undefined) net.morph(parseDType(dtype, '--dtype'));
  const input = readTensorFile(inputPath);
  const { output } = forwardNetwork(net, input);
  out(JSON.stringify({ shape: output.shape, data: Array.from(output.data) }));
}

export function readTensorFile(path: string): Tensor {
  const doc = parseJson(readTextFile(path), path) as { shape?: unknown; data?: unknown };
  if (!doc || typeof doc !== 'object') throw new FormatError(path, 'expected an object {"shape":[...],"data":[...]}');
  const { shape, data } = doc;
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    // Not JSON.stringify: a deeply nested value would overflow the stack while building the message.
    const got = Array.isArray(shape) && shape.every((d) => typeof d === 'number') ? `[${shape.join(', ')}]` : describeValue(shape);
    throw new FormatError(path, `shape: expected a non-empty array of positive integers, got ${got}`);
  }
  if (!Array.isArray(data)) throw new FormatError(path, 'data: expected an array of numbers');
  const size = (shape as number[]).reduce((a, b) => a * b, 1);
  if (data.length !== size) throw new FormatError(path, `data: shape [${shape.join(', ')}] needs ${size} numbers, got ${data.length}`);
  const bad = data.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
  if (bad >= 0) throw new FormatError(path, `data[${bad}]: expected a finite number, got ${describeValue(data[bad])}`);
  return Tensor.from(shape as number[], data as number[]);
}

/** loom info <model.json> [--json] */
export function infoCommand(argv: string[], out: (s: string) => void): void {
  const { positionals, values } = parseCommandArgs('info', argv, { json: { type: 'boolean' } });
  const path = requireOne(positionals, 'info', 'model.json');
  if (isTensorPath(path)) return tensorInfoCommand(path, values.json === true, out);
  const net = loadNetworkFile(path);
  const tiedTo = new Map([...tiedOwners(net)].map(([layer, o]) => [layer, { z: o.z, y: o.y, x: o.x, l: o.l }]));
  const layers = [...net.entries()].map(([index, layer]) => ({
    index,
    coordinate: { z: layer.z, y: layer.y, x: layer.x, l: layer.l },
    type: layer.kind.name,
    activation: activationName(layer.activation),
    dtype: dtypeName(layer.dtype),
    parameters: layer.weights?.count ?? 0,
    bytes: layer.weights?.sizeInBytes(layer.dtype) ?? 0,
    disabled: layer.disabled,
    ...(layer.remote ? { remote: layer.remote } : {}),
    ...(tiedTo.has(layer) ? { tiedTo: tiedTo.get(layer) } : {}),
  }));
  const summary = {
    id: net.id,
    grid: { depth: net.depth, rows: net.rows, cols: net.cols, layersPerCell: net.layersPerCell },
    layers,
    parameters: net.parameterCount(),
    bytes: net.sizeInBytes(),
  };
  if (values.json) {
    out(JSON.stringify(summary, null, 2));
    return;
  }
  out(`${net.id}: grid ${net.depth}×${net.rows}×${net.cols}×${net.layersPerCell}, ${layers.length} layers, ${summary.parameters} parameters, ${formatBytes(summary.bytes)}`);
  const rows = [['coord', 'type', 'activation', 'dtype', 'params', 'bytes', 'note']];
  for (const l of layers) {
    const layer = net.cells[l.index]!;
    rows.push([
      coordText(layer),
      l.type,
      l.activation,
      l.dtype,
      String(l.parameters),
      formatBytes(l.bytes),
      [l.disabled ? 'disabled' : '', layer.remote ? `reads ${coordText(layer.remote)}` : '', l.tiedTo ? `tied to ${coordText(l.tiedTo)}` : ''].filter(Boolean).join(', '),
    ]);
  }
  out(table(rows));
}

/** loom morph <model.json> --dtype <name> --out <file> */
export function morphCommand(argv: string[], out: (s: string) => void): void {
  const { positionals, values } = parseCommandArgs('morph', argv, { dtype: { type: 'string' }, out: { type: 'string' } });
  const path = requireOne(positionals, 'morph', 'model.json');
  const dtypeText = stringFlag(values, 'dtype');
  const outPath = stringFlag(values, 'out');
  if (!dtypeText) throw new UsageError('morph: missing --dtype <name> (e.g. int8, int4, float16)');
  if (!outPath) throw new UsageError('morph: missing --out <file>');
  const dtype: DType = parseDType(dtypeText, '--dtype');
  const net = loadNetworkFile(path);
  const before = net.sizeInBytes();
  net.morph(dtype);
  saveNetworkFile(net, outPath);
  out(`morphed ${net.layers().filter((l) => l.weights).length} layers to ${dtypeName(dtype)}: parameters ${formatBytes(before)} → ${formatBytes(net.sizeInBytes())}, written to ${outPath}`);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd()).join('\n');
}
