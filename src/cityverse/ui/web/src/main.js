// The CityVerse dashboard: a map of the twin with a layer per domain, kept live by the
// server's stream of changes, with time replay, an inspector, alerts and water panels.
// What it shows is what the signed-in person (or, before sign-in, the public) may see:
// signing in or out loads it all again.

import './boot.js'; // first: the layers switched on are asked for before the map is set up
import * as maplibregl from 'maplibre-gl';
import {
  attrsFor, entityTypes, featuresOfType, featuresOfTypes, liveStream, shortName, takeEarly, typeOfFeature,
} from './api.js';
import { initSignIn } from './auth.js';
import { eventParser } from './sse.js';
import { initialLanguage, onLanguage, setLanguage, t } from './i18n.js';
import {
  baseStyle, ensureLayer, LAYERS, layerForType, partIds, requestKey, SDM_SUBJECTS, setVisible, usualRequests,
} from './layers.js';
import { closeInspector, el, initInspector, initSearch, inspect, openFromHash, renderAlerts } from './panels.js';
import {
  bindMap, clearEntities, entities, entitiesOfLayer, flush, hold, onChange, putFeature, release, removeEntity,
  setShown, updateAttrs,
} from './state.js';
import { chart, initTimeline, resetTime } from './timeline.js';
import { initWater, loadWater } from './water.js';

const BERKANE = [-2.32, 34.92];
const DEFAULT_VOCAB = 'https://uri.etsi.org/ngsi-ld/default-context/';
const SDM = 'https://smartdatamodels.org/dataModel.';
const config = JSON.parse(document.getElementById('cityverse-config')?.textContent || '{}');
const visible = new Map(LAYERS.map((layer) => [layer.id, layer.on]));
const clickable = LAYERS.flatMap(partIds);
const typeIris = new Map(); // short type name -> [IRIs]
let view3d = false;
let lightened = false; // drawn at a lower resolution for now (see lightenWhileMoving)
let sharpenWhenDrawn = () => {}; // sharp as soon as what the map was given is drawn
// The answers for the layers switched on are in: what the panels ask for waits until then
// (the browser sends only so many requests at a time, and the map's come first).
let answered;
const layersAnswered = new Promise((resolve) => {
  answered = resolve;
});

maplibregl.setWorkerUrl(new URL('./maplibre-gl-worker.mjs', import.meta.url).href);

// Without a GPU, the map starts at half the resolution (see lightenWhileMoving).
const software = softwareRendering();
const map = new maplibregl.Map({
  container: 'map',
  style: baseStyle(config.tilesUrl),
  center: BERKANE,
  zoom: 13,
  attributionControl: false,
  maxPitch: 70,
  fadeDuration: 0,
  pixelRatio: software ? window.devicePixelRatio / 2 : window.devicePixelRatio,
});
if (software) lightenWhileMoving();
map.addControl(new maplibregl.NavigationControl({ visualizePitch: true }), 'top-right');
map.addControl(stillScale(), 'bottom-right');
bindMap(map, (layer, kinds, data) => ensureLayer(map, layer, kinds, { view3d, data, lean: software }));

window.cityverse = { map, entities, inspect, flush };

setLanguage(initialLanguage());
const langSelect = document.getElementById('lang');
langSelect.value = document.documentElement.lang;
langSelect.addEventListener('change', () => setLanguage(langSelect.value));
onLanguage(() => {
  renderLayerList();
  renderAlerts();
  setLiveText();
});

initSearch();
initInspector({ onChart: chart, onFly: flyToGeometry });
initTimeline();
onChange((layerId) => {
  if (layerId === 'alerts') renderAlerts();
  if (layerCounts.has(layerId)) updateCount(layerId);
});

document.getElementById('view3d').addEventListener('click', (event) => {
  view3d = event.currentTarget.getAttribute('aria-pressed') !== 'true';
  event.currentTarget.setAttribute('aria-pressed', String(view3d));
  const buildings = LAYERS.find((layer) => layer.id === 'buildings');
  setVisible(map, buildings, visible.get('buildings'), { view3d });
  map.easeTo({ pitch: view3d ? 60 : 0, bearing: view3d ? -20 : 0, duration: 600 });
});

const mapLoaded = new Promise((resolve) => map.once('load', resolve));
mapLoaded.then(() => performance.mark('cityverse-map-loaded'));
initSignIn({ onChange: reloadTwin, after: layersAnswered });

