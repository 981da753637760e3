// The inspector, the alerts panel and the search box.

import { entity, mergeEntity, shortName } from './api.js';
import { t } from './i18n.js';
import { entities, entitiesOfLayer, shownProperties, updateAttrs } from './state.js';

/** A DOM element: el('p', {class: 'x'}, 'text', child...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function display(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

// ---------------------------------------------------------------- inspector

let current = null; // { id, typeIri, body }
let asked = 0; // each entity asked for; a later one (or closing) makes an answer moot
let chartAttr = () => {};
let flyTo = () => {};

export function initInspector({ onChart, onFly }) {
  chartAttr = onChart;
  flyTo = onFly;
  window.addEventListener('hashchange', openFromHash);
}

/** Empty the inspector (what it showed may no longer be the person's to see). */
export function closeInspector() {
  current = null;
  asked += 1;
  document.getElementById('inspector').replaceChildren(
    el('p', { class: 'muted', 'data-i18n': 'pickEntity' }, t('pickEntity')));
}

/** Open the entity named in the page's hash (#entity=urn:...), if any. */
export function openFromHash() {
  const match = /^#entity=(.+)$/.exec(window.location.hash);
  if (match) inspect(decodeURIComponent(match[1]));
}

/** Show every attribute of an entity; relationships link to their entities. */
export async function inspect(id) {
  const box = document.getElementById('inspector');
  const known = entities.get(id);
  box.replaceChildren(el('p', { class: 'muted' }, t('loading')));
  const mine = ++asked;
  let body;
  try {
    body = await entity(id, known?.typeIri);
  } catch (error) {
    if (mine !== asked) return;
    box.replaceChildren(el('p', { class: 'error', role: 'alert' }, t('failed', error.message)));
    return;
  }
  if (mine !== asked) return;
  current = { id, typeIri: known?.typeIri ?? body.type, body };
  renderInspector();
  if (known?.feature.geometry) flyTo(known.feature.geometry);
}

export function renderInspector() {
  const box = document.getElementById('inspector');
  if (!current) return;
  const { id, body } = current;
  const past = shownProperties(id);
  const rows = [];
  for (const [name, raw] of Object.entries(body)) {
    if (name === 'id' || name === 'type' || name === '@context') continue;
    for (const attr of Array.isArray(raw) ? raw : [raw]) rows.push(attributeRow(name, attr, past));
  }
  box.replaceChildren(
    el('div', { class: 'entity-head' },
      el('strong', { class: 'entity-type' }, shortName(Array.isArray(body.type) ? body.type[0] : body.type)),
      el('code', { class: 'entity-id', 'data-testid': 'inspector-id' }, id)),
    el('table', { class: 'attrs' },
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col' }, t('attribute')),
        el('th', { scope: 'col' }, t('value')),
        el('th', { scope: 'col' }, t('observedAt')),
        el('th', { scope: 'col' }, el('span', { class: 'visually-hidden' }, t('chartIt'))))),
      el('tbody', {}, rows)),
  );
}

function attributeRow(name, attr, past) {
  const label = shortName(name);
  let value;
  if (attr && attr.type === 'Relationship') {
    const targets = Array.isArray(attr.object) ? attr.object : [attr.object];
    value = targets.map((target) =>
      el('a', { href: `#entity=${encodeURIComponent(target)}`, class: 'rel', 'aria-label': t('open', target) }, target));
  } else if (attr && typeof attr === 'object' && 'value' in attr) {
    // While replaying, the shown value is the historical one (default instance only).
    const replayed = past && !attr.datasetId && label in past ? past[label] : attr.value;
    value = display(attr.type === 'GeoProperty' ? attr.value?.type : replayed);
  } else if (attr && typeof attr === 'object' && 'languageMap' in attr) {
    value = display(attr.languageMap);
  } else {
    value = display(attr?.value ?? attr);
  }
  const numeric = attr && attr.type === 'Property' && typeof attr.value === 'number';
  return el('tr', { 'data-attr': label },
    el('th', { scope: 'row' }, label, attr?.datasetId ? el('small', { class: 'muted' }, ` ${shortName(attr.datasetId)}`) : null),
    el('td', { class: 'value' }, value),
    el('td', { class: 'muted' }, attr?.observedAt ?? ''),
    el('td', {}, numeric && !attr.datasetId
      ? el('button', { type: 'button', class: 'btn small', 'aria-label': t('chartOf', label),
        onclick: () => chartAttr(current.id, current.typeIri, name) }, t('chartIt'))
      : null));
}

export function currentEntity() {
  return current;
}

// ---------------------------------------------------------------- alerts

const CLOSED = new Set(['closed', 'solved', 'resolved']);

/** The alerts panel: open alerts, newest first, each to acknowledge or assign. */
export function renderAlerts() {
  const list = document.getElementById('alerts');
  const alerts = entitiesOfLayer('alerts')
    .map((stored) => stored.feature.properties)
    .filter((p) => !CLOSED.has(String(p.status)))
    .sort((a, b) => String(b.dateIssued ?? '').localeCompare(String(a.dateIssued ?? '')));
  document.getElementById('alert-count').textContent = String(alerts.length);
  if (!alerts.length) {
    list.replaceChildren(el('li', { class: 'muted' }, t('noAlerts')));
    return;
  }
  // A live change redraws the list: what a person is typing, and where, stays.
  const focused = list.contains(document.activeElement) ? document.activeElement.id : null;
  list.replaceChildren(...alerts.slice(0, 100).map(alertItem));
  const again = focused ? document.getElementById(focused) : null;
  if (again) {
    again.focus();
    if (typeof again.value === 'string') again.setSelectionRange(again.value.length, again.value.length);
  }
}

