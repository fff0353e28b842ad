// Small SVG charts, built as DOM with `svg()` (no library, no HTML strings):
//
//   lineChart(series, opts)  series: [{name, points: [{x: 'label', y: number}]}]
//                            (the series share their x labels, by position)
//   barChart(data, opts)     data: [{label, value}]; opts.horizontal for long labels
//
// opts: {title, width = 480, height = 220, format(n) for values, integer (whole-number ticks),
//        seriesName (bars), className}. Both return `<figure class="chart">` holding the
// `<svg role="img" aria-label="summary">` (viewBox + width 100%, so it scales to the
// container; pass the container's width as `width` to keep the text at its real size), a
// legend and `<title>` tooltips on every point and bar. Colours come from CSS classes
// (`chart-series-N` → `--chart-N` variables in admin.css), never inline.

import { h, svg } from './dom.js';

const FONT = 11;

/** Round tick values from 0 to at least `max`. */
export function niceTicks(max, count = 4, integer = false) {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  let step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.ceil(step));
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(+v.toPrecision(12));
  if (ticks.length < 2) ticks.push(step);
  return ticks;
}

const defaultFormat = (n) => new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 2 }).format(n);

function frame(opts, summary, extraClass) {
  const width = Math.round(opts.width || 480);
  const height = Math.round(opts.height || 220);
  const root = svg('svg', {
    class: 'chart-svg', viewBox: `0 0 ${width} ${height}`, width: '100%', role: 'img',
    'aria-label': summary, preserveAspectRatio: 'xMidYMid meet', 'font-size': FONT,
  });
  root.style.maxWidth = '100%';
  const figure = h('figure', { class: ['chart', extraClass, opts.className] },
    opts.title ? h('figcaption', { class: 'chart-title' }, opts.title) : null,
    root);
  return { figure, root, width, height };
}

function legend(names) {
  if (names.length < 2) return null;
  return h('ul', { class: 'chart-legend', 'aria-hidden': 'true' }, names.map((name, i) => h('li', null,
    svg('svg', { class: `chart-swatch chart-series-${i % 8}`, viewBox: '0 0 10 10', width: 10, height: 10 },
      svg('rect', { width: 10, height: 10, rx: 2 })),
    name)));
}

function empty(root, width, height, text = 'No data in this range') {
  root.append(svg('text', { class: 'chart-empty', x: width / 2, y: height / 2, 'text-anchor': 'middle' }, text));
}

function yAxis(root, { left, right, top, bottom, ticks, format, scale, width }) {
  const g = svg('g', { class: 'chart-axis chart-axis-y' });
  for (const t of ticks) {
    const y = scale(t);
    g.append(
      svg('line', { class: 'chart-gridline', x1: left, x2: width - right, y1: y, y2: y }),
      svg('text', { x: left - 6, y: y + FONT / 3, 'text-anchor': 'end' }, format(t)));
  }
  g.append(svg('line', { class: 'chart-axis-line', x1: left, x2: left, y1: top, y2: bottom }));
  root.append(g);
}

/** The indices of n x labels to print so that about `room` fit: evenly spaced, the last included. */
export function labelIndices(n, room) {
  if (n <= 0) return [];
  const every = Math.max(1, Math.ceil(n / Math.max(1, room)));
  const out = [];
  for (let i = 0; i < n; i += every) out.push(i);
  const last = n - 1;
  if (out[out.length - 1] !== last) {
    if (out.length > 1 && last - out[out.length - 1] < every * 0.9) out[out.length - 1] = last;
    else out.push(last);
  }
  return out;
}