map.on('click', (event) => {
  const hits = map.queryRenderedFeatures(event.point, { layers: clickable.filter((id) => map.getLayer(id)) });
  const hit = hits[0];
  if (!hit) return;
  if (hit.properties.cluster) {
    const source = map.getSource(hit.source);
    source.getClusterExpansionZoom(hit.properties.cluster_id).then((zoom) => {
      map.easeTo({ center: hit.geometry.coordinates, zoom });
    });
    return;
  }
  window.location.hash = `entity=${encodeURIComponent(hit.properties.id)}`;
});
map.on('mousemove', (event) => {
  const over = map.queryRenderedFeatures(event.point, { layers: clickable.filter((id) => map.getLayer(id)) });
  map.getCanvas().style.cursor = over.length ? 'pointer' : '';
});

initWater(layersAnswered);

// ---------------------------------------------------------------- rendering

/** True when WebGL runs on the CPU (no GPU, or a blocked one): SwiftShader, llvmpipe...
 * Asked of a context of its own, before the map makes its one. */
function softwareRendering() {
  const canvas = document.createElement('canvas');
  const gl = canvas.getContext('webgl2') || canvas.getContext('webgl');
  if (!gl) return false;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(renderer);
}

/** MapLibre's scale bar, measured again when the map stops rather than on each frame of
 * a movement: each change of its width and text costs the page a style, layout and paint
 * pass on the main thread, which also draws the map (about a millisecond a frame without
 * a GPU). Its `_onMove` is the bar's own update (MapLibre 5-6). */
function stillScale() {
  const scale = new maplibregl.ScaleControl();
  const onAdd = scale.onAdd.bind(scale);
  const onRemove = scale.onRemove.bind(scale);
  scale.onAdd = (target) => {
    const element = onAdd(target);
    target.off('move', scale._onMove);
    target.on('moveend', scale._onMove);
    return element;
  };
  scale.onRemove = () => {
    scale._map.off('moveend', scale._onMove);
    onRemove();
  };
  return scale;
}

/** The resolution while the map moves without a GPU: the device's divided by this. In a
 * pan or zoom over 10,000 points on two cores, the 95th percentile of the frames took
 * 23-39 ms at half the resolution (a quarter of the pixels), 21-26 ms at a third. */
const MOVING_DIVISOR = 3;

/**
 * Without a GPU every pixel of every frame is drawn by the CPU: while the map moves, and
 * while it waits for the tiles of the new view, draw it at a third of the resolution (a
 * ninth of the pixels), and sharp again once it has been still for a moment with every
 * tile it needs. Panning and zooming stay fluid on a machine without a GPU. The map is
 * made at half the resolution, and stays so until the city it first loads is in.
 */
function lightenWhileMoving() {
  const sharp = window.devicePixelRatio;
  let switching = false; // a change of resolution fires move events of its own
  let timer = 0;
  let still = 0; // each time the map stops; a later stop or a move cancels the wait
  let pinned = true; // at half the resolution until sharpenWhenDrawn(), however it moves
  lightened = true;
  const use = (ratio) => {
    switching = true;
    try {
      map.setPixelRatio(ratio);
    } finally {
      switching = false;
    }
  };
  // Sharp at the first 'idle' (the map has drawn every tile of the view), or sooner: as
  // soon as the last tile is in, before the frame that would draw it at the lower
  // resolution and then again, sharp. In a tile's 'data' event the map still says it is
  // not loaded (it has not drawn the tile yet): its style says whether every source and
  // tile is in.
  const tilesIn = () => map.style?.loaded() && map.areTilesLoaded();
  const sharpen = (mine) => {
    if (mine !== still || !lightened || pinned) return;
    if (!map.loaded()) {
      const early = (event) => {
        if (event.tile && tilesIn()) done(true);
      };
      const idle = () => done(false);
      const done = (now) => {
        map.off('data', early);
        map.off('idle', idle);
        if (!now) sharpen(mine);
        else if (mine === still && lightened && !pinned) {
          lightened = false;
          use(sharp);
        }
      };
      map.on('data', early);
      map.once('idle', idle);
      return;
    }
    lightened = false;
    use(sharp);
  };
  map.on('movestart', () => {
    if (switching) return;
    still += 1;
    clearTimeout(timer);
    if (!lightened) {
      lightened = true;
      use(sharp / MOVING_DIVISOR);
    }
  });
  map.on('moveend', () => {
    if (switching) return;
    const mine = ++still;
    clearTimeout(timer);
    timer = setTimeout(() => sharpen(mine), 400);
  });
  sharpenWhenDrawn = () => {
    pinned = false;
    const mine = ++still;
    clearTimeout(timer);
    sharpen(mine);
  };
  document.body.dataset.rendering = 'software';
}

