// The dashboard's only way to the server: the standard NGSI-LD API, plus the optional
// live stream, water twin and "who am I" endpoints, each a single constant here. Every
// request carries the signed-in person's credential (`useCredential`) in its
// Authorization header, never in its URL.

import { eventStream } from './sse.js';

export const NGSI = '/ngsi-ld/v1';
/** The live stream of entity changes (Server-Sent Events; `type` and `options` select). */
export const STREAM_URL = '/cityverse/v1/stream';
/** The water twin's API (see docs/water.md). */
export const WATER_API = '/cityverse/v1/water';
/** Who the server takes the caller for, and its roles (see docs/security.md). */
export const WHOAMI_URL = '/cityverse/v1/security/whoami';

const PAGE = 1000;
const PARALLEL = 4;
const CONTEXT_REL = 'http://www.w3.org/ns/json-ld#context';
const SDM = 'https://smartdatamodels.org/dataModel.';
// Subjects whose @context the server bundles: naming them never leaves the server.
const BUNDLED_SUBJECTS = new Set([
  'Environment', 'Parking', 'Streetlighting', 'WasteManagement', 'WaterDistribution',
  'WaterDistributionManagementEPANET', 'Weather',
]);

/** The last segment of an IRI: what a person calls the type or attribute. */
export function shortName(iri) {
  if (typeof iri !== 'string') return String(iri);
  const cut = Math.max(iri.lastIndexOf('/'), iri.lastIndexOf('#'));
  return cut >= 0 && /^[a-z]+:/i.test(iri) ? iri.slice(cut + 1) : iri;
}

/** The bundled Smart Data Models @context for a type IRI, or null (core context). */
export function contextFor(typeIri) {
  if (typeof typeIri !== 'string' || !typeIri.startsWith(SDM)) return null;
  const subject = typeIri.slice(SDM.length).split('/')[0];
  if (!BUNDLED_SUBJECTS.has(subject)) return null;
  return `https://smart-data-models.github.io/dataModel.${subject}/context.jsonld`;
}

function linkHeader(context) {
  return `<${context}>; rel="${CONTEXT_REL}"; type="application/ld+json"`;
}

/** Headers for a request about entities of `typeIri`. */
export function headersFor(typeIri, accept = 'application/json') {
  const headers = { Accept: accept };
  const ctx = contextFor(typeIri);
  if (ctx) headers.Link = linkHeader(ctx);
  return headers;
}

export class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

let credential = null;
const refusalListeners = [];

/** Send `token` (an API key or an OIDC access token) with every request from now on;
 * null: call anonymously. */
export function useCredential(token) {
  credential = token || null;
}

/** The credential requests carry now, or null. */
export function currentCredential() {
  return credential;
}