function shorten(text, max) {
  const s = String(text);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** A line chart of one or more series over shared x labels. */
export function lineChart(series, opts = {}) {
  const format = opts.format || defaultFormat;
  const labels = series[0]?.points.map((p) => p.x) || [];
  const all = series.flatMap((s) => s.points.map((p) => p.y));
  const max = Math.max(0, ...all);
  const summary = opts.label || summarise(opts.title, labels, series, format);
  const { figure, root, width, height } = frame(opts, summary, 'chart-line');
  if (!labels.length) { empty(root, width, height); return figure; }

  const ticks = niceTicks(max, 4, opts.integer);
  const top = 10; const bottom = height - 24;
  const left = Math.max(34, 8 + Math.max(...ticks.map((t) => format(t).length)) * FONT * 0.62);
  const right = 12;
  const yMax = ticks[ticks.length - 1] || 1;
  const yScale = (v) => bottom - (v / yMax) * (bottom - top);
  const xScale = (i) => (labels.length === 1 ? (left + width - right) / 2 : left + (i / (labels.length - 1)) * (width - right - left));
  yAxis(root, { left, right, top, bottom, ticks, format, scale: yScale, width });

  const xg = svg('g', { class: 'chart-axis chart-axis-x' });
  xg.append(svg('line', { class: 'chart-axis-line', x1: left, x2: width - right, y1: bottom, y2: bottom }));
  const shown = labelIndices(labels.length, Math.floor((width - left - right) / 64));
  for (const i of shown) {
    const anchor = labels.length > 1 && i === 0 ? 'start' : labels.length > 1 && i === labels.length - 1 ? 'end' : 'middle';
    xg.append(svg('text', { x: xScale(i), y: bottom + FONT + 6, 'text-anchor': anchor }, (opts.xFormat || String)(labels[i])));
  }
  root.append(xg);

  series.forEach((s, si) => {
    const g = svg('g', { class: `chart-series chart-series-${si % 8}`, 'data-series': s.name });
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${xScale(i).toFixed(1)},${yScale(p.y).toFixed(1)}`).join(' ');
    if (s.points.length > 1) {
      if (opts.area && series.length === 1) {
        g.append(svg('path', { class: 'chart-area', d: `${d} L${xScale(s.points.length - 1).toFixed(1)},${bottom} L${xScale(0).toFixed(1)},${bottom} Z` }));
      }
      g.append(svg('path', { class: 'chart-path', d }));
    }
    s.points.forEach((p, i) => {
      g.append(svg('circle', { class: 'chart-point', cx: xScale(i).toFixed(1), cy: yScale(p.y).toFixed(1), r: s.points.length > 60 ? 1.5 : 3 },
        svg('title', null, `${(opts.xFormat || String)(p.x)} · ${s.name}: ${format(p.y)}`)));
    });
    root.append(g);
  });

  const lg = legend(series.map((s) => s.name));
  if (lg) figure.append(lg);
  return figure;
}

/** A bar chart of labelled values; `opts.horizontal` puts the labels on the left. */
export function barChart(data, opts = {}) {
  const format = opts.format || defaultFormat;
  const name = opts.seriesName || 'Value';
  const max = Math.max(0, ...data.map((d) => d.value));
  const summary = opts.label || summariseBars(opts.title, data, format);
  const horizontal = opts.horizontal;
  const rowH = 22;
  const height = horizontal ? Math.max(60, 16 + data.length * rowH + 22) : opts.height;
  const { figure, root, width, height: H } = frame({ ...opts, height }, summary, horizontal ? 'chart-bars chart-bars-h' : 'chart-bars');
  if (!data.length) { empty(root, width, H); return figure; }
  const ticks = niceTicks(max, horizontal ? 3 : 4, opts.integer);
  const yMax = ticks[ticks.length - 1] || 1;
  const g = svg('g', { class: 'chart-series chart-series-0', 'data-series': name });

  if (horizontal) {
    const labelChars = Math.min(22, Math.max(...data.map((d) => String(d.label).length)));
    const left = Math.min(width * 0.42, 10 + labelChars * FONT * 0.6);
    const right = 16; const top = 8; const bottom = H - 22;
    const xScale = (v) => left + (v / yMax) * (width - left - right);
    const axis = svg('g', { class: 'chart-axis chart-axis-x' });
    for (const t of ticks) {
      const x = xScale(t);
      axis.append(svg('line', { class: 'chart-gridline', x1: x, x2: x, y1: top, y2: bottom }),
        svg('text', { x, y: bottom + FONT + 6, 'text-anchor': t === 0 ? 'start' : 'middle' }, format(t)));
    }
    axis.append(svg('line', { class: 'chart-axis-line', x1: left, x2: left, y1: top, y2: bottom }));
    root.append(axis);
    const labelsG = svg('g', { class: 'chart-axis chart-axis-y' });
    data.forEach((d, i) => {
      const y = top + i * rowH;
      const w = Math.max(d.value > 0 ? 1.5 : 0, xScale(d.value) - left);
      labelsG.append(svg('text', { x: left - 6, y: y + rowH / 2 + FONT / 3, 'text-anchor': 'end' },
        svg('title', null, String(d.label)), shorten(d.label, 22)));
      g.append(svg('rect', { class: 'chart-bar', x: left, y: y + 3, width: w.toFixed(1), height: rowH - 6, rx: 2 },
        svg('title', null, `${d.label} · ${name}: ${format(d.value)}`)));
      g.append(svg('text', { class: 'chart-value', x: (left + w + 4).toFixed(1), y: y + rowH / 2 + FONT / 3 }, format(d.value)));
    });
    root.append(labelsG, g);
  } else {
    const top = 10; const bottom = H - 24; const right = 8;
    const left = Math.max(34, 8 + Math.max(...ticks.map((t) => format(t).length)) * FONT * 0.62);
    const yScale = (v) => bottom - (v / yMax) * (bottom - top);
    yAxis(root, { left, right, top, bottom, ticks, format, scale: yScale, width });
    const slot = (width - left - right) / data.length;
    const barW = Math.max(1, Math.min(48, slot * 0.72));
    const xg = svg('g', { class: 'chart-axis chart-axis-x' });
    const shown = new Set(labelIndices(data.length, Math.floor((width - left - right) / 64)));
    data.forEach((d, i) => {
      const cx = left + slot * (i + 0.5);
      const y = yScale(d.value);
      g.append(svg('rect', { class: 'chart-bar', x: (cx - barW / 2).toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: Math.max(d.value > 0 ? 1 : 0, bottom - y).toFixed(1), rx: 2 },
        svg('title', null, `${(opts.xFormat || String)(d.label)} · ${name}: ${format(d.value)}`)));
      if (shown.has(i)) {
        xg.append(svg('text', { x: cx.toFixed(1), y: bottom + FONT + 6, 'text-anchor': 'middle' }, shorten((opts.xFormat || String)(d.label), 12)));
      }
    });
    xg.append(svg('line', { class: 'chart-axis-line', x1: left, x2: width - right, y1: bottom, y2: bottom }));
    root.append(xg, g);
  }
  return figure;
}

function summarise(title, labels, series, format) {
  if (!labels.length) return `${title || 'Chart'}: no data.`;
  const parts = series.map((s) => {
    let best = s.points[0];
    let total = 0;
    for (const p of s.points) { total += p.y; if (p.y > best.y) best = p; }
    return `${s.name}: total ${format(total)}, highest ${format(best.y)} on ${best.x}`;
  });
  return `${title || 'Line chart'}, ${labels[0]} to ${labels[labels.length - 1]}. ${parts.join('; ')}.`;
}

function summariseBars(title, data, format) {
  if (!data.length) return `${title || 'Chart'}: no data.`;
  const top = [...data].sort((a, b) => b.value - a.value).slice(0, 5);
  return `${title || 'Bar chart'}: ${top.map((d) => `${d.label} ${format(d.value)}`).join(', ')}${data.length > 5 ? `, and ${data.length - 5} more` : ''}.`;
}