/** Resolves at the first 'idle' after a frame drawn at full resolution (the map has
 * drawn, sharp, what it was given), with the time of that moment (performance.now()). */
function whenDrawn() {
  return new Promise((resolve) => {
    let sharpFrame = false;
    const rendered = () => {
      sharpFrame = !lightened;
    };
    const check = () => {
      if (!sharpFrame) {
        map.once('idle', check);
        return;
      }
      map.off('render', rendered);
      resolve(performance.now());
    };
    map.on('render', rendered);
    map.once('idle', check);
    map.triggerRepaint(); // 'idle' follows a frame, even when there was nothing to draw
  });
}

// ---------------------------------------------------------------- loading

let loads = 0; // each load of the twin; a newer one (another person signed in) wins
let firstLoad = true;
const SETTLE_MS = 10_000; // the longest the layers switched off wait for the map to settle

/**
 * Load the twin: the layers switched on first, drawn at once; the live stream; then, once
 * the map has drawn them, the others (for search and the counts).
 *
 * The layers switched on are asked for first, under their types' usual names (boot.js
 * does it before the map is set up): the view is fitted to the city once each request
 * has brought its first page, and each layer is given to the map as soon as all of it
 * is in, so that the map's worker tiles the first while the others are on their way.
 * Once the map has drawn them, the server lists the types the twin holds (the list takes
 * it a while: it reads every entity, on the cores the map is drawn with). The list says
 * whether a type or an attribute was named otherwise; those are loaded too, and drawn,
 * before the map counts as drawn.
 */
async function loadTwin() {
  const mine = ++loads;
  const first = firstLoad;
  document.body.dataset.loaded = 'false';
  hold();
  const requests = usualRequests(LAYERS.filter((layer) => visible.get(layer.id)));
  const begun = [];
  const loading = requests.map((request) => {
    let begin;
    begun.push(new Promise((resolve) => {
      begin = resolve;
    }));
    return loadUsual(request, mine, begin).finally(begin);
  });
  await Promise.all(begun);
  await mapLoaded;
  if (mine !== loads) return; // the newer load holds and releases the map itself
  let fitted = fitToCity();
  if (first) performance.mark('cityverse-layers-begun');
  const given = loading.map(async (job, i) => {
    await job;
    if (mine === loads) release(layersOf(requests[i]));
  });
  const asked = (await Promise.all(loading)).flat();
  await Promise.all(given);
  if (first) performance.mark('cityverse-layers-answered');
  answered();
  if (mine !== loads) return;
  renderLayerList();
  if (!fitted || !inView()) fitted = fitToCity();
  release();
  sharpenWhenDrawn();
  let drawn = whenDrawn();
  await settled(drawn);
  if (mine !== loads) return;
  const types = await loadTypes(mine);
  if (mine !== loads) return;
  const missing = types.filter((type) => visible.get(type.layer.id) && !covered(type, asked));
  if (missing.length) {
    hold();
    await loadAll(missing, mine);
    if (mine !== loads) return;
    if (!fitted) fitToCity();
    release();
    sharpenWhenDrawn();
    drawn = whenDrawn();
  }
  if (first) {
    // The first meaningful paint: the moment the map had drawn every entity of the layers
    // switched on, marked once the list of types has said that none was missing.
    firstLoad = false;
    performance.mark('cityverse-layers-checked');
    drawn.then((at) => performance.mark('cityverse-layers-drawn', { startTime: at }));
    document.body.dataset.ready = 'true';
  }
  openFromHash();
  openStream();
  // The layers switched off wait until the others are drawn: their answers would be
  // read, and the live changes drawn, on the cores that the map's worker and frames need.
  await settled(drawn);
  if (mine !== loads) return;
  await loadAll(types.filter((type) => !visible.get(type.layer.id)), mine);
  if (mine !== loads) return;
  performance.mark('cityverse-all-loaded');
  document.body.dataset.loaded = 'true';
}

/** The ids of the layers that show the types of a request. */
function layersOf(request) {
  return [...new Set(request.iris.map((iri) => layerForType(shortName(iri))?.id).filter(Boolean))];
}

/** Resolves once `drawn` has, or after SETTLE_MS at the latest. */
function settled(drawn) {
  return Promise.race([drawn, new Promise((resolve) => setTimeout(resolve, SETTLE_MS))]);
}

/** Load the entities of one of the `usualRequests`, or take them from boot.js, which
 * asked for them first; `begin()` is called with the first page. Returns what was
 * loaded: [{layer, iri, attrs}] for each of its types (none when the server would not
 * answer). */