const drafts = new Map(); // alert id -> assignee being typed
const notes = new Map(); // alert id -> what became of its last change ("Saved")

// A JsonProperty comes as {json: value} in keyValues.
function json(value) {
  return value && typeof value === 'object' && !Array.isArray(value) && 'json' in value ? value.json : value;
}

/** The pipes a leak alert's localisation ranks first (those that share most of its score). */
function candidates(p) {
  const ranked = json(p.leakCandidates);
  if (!Array.isArray(ranked)) return null;
  const best = ranked.filter((c) => c && typeof c.score === 'number' && c.score >= 0.05).slice(0, 3);
  if (!best.length) return null;
  return el('div', { class: 'candidates' }, `${t('candidates')}: `,
    best.flatMap((c, i) => [i ? ', ' : '',
      el('a', { href: `#entity=${encodeURIComponent(c.id ?? c.pipe)}`, 'data-pipe': c.pipe }, c.pipe),
      ` (${Math.round(c.score * 100)} %)`]));
}

function alertItem(p) {
  const inputId = `assignee-${p.id}`;
  const message = el('span', { class: 'saved', role: 'status' }, notes.get(p.id) ?? '');
  const input = el('input', { id: inputId, type: 'text', value: drafts.get(p.id) ?? p.assignee ?? '', size: 10,
    oninput: (event) => drafts.set(p.id, event.target.value) });
  const where = p.searchArea ?? entities.get(p.id)?.feature.geometry;
  return el('li', { class: `alert sev-${p.severity ?? 'info'}`, 'data-id': p.id },
    el('div', {},
      el('a', { href: `#entity=${encodeURIComponent(p.id)}` }, p.description || p.subCategory || p.category || p.id)),
    candidates(p),
    el('div', { class: 'muted' },
      `${t('severity')}: ${p.severity ?? '–'} · ${t('status')}: `,
      el('span', { class: 'alert-status' }, p.status ?? '–'),
      p.dateIssued ? ` · ${p.dateIssued}` : ''),
    el('div', { class: 'alert-actions' },
      where && where.type ? el('button', { type: 'button', class: 'btn small', onclick: () => flyTo(where) }, t('show')) : null,
      el('button', { type: 'button', class: 'btn small', onclick: () => save(p, { status: 'acknowledged' }, message) },
        t('acknowledge')),
      el('label', { for: inputId, class: 'visually-hidden' }, t('assignee')),
      input,
      el('button', { type: 'button', class: 'btn small', onclick: () => {
        drafts.delete(p.id);
        save(p, { assignee: input.value.trim() }, message);
      } }, t('assign')),
      message));
}

async function save(props, changes, message) {
  const stored = entities.get(props.id);
  if (!stored) return;
  const attrs = {};
  for (const [name, value] of Object.entries(changes)) {
    if (value === '') continue;
    attrs[name] = { type: 'Property', value };
  }
  const say = (text) => {
    notes.set(props.id, text);
    // The list may have been drawn again meanwhile: say it where the alert is now.
    const shown = document.querySelector(`#alerts li[data-id="${CSS.escape(props.id)}"] .saved`);
    for (const node of new Set([message, shown])) if (node) node.textContent = text;
  };
  try {
    await mergeEntity(props.id, stored.typeIri, attrs);
  } catch (error) {
    say(t('failed', error.message));
    return;
  }
  say(t('saved'));
  updateAttrs(props.id, changes);
}

// ---------------------------------------------------------------- search

export function initSearch() {
  const input = document.getElementById('search');
  const list = document.getElementById('search-results');
  let active = -1;
  let results = [];

  function close() {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  }
  function choose(index) {
    const hit = results[index];
    if (!hit) return;
    close();
    window.location.hash = `entity=${encodeURIComponent(hit.id)}`;
  }
  function highlight(index) {
    active = index;
    for (const [i, item] of [...list.children].entries()) item.setAttribute('aria-selected', String(i === index));
    if (index >= 0) input.setAttribute('aria-activedescendant', `hit-${index}`);
  }
  input.addEventListener('input', () => {
    results = search(input.value);
    list.replaceChildren(...(results.length
      ? results.map((hit, i) => el('li', { id: `hit-${i}`, role: 'option', 'aria-selected': 'false',
        onmousedown: (e) => { e.preventDefault(); choose(i); } },
        el('span', { class: 'hit-name' }, hit.name || shortName(hit.id)), ' ', el('small', { class: 'muted' }, `${hit.type} · ${hit.id}`)))
      : [el('li', { class: 'muted', role: 'option', 'aria-disabled': 'true' }, t('noResults'))]));
    list.hidden = !input.value.trim();
    input.setAttribute('aria-expanded', String(!list.hidden));
    active = -1;
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      highlight(Math.min(active + 1, results.length - 1));
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      highlight(Math.max(active - 1, 0));
    } else if (event.key === 'Enter') {
      event.preventDefault();
      choose(active >= 0 ? active : 0);
    } else if (event.key === 'Escape') {
      close();
    }
  });
  input.addEventListener('blur', () => setTimeout(close, 150));
}

/** Entities whose id, name or type matches the words typed (at most 20). */
export function search(text) {
  const words = text.trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [];
  const hits = [];
  for (const stored of entities.values()) {
    const p = stored.feature.properties;
    const hay = `${stored.id} ${p.name ?? ''} ${p.type}`.toLowerCase();
    if (words.every((w) => hay.includes(w))) {
      hits.push({ id: stored.id, name: typeof p.name === 'string' ? p.name : '', type: p.type });
      if (hits.length >= 20) break;
    }
  }
  return hits;
}