function authorization(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * Run `fn(error, token)` whenever the server answers 401 or 403: `token` is the
 * credential the refused request carried (null: none), so that a listener can tell a
 * refusal of the credential in use from a late answer to one used before.
 */
export function onRefused(fn) {
  refusalListeners.push(fn);
}

async function problemDetail(response) {
  try {
    const problem = await response.json();
    return problem.detail || problem.title || response.statusText;
  } catch {
    return response.statusText;
  }
}

/** A non-2xx answer as an HttpError; the listeners hear of refusals. */
async function failure(response, token) {
  const error = new HttpError(response.status, await problemDetail(response));
  if (response.status === 401 || response.status === 403) {
    for (const fn of refusalListeners) fn(error, token);
  }
  return error;
}

/** fetch() with the credential in use (or `token`); a non-2xx answer throws HttpError. */
export async function request(url, init = {}, token = credential) {
  const response = await fetch(url, { ...init, headers: { ...init.headers, ...authorization(token) } });
  if (!response.ok) throw await failure(response, token);
  return response;
}

const early = new Map(); // key -> {token, answer, follow}: asked for by boot.js

/**
 * Ask now for what the page will take later with `takeEarly(key, onPage)`: boot.js
 * starts the first requests while the rest of the dashboard's code is still being read.
 * `ask(onPage)` returns a promise and calls `onPage(page)` with each part of the answer
 * as it comes; the parts that came before `takeEarly` are kept for it.
 */
export function askEarly(key, ask) {
  const kept = [];
  let deliver = (page) => kept.push(page);
  const answer = ask((page) => deliver(page));
  answer.catch(() => {}); // a failure is the taker's to handle, or nobody's
  const follow = (onPage) => {
    for (const page of kept.splice(0)) onPage(page);
    deliver = onPage;
  };
  early.set(key, { token: credential, answer, follow });
}

/** The answer asked for early under `key`, once, its parts given to `onPage`; null when
 * there is none, or when it was asked for with another credential than the one in use. */
export function takeEarly(key, onPage = () => {}) {
  const asked = early.get(key);
  early.delete(key);
  if (!asked || asked.token !== credential) return null;
  asked.follow(onPage);
  return asked.answer;
}

/** Fetch JSON; a non-2xx answer throws HttpError with the ProblemDetails' detail. */
export async function getJson(url, headers = {}, init = {}) {
  const response = await request(url, { ...init, headers: { Accept: 'application/json', ...headers } });
  if (response.status === 204) return { body: null, response };
  return { body: await response.json(), response };
}

/** Who the server takes the bearer of `token` for: {subject, kind, name, tenant, roles, auth}. */
export async function whoami(token = credential) {
  const response = await request(WHOAMI_URL, { headers: { Accept: 'application/json' } }, token);
  return response.json();
}

/**
 * Follow the live stream (`query`: its URL parameters) with the credential in use, in
 * its Authorization header. `onFail(status)`: the server would not open it (a refusal
 * is also told to the `onRefused` listeners). Returns {close()}.
 */
export function liveStream(query, { onOpen, onEvent, onDrop, onFail }) {
  const token = credential;
  return eventStream(`${STREAM_URL}?${query}`, {
    headers: () => authorization(token),
    onOpen,
    onEvent,
    onDrop,
    onFail: async (response) => {
      if (response.ok) response.body?.cancel();
      else await failure(response, token);
      onFail?.(response.status);
    },
  });
}

/** The entity types the twin holds: [{iri, name, attributes}] (GS CIM 009 5.7.6). */
export async function entityTypes() {
  const { body } = await getJson(`${NGSI}/types?details=true`);
  return body.map((entry) => ({
    iri: entry.id,
    name: shortName(entry.typeName || entry.id),
    attributes: Array.isArray(entry.attributeNames) ? entry.attributeNames : null,
  }));
}

/**
 * The names to ask for (`attrs`) to get only the attributes whose short names are in
 * `wanted` (and the location), from the names a type's entities have; null: ask for all.
 */
export function attrsFor(typeIri, attributes, wanted) {
  if (!wanted || !attributes) return null;
  // A short name is a core term: with a type's own @context in the Link header it might
  // name another attribute, so only full IRIs are sent then.
  const linked = contextFor(typeIri) !== null;
  const names = attributes.filter((name) => wanted.includes(shortName(name))
    && name !== 'location' && (!linked || name.includes(':')));
  return ['location', ...names];
}

/** Every entity of one type as GeoJSON features: see `featuresOfTypes`. */
export function featuresOfType(typeIri, onPage, attrs = null) {
  return featuresOfTypes([typeIri], onPage, attrs);
}

/** Every entity of any of `typeIris` as GeoJSON features (keyValues), paged `PAGE` at a
 * time; with `attrs`, only those attributes (a smaller answer, faster to make and to
 * read). The location comes once, as each feature's geometry (`omit`, GS CIM 009
 * v1.8.1), not a second time among its properties. Types of one bundled @context are
 * asked for with it; types of several, with the core one (their names then come back
 * as full IRIs: see `typeOfFeature`). */
export async function featuresOfTypes(typeIris, onPage, attrs = null) {
  const contexts = new Set(typeIris.map(contextFor));
  const accept = 'application/geo+json';
  const headers = contexts.size === 1 ? headersFor(typeIris[0], accept) : { Accept: accept };
  const only = attrs ? `&attrs=${attrs.map(encodeURIComponent).join(',')}` : '';
  const types = typeIris.map(encodeURIComponent).join(',');
  const base = `${NGSI}/entities?type=${types}&options=keyValues&limit=${PAGE}${only}&omit=location`;
  const first = await request(`${base}&offset=0&count=true`, { headers });
  const offsets = [];
  const total = Number(first.headers.get('NGSILD-Results-Count'));
  for (let offset = PAGE; offset < total; offset += PAGE) offsets.push(offset);
  // A few pages in flight at once (the server has spare readers, the browser spare
  // sockets), the first of them asked for before the first answer is read.
  const ask = () => offsets.splice(0, PARALLEL).map((offset) => {
    const page = getJson(`${base}&offset=${offset}`, headers).then(({ body }) => body.features);
    page.catch(() => {}); // a failure is awaited below, unless an earlier one ended the load
    return page;
  });
  let batch = ask();
  const features = (await first.json()).features;
  onPage?.(features);
  while (batch.length) {
    const pages = await Promise.all(batch);
    batch = ask();
    for (const page of pages) {
      features.push(...page);
      onPage?.(page);
    }
  }
  return features;
}

/** Which of `typeIris` a feature from `featuresOfTypes` is of (its type may come back
 * compacted to a short name, or be one of several), or undefined. */
export function typeOfFeature(feature, typeIris) {
  const named = feature?.properties?.type;
  const names = (Array.isArray(named) ? named : [named]).filter((name) => typeof name === 'string');
  return typeIris.find((iri) => names.includes(iri))
    ?? typeIris.find((iri) => names.some((name) => shortName(name) === shortName(iri)));
}

/** One entity in the normalized form, compacted with its type's @context. */
export async function entity(id, typeIri) {
  const { body } = await getJson(`${NGSI}/entities/${encodeURIComponent(id)}`, headersFor(typeIri));
  return body;
}

/** PATCH an entity with some attributes, adding those it lacks (Merge Entity, GS CIM 009 5.6.17). */
export async function mergeEntity(id, typeIri, attrs) {
  await request(`${NGSI}/entities/${encodeURIComponent(id)}`, {
    method: 'PATCH',
    headers: { ...headersFor(typeIri), 'Content-Type': 'application/json' },
    body: JSON.stringify(attrs),
  });
}

/**
 * The temporal state of every entity of a type at `timeAt`: the last instance of each
 * attribute before it (GS CIM 009 5.7.4, temporalValues). Returns [{id, attrs: {name: value}}].
 */
export async function stateAt(typeIri, timeAt) {
  const headers = headersFor(typeIri);
  const at = new Date(timeAt).toISOString();
  const base =
    `${NGSI}/temporal/entities?type=${encodeURIComponent(typeIri)}&timerel=before` +
    `&timeAt=${encodeURIComponent(at)}&lastN=1&options=temporalValues&limit=${PAGE}`;
  const result = [];
  for (let offset = 0; ; offset += PAGE) {
    const { body } = await getJson(`${base}&offset=${offset}`, headers);
    for (const item of body) {
      const attrs = {};
      for (const [name, value] of Object.entries(item)) {
        if (name === 'id' || name === 'type' || name === '@context') continue;
        // An attribute with history but no default instance in the answer (lastN may
        // count every datasetId's instances) is unknown at that time, not its live value.
        const last = lastTemporalValue(value);
        attrs[shortName(name)] = last === undefined ? null : last;
      }
      result.push({ id: item.id, attrs });
    }
    if (body.length < PAGE) break;
  }
  return result;
}

function lastTemporalValue(value) {
  const series = Array.isArray(value) ? value : [value];
  let best;
  let bestTime = '';
  for (const s of series) {
    if (!s || s.datasetId) continue; // the default instance is the entity's own state
    const values = s.values || [];
    for (const pair of values) {
      if (Array.isArray(pair) && String(pair[1]) >= bestTime) {
        best = pair[0];
        bestTime = String(pair[1]);
      }
    }
    if (values.length === 0 && 'value' in s) best = s.value; // normalized instance
  }
  return best;
}

const HISTORY_PAGES = 50;

/**
 * The history of one attribute since `since`, one series per datasetId:
 * [{datasetId, points: [[ms, value], ...]}] (GS CIM 009 5.7.3, temporalValues). The
 * server answers at most so many instances at a time (206 Partial Content, with the
 * span it covers in Content-Range): the next request starts where the last one ended.
 * With `hourly`, each series is the mean of each hour instead (aggregatedValues, avg).
 */
export async function attributeHistory(id, typeIri, attr, since, { hourly = false } = {}) {
  const series = new Map(); // datasetId -> [[ms, value], ...]
  let from = new Date(since).toISOString();
  for (let page = 0; page < HISTORY_PAGES; page += 1) {
    const options = hourly ? 'aggregatedValues&aggrMethods=avg&aggrPeriodDuration=PT1H' : 'temporalValues';
    const url =
      `${NGSI}/temporal/entities/${encodeURIComponent(id)}?attrs=${encodeURIComponent(attr)}` +
      `&timerel=after&timeAt=${encodeURIComponent(from)}&options=${options}`;
    const { body, response } = await getJson(url, headersFor(typeIri));
    const value = body[attr] ?? Object.entries(body).find(([k]) => shortName(k) === shortName(attr))?.[1];
    for (const s of value ? (Array.isArray(value) ? value : [value]) : []) {
      const key = s.datasetId || null;
      if (!series.has(key)) series.set(key, []);
      const pairs = hourly ? (s.avg || []) : (s.values || []);
      for (const p of pairs) {
        if (!Array.isArray(p) || typeof p[0] !== 'number') continue;
        const at = Date.parse(p[1]);
        if (!Number.isNaN(at)) series.get(key).push([at, p[0]]);
      }
    }
    const range = /date-time\s+\S+-(\d{4}-\S+Z)\//.exec(response.headers.get('Content-Range') || '');
    if (response.status !== 206 || !range || range[1] <= from) break;
    from = range[1];
  }
  return [...series.entries()].map(([datasetId, points]) => ({
    datasetId,
    points: points.sort((a, b) => a[0] - b[0]),
  }));
}
