// The public API, called as any client calls it: the key in the Authorization header, JSON
// in and out, SPEC's error shape on failure. The key lives in sessionStorage only: it
// survives a reload and navigation within the tab, and is gone with the tab.

const STORAGE = 'taskward.key';

export const key = {
  get: () => sessionStorage.getItem(STORAGE),
  set: (k) => sessionStorage.setItem(STORAGE, k),
  forget: () => sessionStorage.removeItem(STORAGE),
};

/** A refused request: the HTTP status and SPEC's error body, when there is one. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Fired on window when the key stops being accepted (revoked while the page is open). */
export const UNAUTHORIZED = 'taskward:unauthorized';

function headers(k, extra = {}) {
  return { Authorization: `Bearer ${k}`, Accept: 'application/json', ...extra };
}

/** One API call; resolves with the parsed body, rejects with ApiError (or the fetch error). */
export async function call(path, { method = 'GET', body, signal, as = key.get() } = {}) {
  const init = { method, headers: headers(as), signal, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && as === key.get()) window.dispatchEvent(new CustomEvent(UNAUTHORIZED, { detail: err }));
    throw err;
  }
  return data;
}

export const taskPath = (id) => `/v1/tasks/${encodeURIComponent(id)}`;

/**
 * Follows a server-sent event stream with fetch (EventSource cannot send the Authorization
 * header, and a key must never go in a URL). Calls onEvent({id, event, data}) per message;
 * reconnects with Last-Event-ID after a dropped connection, so nothing is missed; stops when
 * `signal` aborts, on a 4xx, or when the server ends a stream that `done()` says is finished.
 * onState('live' | 'reconnecting' | 'ended') tells the page what it is showing.
 */
export async function follow(path, { signal, lastEventId = null, onEvent, onState = () => {}, done = () => false }) {
  let last = lastEventId;
  let backoff = 500;
  while (!signal.aborted) {
    try {
      const extra = { Accept: 'text/event-stream' };
      if (last) extra['Last-Event-ID'] = last;
      const res = await fetch(path, { headers: headers(key.get(), extra), signal, cache: 'no-store' });
      if (!res.ok) {
        const err = new ApiError(res.status, await res.json().catch(() => null));
        if (res.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED, { detail: err }));
        if (res.status < 500 && res.status !== 429) { onState('ended'); throw err; }
        throw Object.assign(err, { retry: true });
      }
      // `resumed`: the server replays what followed `last`; without it, what happened while
      // disconnected is not in the stream, and the caller must read the state afresh.
      onState('live', { resumed: last !== null });
      for await (const msg of messages(res.body, signal)) {
        // Only a stream that carries something proves the connection good: one the server
        // ends at once must not reconnect at full speed.
        backoff = 500;
        if (msg.id) last = msg.id;
        if (msg.data !== undefined) onEvent(msg);
      }
      if (done()) { onState('ended'); return; }
    } catch (e) {
      if (signal.aborted) return;
      if (e instanceof ApiError && !e.retry) throw e;
    }
    onState('reconnecting');
    await sleep(backoff, signal);
    backoff = Math.min(backoff * 2, 10_000);
  }
}

/** The messages of an event-stream body (the WHATWG parsing rules, minus `retry:`). */
async function* messages(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const stop = () => reader.cancel().catch(() => {});
  signal.addEventListener('abort', stop, { once: true });
  let buffer = '';
  let msg = {};
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // A chunk that ends in \r may be half of a \r\n: keep it for the next chunk.
      const cut = buffer.endsWith('\r') ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(cut);
      for (const line of lines) {
        if (line === '') {
          if (msg.data !== undefined || msg.id) yield msg;
          msg = {};
          continue;
        }
        if (line.startsWith(':')) continue; // heartbeat
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') msg.data = msg.data === undefined ? value : `${msg.data}\n${value}`;
        else if (field === 'id') msg.id = value;
        else if (field === 'event') msg.event = value;
      }
    }
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => { clearTimeout(t); signal.removeEventListener('abort', done); resolve(); };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
