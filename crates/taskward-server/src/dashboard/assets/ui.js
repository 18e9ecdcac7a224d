// Small helpers shared by the views: building elements, times, numbers, JSON.

/** Builds an element: h('td', {class: 'x', dataset: {field: 'status'}}, 'text', child, …). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Every status the API knows, in its own order. */
export const STATUSES = [
  'PENDING', 'IN_PROGRESS', 'PROCESSING', 'COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED',
  'CANCELED', 'UNKNOWN', 'SKIPPED', 'DRAFT', 'ACTIVE', 'ARCHIVED', 'SUSPENDED',
];

/** Statuses a task does not leave (the API's terminal set; SKIPPED is not in it). */
export const TERMINAL = new Set(['COMPLETED', 'COMPLETED_WITH_ERRORS', 'FAILED', 'CANCELED']);

/** The status as text; its shape (a glyph, from the stylesheet) and colour come from data-status. */
export function statusBadge(status) {
  return h('span', { class: 'status', dataset: { status } }, status);
}

const sameDay = (a, b) => a.toDateString() === b.toDateString();
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

/** A <time> in the viewer's zone, with the exact UTC instant on hover. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, iso);
  const text = sameDay(d, new Date()) ? timeFmt.format(d) : dateTimeFmt.format(d);
  const utc = `${d.toISOString().replace('T', ' ').replace('Z', '')} UTC`;
  return h('time', { datetime: iso, title: utc }, text);
}

/** "3 min 20 s", "2 h 5 min", "40 s". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  let s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const hr = Math.floor(s / 3600); s -= hr * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d} d ${hr} h`;
  if (hr) return `${hr} h ${m} min`;
  if (m) return `${m} min ${s} s`;
  return `${s} s`;
}

/** A progress bar (value = percent) and its words: "42% · 12/s · ETA 3 min". */
export function progress(p) {
  if (!p) return h('span', { class: 'muted' }, '—');
  const bar = h('progress', { max: 100, dataset: { field: 'progress' } });
  const words = h('span');
  setProgress(bar, words, p);
  return h('div', { class: 'progress' }, bar, words);
}

/** Moves the bar and words `progress(p)` made to `p`, touching only what changed. */
export function setProgress(bar, words, p) {
  const percent = Math.min(100, Math.max(0, Number(p.percent) || 0));
  if (!bar.hasAttribute('value') || bar.value !== percent) bar.value = percent;
  const label = `Progress: ${p.completed + (p.failed || 0)} of ${p.total}`;
  if (bar.getAttribute('aria-label') !== label) bar.setAttribute('aria-label', label);
  const parts = [`${percent.toFixed(percent < 10 && percent % 1 ? 1 : 0)}%`];
  if (p.failed) parts.push(`${p.failed} failed`);
  if (p.rate_per_second) parts.push(`${formatRate(p.rate_per_second)}/s`);
  if (p.eta_seconds !== null && p.eta_seconds !== undefined) parts.push(`ETA ${duration(p.eta_seconds)}`);
  if (p.stalled) parts.push('stalled');
  const text = parts.join(' · ');
  if (words.textContent !== text) words.textContent = text;
  const cls = p.stalled ? 'progress-words stalled' : 'progress-words';
  if (words.className !== cls) words.className = cls;
}

function formatRate(r) {
  return r >= 100 ? Math.round(r).toString() : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

/** JSON, indented, or a dash for null. */
export function prettyJson(value) {
  if (value === null || value === undefined) return h('span', { class: 'muted' }, '—');
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/** Announces a message to the user in the page's status line. */
export function say(text) {
  const el = document.getElementById('live');
  el.hidden = !text;
  el.textContent = text || '';
}
