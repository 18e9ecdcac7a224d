// The task list: every task of the tenant (active and finished), filters, counts by status,
// cursor paging, and live updates from the tenant's event stream.
//
// Live updates are batched: events only record the newest version of each task, and one
// animation frame applies them all, so a thousand changes a second cost one DOM pass per
// frame instead of a thousand. Counts are re-read at most once a second while events flow.

import { call, follow, taskPath } from './api.js';
import { h, progress, say, setProgress, STATUSES, statusBadge, TERMINAL, time } from './ui.js';

const PAGE_SIZE = 100;
/** Live changes are drawn at most this often: faster than a person reads a moving number, and
 *  a task changing a hundred times a second costs ten redraws of its row, not a hundred. */
const MIN_REDRAW_MS = 100;
/** Rows the first page may grow to with live arrivals before it asks for a refresh instead. */
const MAX_LIVE_ROWS = 500;
const SORTS = [
  ['created_at:desc', 'Newest first'],
  ['created_at:asc', 'Oldest first'],
  ['updated_at:desc', 'Recently updated'],
  ['updated_at:asc', 'Least recently updated'],
];

export function showList(root, ctx) {
  const params = new URLSearchParams(location.search);
  const state = {
    status: params.get('status') || '',
    task_type: params.get('task_type') || '',
    search: params.get('search') || '',
    sort: SORTS.some(([v]) => v === params.get('sort')) ? params.get('sort') : SORTS[0][0],
    cursors: [null], // cursor of each page seen; the last is the current page's
    next: null,
    rows: new Map(), // task_id → { task, tr }
    pending: new Map(), // task_id → newest task from the stream, not yet drawn
    created: new Set(), // ids among `pending` whose creation the stream announced
    early: null, // while a page loads: what the stream sent meanwhile, applied after it
    unseen: 0, // tasks that came to match but are not shown (another page or order)
    unseenIds: new Set(),
    frame: 0,
    loading: null,
  };
  const canKill = ctx.self.scopes.includes('cancel');

  const statusSelect = h('select', { id: 'f-status', dataset: { filter: 'status' } },
    h('option', { value: '' }, 'All statuses'),
    STATUSES.map((s) => h('option', { value: s }, s)));
  const typeSelect = h('select', { id: 'f-type', dataset: { filter: 'task_type' } },
    h('option', { value: '' }, 'All types'));
  const searchInput = h('input', {
    id: 'f-search', type: 'search', dataset: { filter: 'search' }, placeholder: 'id, type or status',
    autocomplete: 'off', spellcheck: 'false',
  });
  const sortSelect = h('select', { id: 'f-sort', dataset: { filter: 'sort' } },
    SORTS.map(([v, label]) => h('option', { value: v }, label)));
  statusSelect.value = state.status;
  searchInput.value = state.search;
  sortSelect.value = state.sort;

  const counts = h('ul', { class: 'counts', 'aria-label': 'Tasks by status' });
  const tbody = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true }, 'No tasks match.');
  const notice = h('button', { type: 'button', class: 'notice', hidden: true });
  const prev = h('button', { type: 'button', disabled: true }, '← Previous');
  const next = h('button', { type: 'button', disabled: true }, 'Next →');
  const pageLabel = h('span', { class: 'muted' });

  root.replaceChildren(
    h('h1', { tabindex: '-1' }, 'Tasks'),
    counts,
    h('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() },
      h('label', { for: 'f-status' }, 'Status'), statusSelect,
      h('label', { for: 'f-type' }, 'Type'), typeSelect,
      h('label', { for: 'f-search' }, 'Search'), searchInput,
      h('label', { for: 'f-sort' }, 'Order'), sortSelect),
    notice,
    h('div', { class: 'table-wrap' },
      h('table', { class: 'tasks' },
        h('caption', { class: 'visually-hidden' }, 'Tasks, ', sortLabel(state.sort)),
        h('colgroup', {}, ['id', 'type', 'status', 'progress', 'created', 'updated', 'actions'].map((c) => h('col', { class: `c-${c}` }))),
        h('thead', {}, h('tr', {},
          ['Task', 'Type', 'Status', 'Progress', 'Created', 'Updated'].map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        tbody)),
    empty,
    h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, pageLabel, next),
  );

  // ---- loading a page ----------------------------------------------------------------

  function query() {
    const body = {};
    if (state.status) body.status = state.status;
    if (state.task_type) body.task_type = state.task_type;
    if (state.search) body.search = state.search;
    const [field, direction] = state.sort.split(':');
    body.sort = { field, direction };
    return body;
  }

  let loaded = false;
  async function load() {
    loaded = true;
    const cursor = state.cursors[state.cursors.length - 1];
    const q = new URLSearchParams({ page_size: PAGE_SIZE });
    if (cursor) q.set('cursor', cursor);
    const mine = (state.loading = {});
    state.early = new Map();
    let page;
    try {
      page = await call(`/v1/tasks/list?${q}`, { method: 'POST', body: query(), signal: ctx.signal });
    } catch (e) {
      if (state.loading === mine) { state.loading = null; state.early = null; }
      if (!ctx.signal.aborted && e.status !== 401) say(`Could not load tasks: ${e.message}`);
      return;
    }
    if (state.loading !== mine) return; // a newer load started meanwhile
    state.loading = null;
    state.rows.clear();
    state.pending.clear();
    state.created.clear();
    state.unseen = 0;
    state.unseenIds.clear();
    state.next = page.pagination.next_cursor;
    tbody.replaceChildren(...page.results.map((t) => {
      const tr = row(t);
      state.rows.set(t.task_id, { task: t, tr });
      return tr;
    }));
    drawChrome();
    performance.mark('taskward:list-ready');
    // Changes that raced the page's query: each is applied only if newer than its row.
    const early = state.early;
    state.early = null;
    for (const [t, created] of early.values()) enqueue(t, created);
  }

  /** Everything around the rows; each write only when its value changed, since a live
   *  page calls this on every redraw. */
  function drawChrome() {
    const set = (el, prop, value) => { if (el[prop] !== value) el[prop] = value; };
    set(empty, 'hidden', state.rows.size > 0);
    set(prev, 'disabled', state.cursors.length <= 1);
    set(next, 'disabled', !state.next);
    set(pageLabel, 'textContent', `Page ${state.cursors.length}`);
    set(notice, 'hidden', state.unseen === 0);
    const n = state.unseen;
    set(notice, 'textContent', `${n} new or changed ${n === 1 ? 'task matches' : 'tasks match'}: show`);
  }

  let countsSeq = 0;
  async function loadCounts() {
    const mine = ++countsSeq;
    let c;
    try {
      c = await call('/v1/tasks/counts', { signal: ctx.signal });
    } catch {
      return;
    }
    if (mine !== countsSeq) return; // a newer answer is coming
    counts.replaceChildren(...STATUSES.filter((s) => c.by_status[s]).map((s) =>
      h('li', {}, h('button', {
        type: 'button', class: 'count', 'aria-pressed': String(state.status === s),
        onclick: () => setFilter('status', state.status === s ? '' : s),
      }, statusBadge(s), h('b', {}, String(c.by_status[s]))))));
    if (!counts.children.length) counts.append(h('li', { class: 'muted' }, 'No tasks yet.'));
    const types = Object.keys(c.by_task_type).sort();
    if (state.task_type && !types.includes(state.task_type)) types.unshift(state.task_type);
    const have = [...typeSelect.options].slice(1).map((o) => o.value);
    if (have.join('\n') !== types.join('\n')) {
      typeSelect.replaceChildren(typeSelect.options[0], ...types.map((t) => h('option', { value: t }, t)));
    }
    typeSelect.value = state.task_type;
  }

  let countsTimer = 0;
  function countsSoon() {
    if (countsTimer) return;
    countsTimer = setTimeout(() => { countsTimer = 0; loadCounts(); }, 1000);
  }
  // A pending redraw is a timer or an animation frame; the ids never collide with a live
  // one of the other kind, so clearing both is safe.
  ctx.signal.addEventListener('abort', () => { clearTimeout(countsTimer); clearTimeout(state.frame); cancelAnimationFrame(state.frame); });

  // ---- one row ---------------------------------------------------------------------

  function row(t) {
    const href = `/dashboard/tasks/${encodeURIComponent(t.task_id)}`;
    return h('tr', { dataset: { taskId: t.task_id } },
      h('td', { class: 'id' }, idCell(t, href)),
      h('td', { dataset: { label: 'Type' } }, t.task_type),
      h('td', { dataset: { field: 'status', label: 'Status' } }, statusBadge(t.status)),
      h('td', { class: 'progress-cell', dataset: { label: 'Progress' } }, progress(t.progress)),
      h('td', { dataset: { label: 'Created' } }, time(t.created_at)),
      h('td', { dataset: { label: 'Updated' } }, time(t.updated_at)),
      h('td', { class: 'actions' }, killButton(t)));
  }

  function idCell(t, href) {
    return [
      h('a', { href, class: 'mono' }, t.task_id),
      t.description ? h('div', { class: 'desc' }, t.description) : null,
      t.error_message ? h('div', { class: 'error-text', dataset: { field: 'error_message' } }, t.error_message) : null,
    ];
  }

  function killButton(t) {
    return canKill && !TERMINAL.has(t.status)
      ? h('button', { type: 'button', class: 'danger small', dataset: { action: 'kill' }, 'aria-label': `Kill task ${t.task_id}`, onclick: () => killTask(t.task_id) }, 'Kill')
      : null;
  }

  /** Brings the row of `was` to `t`, rewriting only the cells whose content changed: a
   *  progress report moves one bar and one line of text, and the table's layout stays put. */
  function update(tr, was, t) {
    const [id, , status, prog, , updated, actions] = tr.cells;
    if (t.description !== was.description || t.error_message !== was.error_message) {
      id.replaceChildren(...idCell(t, id.firstChild.getAttribute('href')).filter(Boolean));
    }
    if (t.status !== was.status) {
      status.replaceChildren(statusBadge(t.status));
      actions.replaceChildren(...[killButton(t)].filter(Boolean));
    }
    const bar = prog.querySelector('progress');
    if (t.progress && bar) setProgress(bar, bar.nextSibling, t.progress);
    else if (t.progress || bar) prog.replaceChildren(progress(t.progress));
    if (t.updated_at !== was.updated_at) {
      // The shown time moves once a second at most: between, only the attributes change,
      // which costs no layout.
      const now = time(t.updated_at);
      const shown = updated.firstChild;
      if (shown && shown.tagName === 'TIME' && shown.textContent === now.textContent) {
        shown.dateTime = now.dateTime;
        shown.title = now.title;
      } else {
        updated.replaceChildren(now);
      }
    }
  }

  async function killTask(id) {
    if (!window.confirm(`Kill task ${id}?\n\nIt becomes CANCELED. Workers see that when they next report.`)) return;
    try {
      await call(taskPath(id), { method: 'DELETE', signal: ctx.signal });
      const t = await call(taskPath(id), { signal: ctx.signal });
      enqueue(t);
      say(`Task ${id} killed.`);
    } catch (e) {
      if (!ctx.signal.aborted && e.status !== 401) say(`Could not kill ${id}: ${e.message}`);
    }
  }

  // ---- live updates ----------------------------------------------------------------

  const filtered = () => Boolean(state.status || state.task_type || state.search);

  function matches(t) {
    if (state.status && t.status !== state.status) return false;
    if (state.task_type && t.task_type !== state.task_type) return false;
    if (state.search) {
      const s = state.search.toLowerCase();
      if (![t.task_id, t.task_type, t.status].some((v) => v.toLowerCase().includes(s))) return false;
    }
    return true;
  }

  function enqueue(t, created) {
    if (state.early) {
      const had = state.early.get(t.task_id);
      if (!had || had[0].version < t.version) state.early.set(t.task_id, [t, created || had?.[1]]);
      return;
    }
    const shown = state.rows.get(t.task_id);
    if (!shown) {
      // Not on the page: only a task that now belongs on it matters. A new one is drawn (or
      // counted); one that changed into the filter is counted, since where it goes depends on
      // the order. Everything else is dropped here, so a busy tenant costs no memory.
      if (!matches(t)) return;
      if (!created) {
        if (filtered() && !state.unseenIds.has(t.task_id) && state.unseenIds.size < MAX_LIVE_ROWS) {
          state.unseenIds.add(t.task_id);
          state.unseen += 1;
          schedule();
        }
        return;
      }
    }
    const seen = state.pending.get(t.task_id) || shown?.task;
    if (seen && seen.version >= t.version) return;
    state.pending.set(t.task_id, t);
    if (created) state.created.add(t.task_id);
    schedule();
  }

  let lastFlush = 0;
  function schedule() {
    if (state.frame) return;
    const wait = lastFlush + MIN_REDRAW_MS - performance.now();
    if (document.hidden) {
      // No animation frames in a hidden tab: a timer keeps the page current (browsers slow
      // it to once a second) and what is pending bounded.
      state.frame = setTimeout(flush, Math.max(wait, MIN_REDRAW_MS));
    } else if (wait <= 0) {
      state.frame = requestAnimationFrame(flush);
    } else {
      state.frame = setTimeout(() => { state.frame = requestAnimationFrame(flush); }, wait);
    }
  }

  function flush() {
    state.frame = 0;
    lastFlush = performance.now();
    // New tasks go on top only where they belong there: the first page, newest first.
    const onTop = state.cursors.length === 1 && state.sort === 'created_at:desc';
    const fresh = [];
    for (const t of state.pending.values()) {
      const have = state.rows.get(t.task_id);
      if (have) {
        if (!matches(t)) {
          have.tr.remove();
          state.rows.delete(t.task_id);
          continue;
        }
        update(have.tr, have.task, t);
        have.task = t;
      } else if (state.created.has(t.task_id) && matches(t)) {
        if (onTop && state.rows.size + fresh.length < MAX_LIVE_ROWS) fresh.push(t);
        else state.unseen += 1;
      }
    }
    state.pending.clear();
    state.created.clear();
    if (fresh.length) {
      fresh.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      const trs = fresh.map((t) => {
        const tr = row(t);
        state.rows.set(t.task_id, { task: t, tr });
        return tr;
      });
      tbody.prepend(...trs);
    }
    drawChrome();
  }

  follow('/v1/events', {
    signal: ctx.signal,
    onEvent: (msg) => {
      try {
        enqueue(JSON.parse(msg.data), msg.event === 'task.created');
      } catch {
        return;
      }
      countsSoon();
    },
    onState: (s, info) => {
      say(s === 'live' ? 'Live' : s === 'reconnecting' ? 'Reconnecting…' : '');
      // The tenant stream starts live, so the page is read once it listens: a change between
      // the two is then in the stream, and so is every one after. After a reconnect that
      // could not resume, it is read again.
      if (s === 'live' && !info.resumed) {
        load();
        loadCounts();
      }
    },
  }).catch((e) => { if (e.status !== 401) say(`Live updates stopped: ${e.message}`); });
  // Should the stream not open soon, the list shows anyway (without live updates yet).
  const fallback = setTimeout(() => { if (!loaded) { load(); loadCounts(); } }, 1500);

  // ---- filters and paging ----------------------------------------------------------

  function setFilter(name, value) {
    state[name] = value;
    if (name === 'status') statusSelect.value = value;
    const q = new URLSearchParams();
    for (const k of ['status', 'task_type', 'search']) if (state[k]) q.set(k, state[k]);
    if (state.sort !== SORTS[0][0]) q.set('sort', state.sort);
    history.replaceState(null, '', `${location.pathname}${q.size ? `?${q}` : ''}`);
    state.cursors = [null];
    load();
    loadCounts();
  }

  statusSelect.addEventListener('change', () => setFilter('status', statusSelect.value));
  typeSelect.addEventListener('change', () => setFilter('task_type', typeSelect.value));
  sortSelect.addEventListener('change', () => setFilter('sort', sortSelect.value));
  let typing = 0;
  searchInput.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => setFilter('search', searchInput.value.trim()), 250);
  });
  next.addEventListener('click', () => { if (state.next) { state.cursors.push(state.next); load(); } });
  prev.addEventListener('click', () => { if (state.cursors.length > 1) { state.cursors.pop(); load(); } });
  notice.addEventListener('click', () => { state.cursors = [null]; load(); });

  ctx.signal.addEventListener('abort', () => { clearTimeout(typing); clearTimeout(fallback); });
}

function sortLabel(sort) {
  return (SORTS.find(([v]) => v === sort) || SORTS[0])[1].toLowerCase();
}
