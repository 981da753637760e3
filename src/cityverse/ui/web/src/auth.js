// Signing in: the person pastes an API key (cvk_…) or an OpenID Connect access token,
// the server's "who am I" checks it, and from then on every request carries it (see
// api.js). It is kept in sessionStorage, so it lasts as long as the browser's session
// of this tab and no longer; it never goes into a URL.
//
// What the server refuses is told here too: a key revoked or expired while signed in
// ends the session with a message, a role that may not do something says so, and a
// city whose data is not public invites the person to sign in.

import { currentCredential, HttpError, onRefused, useCredential, whoami } from './api.js';
import { onLanguage, t } from './i18n.js';

const STORAGE = 'cityverse.credential';
// One word of printable ASCII: what a key and a JWT are, and what a header may carry.
const CREDENTIAL = /^[\x21-\x7e]+$/;

let who = null; // {subject, kind, name, tenant, roles, auth} while signed in
let security = 'on'; // 'off': the server lets everyone in, and there is nothing to sign in to
let changed = () => {};
let notice = null; // {key, args, sticky}
let checking = false; // a credential is being checked: pressing Enter again does nothing

function saved() {
  try {
    const token = sessionStorage.getItem(STORAGE);
    return token && CREDENTIAL.test(token) ? token : null;
  } catch {
    return null; // storage may be disabled: a sign-in then lasts for this page only
  }
}

function keep(token) {
  try {
    if (token) sessionStorage.setItem(STORAGE, token);
    else sessionStorage.removeItem(STORAGE);
  } catch {
    // see saved()
  }
}

// Before any request: the first ones already carry the credential of this session.
useCredential(saved());

const $ = (id) => document.getElementById(id);

/**
 * Wire the header's sign-in control; `onChange()` runs after each sign-in and sign-out
 * (and after the server ended the session), for the page to load its data again. Who
 * the server takes the visitor for is asked once `after` has resolved (the map's data
 * goes first).
 */
export async function initSignIn({ onChange, after = null }) {
  changed = onChange;
  const dialog = $('signin-dialog');
  $('signin').addEventListener('click', openDialog);
  $('notice-signin').addEventListener('click', openDialog);
  $('signout').addEventListener('click', () => end());
  $('signin-cancel').addEventListener('click', () => dialog.close());
  $('notice-close').addEventListener('click', () => showNotice(null));
  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('credential').value);
  });
  dialog.addEventListener('close', () => {
    $('credential').value = '';
    $('signin-error').textContent = '';
  });
  onRefused(refused);
  onLanguage(render);
  render();
  await after;
  const token = currentCredential();
  try {
    const me = await whoami(token);
    security = me.auth === 'off' ? 'off' : 'on';
    if (token && token === currentCredential()) who = me;
  } catch {
    // a refused credential is handled by refused(); without an answer, keep the control
  }
  render();
}

function openDialog() {
  $('signin-error').textContent = '';
  $('signin-dialog').showModal();
  $('credential').focus();
}

/** Check `text` with the server and sign in with it; a refusal changes nothing. */
async function signIn(text) {
  const token = text.trim();
  const error = $('signin-error');
  const say = (words) => {
    delete error.dataset.busy;
    error.textContent = words;
    $('credential').focus();
  };
  if (!token) return say(t('credentialEmpty'));
  if (!CREDENTIAL.test(token)) return say(t('credentialMalformed'));
  if (checking) return;
  checking = true;
  error.dataset.busy = 'true';
  error.textContent = t('signingIn');
  let me;
  try {
    me = await whoami(token);
  } catch (failure) {
    if (failure instanceof HttpError && failure.status === 401) return say(t('credentialRefused', failure.detail));
    return say(t('signInFailed', failure.message));
  } finally {
    checking = false;
  }
  if (!me.roles.some((role) => role !== 'public')) return say(t('noRole'));
  who = me;
  keep(token);
  useCredential(token);
  delete error.dataset.busy;
  $('signin-dialog').close();
  showNotice(null);
  render();
  changed();
}

/** Sign out (or, with `why`, end the session the server no longer accepts). */
function end(why = null) {
  who = null;
  keep(null);
  useCredential(null);
  showNotice(why ? { key: why, sticky: true } : null);
  render();
  changed();
}

function refused(error, token) {
  if (token !== currentCredential()) return; // the answer to a credential no longer in use
  if (!token) {
    // An anonymous caller may not do this: the city is not (all) public.
    if (!notice?.sticky) showNotice({ key: 'notPublic' });
  } else if (error.status === 401) {
    end('sessionEnded');
  } else {
    showNotice({ key: 'forbidden', args: [error.detail || error.message] });
  }
}

/** Say `next` ({key, args, sticky}) in the banner under the header; null: nothing. */
function showNotice(next) {
  notice = next;
  renderNotice();
}

function renderNotice() {
  const box = $('notice');
  box.hidden = !notice;
  box.dataset.kind = notice?.key ?? '';
  $('notice-text').textContent = notice ? t(notice.key, ...(notice.args ?? [])) : '';
  $('notice-signin').hidden = !notice || notice.key === 'forbidden';
}

function render() {
  const account = $('account');
  account.hidden = security === 'off';
  account.dataset.state = who ? 'in' : 'out';
  const name = who ? who.name || who.subject : '';
  const roles = who ? who.roles.filter((role) => role !== 'public').join(', ') : '';
  $('who').hidden = !who;
  $('who').textContent = who ? t('signedInAs', name, roles) : '';
  $('who').title = who ? who.subject : '';
  $('signin').hidden = Boolean(who);
  $('signout').hidden = !who;
  renderNotice();
}
