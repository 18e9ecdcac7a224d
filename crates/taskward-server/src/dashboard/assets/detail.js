// One task: every field, inputs/outputs/additional_data as indented JSON, its history as a
// timeline, and live changes from the task's own event stream until the task ends.

import { ApiError, call, follow, taskPath } from './api.js';
import { h, prettyJson, progress, say, statusBadge, TERMINAL, time } from './ui.js';

export async function showDetail(root, id, ctx) {
  const canKill = ctx.self.scopes.includes('cancel');
  root.replaceChildren(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/dashboard/' }, 'Tasks'), ' / ', h('span', { class: 'mono' }, id)),
    h('p', { class: 'muted' }, 'Loading…'));

  let task;
  let history;
  try {
    // History first, then the task: the task is then at least as new as the history, and the
    // stream below replays whatever followed the history's last event.
    history = await call(`${taskPath(id)}/history`, { signal: ctx.signal });
    task = await call(taskPath(id), { signal: ctx.signal });
  } catch (e) {
    if (ctx.signal.aborted || e.status === 401) return;
    root.lastChild.replaceWith(e instanceof ApiError && e.status === 404
      ? h('p', { class: 'empty' }, `No task ${id} here: it never existed in this tenant, or it has passed retention.`)
      : h('p', { class: 'error-text' }, `Could not load the task: ${e.message}`));
    return;
  }

  const fields = h('div');
  const timeline = h('ol', { class: 'timeline', dataset: { field: 'history' } });
  let previousStatus = null;
  const shown = new Set();
  for (const ev of history.events) {
    timeline.append(eventItem(ev));
    shown.add(ev.event_id);
    previousStatus = ev.status;
  }
  const lastEventId = history.events.at(-1)?.event_id ?? null;

  root.replaceChildren(root.firstChild, h('div', { class: 'detail' }, fields,
    h('section', { class: 'history', 'aria-labelledby': 'h-history' }, h('h2', { id: 'h-history' }, 'History'), timeline)));

  function draw() {
    // Redrawn on every change: keep the keyboard where it was.
    const focusedKill = document.activeElement?.dataset?.action === 'kill';
    const kill = canKill && !TERMINAL.has(task.status)
      ? h('button', { type: 'button', class: 'danger', dataset: { action: 'kill' }, onclick: killTask }, 'Kill task')
      : null;
    fields.replaceChildren(
      h('div', { class: 'title' }, h('h1', { class: 'mono', tabindex: '-1' }, task.task_id), kill),
      h('dl', { class: 'fields' },
        item('Type', 'task_type', task.task_type),
        item('Status', 'status', statusBadge(task.status)),
        item('Progress', 'progress-detail', progress(task.progress)),
        item('Description', 'description', task.description ?? h('span', { class: 'muted' }, '—')),
        task.error_message ? item('Error', 'error_message', h('span', { class: 'error-text' }, task.error_message)) : null,
        item('Version', 'version', String(task.version)),
        item('Created', 'created_at', time(task.created_at)),
        item('Updated', 'updated_at', time(task.updated_at)),
        item('Started', 'started_at', time(task.started_at)),
        item('Finished', 'finished_at', time(task.finished_at))),
      h('section', { 'aria-labelledby': 'h-inputs' }, h('h2', { id: 'h-inputs' }, 'Inputs'), block('inputs', task.inputs)),
      h('section', { 'aria-labelledby': 'h-outputs' }, h('h2', { id: 'h-outputs' }, 'Outputs'), block('outputs', task.outputs)),
      h('section', { 'aria-labelledby': 'h-additional' }, h('h2', { id: 'h-additional' }, 'Additional data'), block('additional_data', task.additional_data)));
    if (focusedKill) (kill || fields.querySelector('h1')).focus();
  }
  draw();

  async function killTask() {
    if (!window.confirm(`Kill task ${task.task_id}?\n\nIt becomes CANCELED. Workers see that when they next report.`)) return;
    try {
      await call(taskPath(id), { method: 'DELETE', signal: ctx.signal });
      const now = await call(taskPath(id), { signal: ctx.signal });
      if (now.version > task.version) { task = now; draw(); }
      say(`Task ${id} killed.`);
    } catch (e) {
      if (!ctx.signal.aborted && e.status !== 401) say(`Could not kill the task: ${e.message}`);
    }
  }

  const lastShown = history.events.at(-1);
  if (lastShown && TERMINAL.has(lastShown.status)) return;
  // From the last event the history showed: the server replays anything after it (the task
  // may have ended meanwhile), then follows live, and ends the stream after the terminal event.
  let ended = false;
  follow(`${taskPath(id)}/events`, {
    signal: ctx.signal,
    lastEventId,
    onEvent: (msg) => {
      let t;
      try { t = JSON.parse(msg.data); } catch { return; }
      if (TERMINAL.has(t.status)) ended = true;
      if (shown.has(t.event_id)) return;
      shown.add(t.event_id);
      timeline.append(eventItem({
        event_id: t.event_id, type: t.type, version: t.version, at: t.updated_at,
        status: t.status, previous_status: previousStatus, progress: t.progress,
      }));
      previousStatus = t.status;
      if (t.version > task.version) {
        delete t.event_id;
        delete t.type;
        task = t;
        draw();
      }
    },
    onState: (s) => say(s === 'live' ? 'Live' : s === 'reconnecting' ? 'Reconnecting…' : ''),
    done: () => ended,
  }).catch((e) => { if (e.status !== 401) say(`Live updates stopped: ${e.message}`); });
}

function item(label, field, value) {
  return h('div', { class: 'field' }, h('dt', {}, label), h('dd', { dataset: { field } }, value));
}

function block(field, value) {
  const el = prettyJson(value);
  el.dataset.field = field;
  return el;
}

function eventItem(ev) {
  const change = ev.previous_status && ev.previous_status !== ev.status
    ? [statusBadge(ev.previous_status), ' → ', statusBadge(ev.status)]
    : [statusBadge(ev.status)];
  const p = ev.progress ? ` · ${Math.round(ev.progress.percent)}% (${ev.progress.completed + (ev.progress.failed || 0)}/${ev.progress.total})` : '';
  return h('li', { dataset: { eventId: ev.event_id, type: ev.type } },
    time(ev.at), ' ', h('strong', {}, ev.type), ' ', ...change, p, h('span', { class: 'muted' }, ` · v${ev.version}`));
}
