// The dashboard's entry: sign-in, sign-out and which view the address shows.
//   /dashboard/                 the task list (list.js)
//   /dashboard/tasks/<task_id>  one task (detail.js)
// Links inside the page change the address with the History API, so the back button and
// reloads work, and the key (in sessionStorage) carries over without a new sign-in.

import { call, key, UNAUTHORIZED } from './api.js';
import { showList } from './list.js';
import { showDetail } from './detail.js';
import { h, say } from './ui.js';

const BASE = '/dashboard/';
const $ = (id) => document.getElementById(id);

/** What the signed-in key may do: GET /v1/keys/self. */
let self = null;
/** Aborts whatever the current view is fetching or following. */
let viewAbort = null;

function showSignIn(message) {
  viewAbort?.abort();
  self = null;
  $('view').replaceChildren();
  $('whoami').hidden = true;
  $('sign-out').hidden = true;
  say('');
  const section = $('sign-in');
  section.hidden = false;
  section.querySelector('[role="alert"]')?.remove();
  if (message) section.querySelector('form').append(h('p', { role: 'alert', class: 'alert' }, message));
  const input = $('key');
  input.value = '';
  input.focus();
}

/** A key is accepted when GET /v1/keys/self answers for it; the page needs scope read. */
/** Whether the last failed sign-in was the server refusing the key (not a network error). */
let signInRefused = false;

async function signIn(candidate) {
  signInRefused = false;
  if (!candidate) return 'Enter an API key: sk_live_… or sk_test_…';
  try {
    const me = await call('/v1/keys/self', { as: candidate });
    if (!me.scopes.includes('read')) {
      return `This key (${me.key_id}) lacks scope read, which the dashboard needs to show tasks.`;
    }
    key.set(candidate);
    self = me;
    return null;
  } catch (e) {
    signInRefused = e.status === 401;
    if (e.status === 401) return `This key was not accepted: ${e.message} Check it, or ask for a new one (taskward keys create).`;
    if (e.status === 429) return 'Too many attempts with this key: wait a few seconds, then try again.';
    return `Could not sign in: ${e.message}`;
  }
}

function signedIn() {
  $('sign-in').hidden = true;
  $('sign-in').querySelector('[role="alert"]')?.remove();
  const who = $('whoami');
  who.hidden = false;
  who.textContent = `${self.org} · ${self.mode}`;
  who.title = `key ${self.key_id}; scopes: ${self.scopes.join(', ')}`;
  $('sign-out').hidden = false;
  route();
}

function route() {
  if (!self) return;
  viewAbort?.abort();
  viewAbort = new AbortController();
  const ctx = { self, signal: viewAbort.signal, navigate };
  const path = location.pathname;
  const view = $('view');
  if (path.startsWith(`${BASE}tasks/`)) {
    let id;
    try {
      id = decodeURIComponent(path.slice(`${BASE}tasks/`.length));
    } catch {
      id = path.slice(`${BASE}tasks/`.length);
    }
    showDetail(view, id, ctx);
  } else {
    showList(view, ctx);
  }
}

function navigate(href) {
  history.pushState(null, '', href);
  route();
  $('main').focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

$('sign-in-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const button = e.target.querySelector('button');
  button.disabled = true;
  const error = await signIn($('key').value.trim());
  button.disabled = false;
  if (error) showSignIn(error);
  else signedIn();
});

$('sign-out').addEventListener('click', () => {
  key.forget();
  showSignIn();
});

window.addEventListener(UNAUTHORIZED, () => {
  if (!self) return;
  key.forget();
  showSignIn('Your key is no longer accepted (revoked or expired). Sign in with another key.');
});

// In-page links: the same page, another view.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith(BASE) || a.target) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);

// A key from earlier in this tab signs in again on reload.
const kept = key.get();
if (kept) {
  const error = await signIn(kept);
  if (!error) {
    signedIn();
  } else {
    // Forget the key only when the server refused it; a server that was briefly unreachable
    // or busy is no reason to sign the tab out.
    if (signInRefused) key.forget();
    showSignIn(error);
  }
} else {
  showSignIn();
}