async function loadUsual(request, mine, begin = () => {}) {
  const put = (page) => {
    begin();
    if (mine !== loads) return;
    for (const feature of page) {
      const iri = typeOfFeature(feature, request.iris);
      const layer = iri && layerForType(shortName(iri));
      if (layer) putFeature(feature, iri, layer);
    }
  };
  try {
    const asked = takeEarly(requestKey(request), put);
    if (asked) await asked;
    else await featuresOfTypes(request.iris, put, request.attrs);
  } catch (error) {
    console.warn(`could not load ${request.iris.map(shortName).join(', ')}: ${error.message}`);
    return [];
  }
  return request.iris.map((iri) => ({ layer: layerForType(shortName(iri)), iri, attrs: request.attrs }));
}

/** Whether loading the usual names (`loaded`) brought the entities of a listed type,
 * with the attributes its layer asks for. */
function covered(type, loaded) {
  const done = loaded.find((entry) => entry.iri === type.iri);
  if (!done) return false;
  if (!done.attrs) return true; // every attribute was asked for
  if (!type.attributes) return false;
  return type.attributes.every((name) => !type.layer.attrs.includes(shortName(name)) || done.attrs.includes(name));
}

/** Someone signed in or out: forget what was shown and load what they may see. */
function reloadTwin() {
  stream?.close();
  stream = null;
  liveState = 'off';
  setLiveText();
  clearEntities();
  typeIris.clear();
  closeInspector();
  resetTime();
  loadWater();
  loadTwin();
}

/** The types the twin holds that a layer shows: [{iri, name, attributes, layer}]. */
async function loadTypes(mine) {
  let types;
  try {
    types = await entityTypes();
  } catch (error) {
    if (mine === loads) {
      document.getElementById('layers').append(el('li', { class: 'error', role: 'alert' }, t('failed', error.message)));
    }
    return [];
  }
  if (mine !== loads) return [];
  const out = [];
  for (const type of types) {
    const layer = layerForType(type.name);
    if (!layer) continue;
    if (!typeIris.has(type.name)) typeIris.set(type.name, []);
    typeIris.get(type.name).push(type.iri);
    out.push({ ...type, layer });
  }
  return out;
}

/** Load every entity of `types`, a few pages at a time, asking only for what is drawn. */
async function loadAll(types, mine) {
  const jobs = types.map(({ iri, name, attributes, layer }) =>
    featuresOfType(iri, (page) => {
      if (mine !== loads) return;
      for (const feature of page) putFeature(feature, iri, layer);
    }, attrsFor(iri, attributes, layer.attrs)).catch((error) => console.warn(`could not load ${name}: ${error.message}`)));
  await Promise.all(jobs);
  if (mine === loads) renderLayerList();
}

/** The bounds of every entity loaded (empty when none has a geometry). */
function cityBounds() {
  const bounds = new maplibregl.LngLatBounds();
  for (const stored of entities.values()) {
    const geometry = stored.feature.geometry;
    if (!geometry) continue;
    for (const position of positions(geometry)) bounds.extend(position);
  }
  return bounds;
}

/** Show every entity loaded; returns their bounds, or null when there is none to show. */
function fitToCity() {
  const bounds = cityBounds();
  if (bounds.isEmpty()) return null;
  map.fitBounds(bounds, { padding: 40, duration: 0, maxZoom: 17 });
  return bounds;
}

/** Whether the view shows every entity loaded. */
function inView() {
  const bounds = cityBounds();
  const view = map.getBounds();
  return bounds.isEmpty() || (view.contains(bounds.getSouthWest()) && view.contains(bounds.getNorthEast()));
}

function positions(geometry) {
  const out = [];
  const walk = (c) => {
    if (typeof c[0] === 'number') out.push(c);
    else for (const inner of c) walk(inner);
  };
  if (geometry.coordinates) walk(geometry.coordinates);
  return out;
}

function flyToGeometry(geometry) {
  const points = positions(geometry);
  if (!points.length) return;
  const bounds = points.reduce((b, p) => b.extend(p), new maplibregl.LngLatBounds(points[0], points[0]));
  map.fitBounds(bounds, { padding: 80, maxZoom: 17, duration: 500 });
}

// ---------------------------------------------------------------- layer list

const layerCounts = new Map();

