import type { EpochStats } from './train.js';

interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  points: [number, number][];
}

const WIDTH = 920;
const HEIGHT = 380;
const PANEL_W = 400;
const PANEL_H = 260;

/** Loss and accuracy curves per epoch, train and validation, as a standalone SVG document. */
export function renderTrainingSvg(history: EpochStats[], title = 'Training'): string {
  const pick = (f: (s: EpochStats) => number | undefined): [number, number][] =>
    history.filter((s) => f(s) !== undefined && Number.isFinite(f(s))).map((s) => [s.epoch, f(s)!]);
  const loss: Series[] = [
    { name: 'train loss', color: '#2563eb', points: pick((s) => s.loss) },
    { name: 'validation loss', color: '#dc2626', dashed: true, points: pick((s) => s.validationLoss) },
  ].filter((s) => s.points.length > 0);
  const accuracy: Series[] = [
    { name: 'train accuracy', color: '#2563eb', points: pick((s) => (s.accuracy === undefined ? undefined : s.accuracy * 100)) },
    {
      name: 'validation accuracy',
      color: '#dc2626',
      dashed: true,
      points: pick((s) => (s.validationAccuracy === undefined ? undefined : s.validationAccuracy * 100)),
    },
  ].filter((s) => s.points.length > 0);

  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="26" text-anchor="middle" font-size="17" font-weight="600" fill="#111827">${escapeXml(title)}</text>`,
    panel(60, 50, 'Loss', loss, false),
    accuracy.length > 0 ? panel(500, 50, 'Accuracy (%)', accuracy, true) : '',
    '</svg>',
  ];
  return parts.join('\n') + '\n';
}

function panel(x0: number, y0: number, label: string, series: Series[], percent: boolean): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return '';
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs, xMin + 1);
  let yMin = Math.min(...ys);
  let yMax = Math.max(...ys);
  if (percent) yMax = Math.min(100, yMax + 2);
  const pad = (yMax - yMin) * 0.08 || Math.abs(yMax) * 0.1 || 1;
  yMin = percent ? Math.max(0, yMin - pad) : Math.max(0, yMin - pad);
  yMax += percent ? 0 : pad;
  const sx = (x: number) => x0 + ((x - xMin) / (xMax - xMin)) * PANEL_W;
  const sy = (y: number) => y0 + PANEL_H - ((y - yMin) / (yMax - yMin)) * PANEL_H;

  const out: string[] = [`<g>`];
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 - 8}" text-anchor="middle" font-size="13" fill="#374151">${label}</text>`);
  for (const t of niceTicks(yMin, yMax, 5)) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x0 + PANEL_W}" y1="${y}" y2="${y}" stroke="#e5e7eb"/>`);
    out.push(`<text x="${x0 - 6}" y="${y}" dy="4" text-anchor="end" font-size="11" fill="#6b7280">${formatTick(t)}</text>`);
  }
  for (const t of niceTicks(xMin, xMax, Math.min(10, xMax - xMin + 1)).filter(Number.isInteger)) {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${y0 + PANEL_H}" y2="${y0 + PANEL_H + 4}" stroke="#9ca3af"/>`);
    out.push(`<text x="${x}" y="${y0 + PANEL_H + 17}" text-anchor="middle" font-size="11" fill="#6b7280">${t}</text>`);
  }
  out.push(`<rect x="${x0}" y="${y0}" width="${PANEL_W}" height="${PANEL_H}" fill="none" stroke="#9ca3af"/>`);
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${y0 + PANEL_H + 34}" text-anchor="middle" font-size="12" fill="#374151">epoch</text>`);
  series.forEach((s, i) => {
    const d = s.points.map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2.2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const [x, y] of s.points) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    const last = s.points[s.points.length - 1];
    const ly = y0 + PANEL_H + 52;
    const lx = x0 + i * 200;
    out.push(`<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2.2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lx + 28}" y="${ly}" dy="4" font-size="12" fill="#111827">${s.name}: ${formatTick(last[1])}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

function niceTicks(min: number, max: number, count: number): number[] {
  const span = max - min;
  if (!(span > 0)) return [min];
  const raw = span / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return Number(v.toFixed(2)).toString();
  return Number(v.toPrecision(3)).toString();
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}
