// What the dashboard knows of the twin: every entity shown, by id, and the map's sources.
// Live values and replayed (historical) values are kept apart so that moving the time
// slider back to "now" restores the live state without asking the server again.
//
// A layer that is switched off keeps its entities here (for search and the counts) but
// its map sources are left alone until it is switched on: the map's worker then has
// nothing to cluster or tile for what nobody sees.

import { LAYERS } from './layers.js';
import { shortName } from './api.js';

export const entities = new Map(); // id -> { id, typeIri, layer, feature }
const replay = new Map(); // id -> { attr: value } while the time slider is in the past
let replaying = false;
let map = null;
let ensure = () => {};
const dirty = new Set();
const shown = new Set(LAYERS.filter((layer) => layer.on).map((layer) => layer.id));
let flushTimer = 0;
const held = new Set(); // layers whose sources wait for release()
const changeListeners = [];

/** Draw on `theMap`; `ensureLayer(layer, kinds, data)` makes a layer's sources (with
 * their first features) and MapLibre layers before use. */
export function bindMap(theMap, ensureLayer) {
  map = theMap;
  ensure = ensureLayer;
}

/** Run `fn(layerId)` after the features of a layer change. */
export function onChange(fn) {
  changeListeners.push(fn);
}

/** Say whether a layer is switched on; switching it on draws what it holds. */
export function setShown(layerId, on) {
  if (on) shown.add(layerId);
  else shown.delete(layerId);
  if (on) markDirty(layerId);
}

/** Keep the map's sources as they are until `release()`: a load sets each once. */
export function hold() {
  for (const layer of LAYERS) held.add(layer.id);
}

/** Give the map what the layers `layerIds` (default: all) hold, and what changes next. */
export function release(layerIds = null) {
  if (layerIds === null) held.clear();
  else for (const id of layerIds) held.delete(id);
  flush();
}

// Which of a layer's two sources an entity's geometry goes to (an alert's search area
// makes its layer draw polygons too).
function partOf(layerId, geometry) {
  if (layerId === 'alerts' || !geometry) return null;
  return geometry.type === 'Point' ? 'pt' : 'geo';
}

/** Store a GeoJSON feature (keyValues) of an entity; its properties keep short names
 * (the location is its geometry, not kept twice). */
export function putFeature(feature, typeIri, layer) {
  const properties = { id: feature.id, type: shortName(typeIri) };
  for (const [key, value] of Object.entries(feature.properties || {})) {
    if (key === 'type' || key === 'id') continue;
    const name = shortName(key);
    if (name !== 'location') properties[name] = value;
  }
  const previous = entities.get(feature.id);
  const stored = {
    id: feature.id,
    typeIri,
    layer,
    feature: { type: 'Feature', geometry: feature.geometry ?? previous?.feature.geometry ?? null, properties },
  };
  entities.set(feature.id, stored);
  const part = partOf(layer.id, stored.feature.geometry);
  const before = previous ? partOf(previous.layer.id, previous.feature.geometry) : part;
  markDirty(layer.id, before === part ? part : null);
  if (previous && previous.layer.id !== layer.id) markDirty(previous.layer.id);
  return stored;
}

/** Merge changed attribute values (short names) into a stored entity. */
export function updateAttrs(id, attrs, geometry) {
  const stored = entities.get(id);
  if (!stored) return false;
  const before = partOf(stored.layer.id, stored.feature.geometry);
  Object.assign(stored.feature.properties, attrs);
  if (geometry) stored.feature.geometry = geometry;
  const after = partOf(stored.layer.id, stored.feature.geometry);
  markDirty(stored.layer.id, before === after ? after : null);
  return true;
}

export function removeEntity(id) {
  const stored = entities.get(id);
  if (!stored) return;
  entities.delete(id);
  markDirty(stored.layer.id, partOf(stored.layer.id, stored.feature.geometry));
}

/** Forget every entity (the person signed in or out: what they may see changed). */
export function clearEntities() {
  entities.clear();
  replay.clear();
  replaying = false;
  for (const layer of LAYERS) markDirty(layer.id);
}

/** Show the twin's state as replayed from history: `states` is [{id, attrs}]. */
export function setReplay(states) {
  replay.clear();
  for (const { id, attrs } of states) replay.set(id, attrs);
  replaying = true;
  for (const layer of LAYERS) markDirty(layer.id);
}

