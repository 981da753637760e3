// The CityVerse dashboard: a map of the twin with a layer per domain, kept live by the
// server's stream of changes, with time replay, an inspector, alerts and water panels.
// What it shows is what the signed-in person (or, before sign-in, the public) may see:
// signing in or out loads it all again.

import * as maplibregl from 'maplibre-gl';
import { attrsFor, entityTypes, featuresOfType, liveStream, shortName } from './api.js';
import { initSignIn } from './auth.js';
import { eventParser } from './sse.js';
import { initialLanguage, onLanguage, setLanguage, t } from './i18n.js';
import { baseStyle, ensureLayer, LAYERS, layerForType, partIds, SDM_SUBJECTS, setVisible } from './layers.js';
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

maplibregl.setWorkerUrl(new URL('./maplibre-gl-worker.mjs', import.meta.url).href);

const map = new maplibregl.Map({
  container: 'map',
  style: baseStyle(config.tilesUrl),
  center: BERKANE,
  zoom: 13,
  attributionControl: false,
  maxPitch: 70,
  fadeDuration: 0,
});
map.addControl(new maplibregl.NavigationControl({ visualizePitch: true }), 'top-right');
map.addControl(new maplibregl.ScaleControl(), 'bottom-right');
bindMap(map, (layer, kinds) => ensureLayer(map, layer, kinds, { view3d }));

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

let mapLoaded = false;
map.on('load', () => {
  if (softwareRendering()) lightenWhileMoving();
  mapLoaded = true;
  renderLayerList();
  loadTwin();
});
initSignIn({ onChange: reloadTwin });

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

initWater();

// ---------------------------------------------------------------- rendering

/** True when WebGL runs on the CPU (no GPU, or a blocked one): SwiftShader, llvmpipe... */
function softwareRendering() {
  const canvas = map.getCanvas();
  const gl = canvas.getContext('webgl2') || canvas.getContext('webgl');
  if (!gl) return false;
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(renderer);
}

/**
 * Without a GPU every pixel of every frame is drawn by the CPU: while the map moves,
 * draw it at half the resolution (a quarter of the pixels), and sharp again once it has
 * been still for a moment. Panning and zooming stay fluid on a machine without a GPU.
 */
function lightenWhileMoving() {
  const sharp = map.getPixelRatio();
  let light = false;
  let switching = false; // a change of resolution fires move events of its own
  let timer = 0;
  const use = (ratio) => {
    switching = true;
    try {
      map.setPixelRatio(ratio);
    } finally {
      switching = false;
    }
  };
  map.on('movestart', () => {
    if (switching) return;
    clearTimeout(timer);
    if (!light) {
      light = true;
      use(sharp / 2);
    }
  });
  map.on('moveend', () => {
    if (switching) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (light) {
        light = false;
        use(sharp);
      }
    }, 400);
  });
  document.body.dataset.rendering = 'software';
}

// ---------------------------------------------------------------- loading

let loads = 0; // each load of the twin; a newer one (another person signed in) wins
let firstLoad = true;

/** Load the twin: what is switched on first, drawn at once; the rest (for search and the
 * counts) after; the live stream in between. */
async function loadTwin() {
  const mine = ++loads;
  document.body.dataset.loaded = 'false';
  const types = await loadTypes(mine);
  if (mine !== loads) return;
  hold();
  await loadAll(types.filter((type) => visible.get(type.layer.id)), mine);
  if (mine !== loads) return; // the newer load holds and releases the map itself
  fitToCity();
  release();
  if (firstLoad) {
    firstLoad = false;
    map.once('idle', () => performance.mark('cityverse-layers-drawn'));
    document.body.dataset.ready = 'true';
  }
  openFromHash();
  openStream();
  await loadAll(types.filter((type) => !visible.get(type.layer.id)), mine);
  if (mine !== loads) return;
  performance.mark('cityverse-all-loaded');
  document.body.dataset.loaded = 'true';
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
  if (mapLoaded) loadTwin();
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

function fitToCity() {
  const bounds = new maplibregl.LngLatBounds();
  for (const stored of entities.values()) {
    const geometry = stored.feature.geometry;
    if (!geometry) continue;
    for (const position of positions(geometry)) bounds.extend(position);
  }
  if (!bounds.isEmpty()) map.fitBounds(bounds, { padding: 40, duration: 0, maxZoom: 17 });
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