function renderLayerList() {
  const list = document.getElementById('layers');
  layerCounts.clear();
  const items = [];
  for (const layer of LAYERS) {
    const count = entitiesOfLayer(layer.id).length;
    if (layer.onlyWhenPresent && count === 0) continue;
    const id = `layer-${layer.id}`;
    const badge = el('span', { class: 'badge', 'aria-label': t('entities', count) }, String(count));
    layerCounts.set(layer.id, badge);
    items.push(el('li', {},
      el('input', { type: 'checkbox', id, checked: visible.get(layer.id), 'data-layer': layer.id,
        onchange: (event) => toggle(layer, event.target.checked) }),
      el('span', { class: 'swatch', style: `background:${layer.colour}`, 'aria-hidden': 'true' }),
      el('label', { for: id }, t(`layer_${layer.id}`)),
      badge));
  }
  list.replaceChildren(...items);
}

function updateCount(layerId) {
  const badge = layerCounts.get(layerId);
  const count = entitiesOfLayer(layerId).length;
  badge.textContent = String(count);
  badge.setAttribute('aria-label', t('entities', count));
}

function toggle(layer, on) {
  visible.set(layer.id, on);
  setShown(layer.id, on);
  setVisible(map, layer, on, { view3d });
  if (on) flush();
}

// ---------------------------------------------------------------- live

let liveState = 'off';
let stream = null;

function setLiveText() {
  const box = document.getElementById('live');
  box.dataset.state = liveState;
  document.getElementById('live-text').textContent =
    liveState === 'on' ? t('liveOn') : liveState === 'unavailable' ? t('liveUnavailable') : t('liveOff');
}

/** Follow the server's stream of changes: each notification updates the map at once. The
 * stream is read with fetch() so that it carries the signed-in person's credential in a
 * header, and is opened again after a drop. */
function openStream() {
  stream?.close();
  // One request has one @context: name every type by its full IRI, those the twin holds
  // and, for a type it does not hold yet (an Alert to come), its Smart Data Models IRI
  // and the default one.
  const iris = new Set();
  for (const layer of LAYERS) {
    for (const name of layer.types) {
      for (const iri of typeIris.get(name) ?? []) iris.add(iri);
      if (SDM_SUBJECTS[name]) iris.add(`${SDM}${SDM_SUBJECTS[name]}/${name}`);
      iris.add(`${DEFAULT_VOCAB}${name}`);
    }
  }
  const query = new URLSearchParams({ type: [...iris].join(','), options: 'keyValues' });
  let mine = null; // a stream closed since (signed in or out) has nothing more to say
  const live = (state) => {
    if (stream !== mine) return;
    liveState = state;
    setLiveText();
  };
  mine = stream = liveStream(query, {
    onOpen: () => live('on'),
    // Dropped: opened again after a delay.
    onDrop: () => live('off'),
    // Refused (the banner says why) or absent (a server without a stream).
    onFail: (status) => live(status === 401 || status === 403 ? 'off' : 'unavailable'),
    onEvent: (event) => {
      if (stream !== mine || (event.type !== 'notification' && event.type !== 'message')) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      applyNotification(message);
    },
  });
}

const ATTRIBUTE_TYPES = new Set(['Property', 'Relationship', 'GeoProperty', 'LanguageProperty',
  'VocabProperty', 'JsonProperty', 'ListProperty', 'ListRelationship']);

/** Apply a notification (GS CIM 009 5.3.1: `data` holds the changed entities). */
export function applyNotification(message) {
  const items = Array.isArray(message?.data) ? message.data : [message];
  for (const item of items) {
    if (!item || typeof item.id !== 'string') continue;
    if (item.deletedAt && Object.keys(item).every((k) => ['id', 'type', 'deletedAt', '@context'].includes(k))) {
      removeEntity(item.id);
      continue;
    }
    const attrs = {};
    let geometry = null;
    for (const [name, value] of Object.entries(item)) {
      if (name === 'id' || name === 'type' || name === '@context') continue;
      const short = shortName(name);
      const plain = value && typeof value === 'object' && ATTRIBUTE_TYPES.has(value.type)
        ? (value.value ?? value.object ?? value.languageMap ?? value.json ?? value.vocab)
        : value;
      if (short === 'location' && plain && plain.type) geometry = plain;
      else attrs[short] = plain;
    }
    if (!updateAttrs(item.id, attrs, geometry)) {
      const typeName = shortName(Array.isArray(item.type) ? item.type[0] : item.type);
      const layer = layerForType(typeName);
      if (!layer) continue;
      const iri = typeIris.get(typeName)?.[0] ?? item.type;
      putFeature({ id: item.id, geometry, properties: attrs }, iri, layer);
    }
  }
}
window.cityverse.applyNotification = applyNotification;
window.cityverse.eventParser = eventParser;

// ---------------------------------------------------------------- start

// The twin is asked for now, not once the map has loaded: the server's answers and the
// map's start (its worker, its style, its first frame) overlap.
renderLayerList();
loadTwin();