export function clearReplay() {
  if (!replaying) return;
  replay.clear();
  replaying = false;
  for (const layer of LAYERS) markDirty(layer.id);
}

export function isReplaying() {
  return replaying;
}

/** The properties shown for an entity: live, or replayed when the slider is in the past. */
export function shownProperties(id) {
  const stored = entities.get(id);
  if (!stored) return null;
  const past = replaying ? replay.get(id) : null;
  return past ? { ...stored.feature.properties, ...past } : stored.feature.properties;
}

export function entitiesOfLayer(layerId) {
  const out = [];
  for (const stored of entities.values()) if (stored.layer.id === layerId) out.push(stored);
  return out;
}

/** Note that a layer's points (`pt`), shapes (`geo`) or both (null) have changed. */
function markDirty(layerId, part = null) {
  for (const which of part ? [part] : ['pt', 'geo']) dirty.add(`${layerId}|${which}`);
  schedule();
}

// Many changes (a page of entities, a burst of notifications) make one redraw, and none
// is made while the map moves or is still drawing the last one: each would have the
// map's worker tile a layer again (and, while the city first loads, push back the
// moment it is drawn).
function schedule() {
  if (flushTimer || held.size === LAYERS.length) return;
  flushTimer = setTimeout(() => {
    flushTimer = 0;
    if (map && map.isMoving()) {
      map.once('moveend', schedule);
      return;
    }
    if (map && !map.loaded()) {
      map.once('idle', schedule);
      return;
    }
    flush();
  }, 120);
}

// What the map is given of an entity: its id and type, and the attributes its layer's
// style reads. Names, addresses and the rest stay here, for the search and the panels:
// every property given to the map is copied to its worker and written into each tile.
function drawn(layer, properties) {
  const out = { id: properties.id, type: properties.type };
  for (const name of layer.draws) if (properties[name] !== undefined) out[name] = properties[name];
  return out;
}

// What an alert's search area adds to the map: its polygon, named by the alert.
function searchArea(stored, properties) {
  const area = properties.searchArea;
  if (!area || typeof area !== 'object' || !['Polygon', 'MultiPolygon'].includes(area.type)) return null;
  return {
    type: 'Feature',
    geometry: area,
    properties: { id: stored.id, type: properties.type, severity: properties.severity, area: true },
  };
}

/** Push every changed layer's features to its map sources now (switched-on layers only;
 * the others wait until they are switched on, the held ones until they are released). */
export function flush() {
  clearTimeout(flushTimer);
  flushTimer = 0;
  if (!map) return;
  const keys = [...dirty];
  const changed = new Set(keys.map((key) => key.split('|')[0]));
  for (const layerId of changed) {
    const layer = LAYERS.find((l) => l.id === layerId);
    if (!layer || !shown.has(layerId) || held.has(layerId)) continue;
    const parts = ['pt', 'geo'].filter((part) => dirty.delete(`${layerId}|${part}`));
    const points = [];
    const shapes = [];
    for (const stored of entities.values()) {
      if (stored.layer.id !== layerId || !stored.feature.geometry) continue;
      const properties = replaying ? shownProperties(stored.id) : stored.feature.properties;
      const feature = { type: 'Feature', geometry: stored.feature.geometry, properties: drawn(layer, properties) };
      (stored.feature.geometry.type === 'Point' ? points : shapes).push(feature);
      if (layerId === 'alerts') {
        const area = searchArea(stored, properties);
        if (area) shapes.push(area);
      }
    }
    const kinds = new Set();
    if (points.length) kinds.add('point');
    for (const shape of shapes) {
      kinds.add(shape.geometry.type.includes('Polygon') ? 'polygon' : 'line');
    }
    const data = {
      pt: { type: 'FeatureCollection', features: points },
      geo: { type: 'FeatureCollection', features: shapes },
    };
    // A source made now starts with its features; one there already is given them.
    const had = { pt: map.getSource(`${layerId}-pt`), geo: map.getSource(`${layerId}-geo`) };
    if (kinds.size) ensure(layer, kinds, data);
    for (const part of parts) had[part]?.setData(data[part]);
  }
  for (const layerId of changed) for (const fn of changeListeners) fn(layerId);
}
