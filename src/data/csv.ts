/**
 * CSV datasets: one sample per line, numeric features, then the label or regression target in the
 * last column. parseCsv is pure; readCsv adds the file read.
 */
import { describeValue, FormatError } from '../core/errors.js';
import { asClassLabels, classCount, type Dataset } from './dataset.js';
import { readDataText } from './files.js';

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export function readCsv(path: string): Dataset {
  return parseCsv(readDataText(path), path);
}

/**
 * The separator is ',' unless the first line uses tab or ';' (tab and ';' win over ',' so that
 * ';'-separated files with decimal commas fail on the cell, not on a baffling column count).
 * A first line with no numeric cell is a header. Labels that are all integers in
 * [0, MAX_CLASS_LABEL] mean classification, anything else regression with target width 1.
 */
export function parseCsv(text: string, source = 'csv'): Dataset {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[0].charCodeAt(0) === 0xfeff) lines[0] = lines[0].slice(1);
  for (let i = 0; i < lines.length; i++) if (lines[i].endsWith('\r')) lines[i] = lines[i].slice(0, -1);

  let first = 0;
  while (first < lines.length && lines[first].trim() === '') first++;
  if (first === lines.length) throw new FormatError(source, 'empty file');

  const firstLine = lines[first];
  const sep = firstLine.includes('\t') ? '\t' : firstLine.includes(';') ? ';' : ',';
  const firstCells = splitCells(firstLine, sep);
  const columns = firstCells.length;
  if (columns < 2) {
    throw new FormatError(source, `line ${first + 1}: only 1 column (separator ${describeValue(sep)}); expected feature columns followed by a label column`);
  }
  const hasHeader = firstCells.every((c) => !NUMBER.test(c));

  // Count rows first so the feature matrix is allocated once, at its final size.
  const dataStart = hasHeader ? first + 1 : first;
  let count = 0;
  for (let i = dataStart; i < lines.length; i++) if (lines[i].trim() !== '') count++;
  if (count === 0) throw new FormatError(source, `no data rows after the header on line ${first + 1}`);

  const features = columns - 1;
  const inputs = new Float32Array(count * features);
  const last = new Float64Array(count);
  let row = 0;
  for (let i = dataStart; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const cells = splitCells(line, sep);
    if (cells.length !== columns) {
      throw new FormatError(source, `line ${i + 1}: expected ${columns} columns (as on line ${first + 1}), got ${cells.length}`);
    }
    for (let c = 0; c < columns; c++) {
      const cell = cells[c];
      if (!NUMBER.test(cell)) throw new FormatError(source, `line ${i + 1}, column ${c + 1}: expected a number, got ${describeValue(cell)}`);
      const v = Number(cell);
      if (!Number.isFinite(Math.fround(v))) throw new FormatError(source, `line ${i + 1}, column ${c + 1}: ${cell} is out of float32 range`);
      if (c < features) inputs[row * features + c] = v;
      else last[row] = v;
    }
    row++;
  }

  const labels = asClassLabels(last);
  if (labels) return { count, inputs, inputShape: [features], labels, targetWidth: classCount(labels), source };
  return { count, inputs, inputShape: [features], targets: Float32Array.from(last), targetWidth: 1, source };
}

/** Splits on `sep`, honouring double quotes (headers are often quoted), and trims each cell. */
function splitCells(line: string, sep: string): string[] {
  if (!line.includes('"')) return line.split(sep).map((c) => c.trim());
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === sep) {
      cells.push(cell.trim());
      cell = '';
    } else cell += ch;
  }
  cells.push(cell.trim());
  return cells;
}
