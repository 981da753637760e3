// What the dashboard knows of the twin: every entity shown, by id, and the map's sources.
// Live values and replayed (historical) values are kept apart so that moving the time
// slider back to "now" restores the live state without asking the server again.

import { LAYERS } from './layers.js';
import { shortName } from './api.js';

export const entities = new Map(); // id -> { id, typeIri, layer, feature }
const replay = new Map(); // id -> { attr: value } while the time slider is in the past
let replaying = false;
let map = null;
const dirty = new Set();
let flushTimer = 0;
const changeListeners = [];

export function bindMap(theMap) {
  map = theMap;
}

/** Run `fn(layerId)` after the features of a layer change. */
export function onChange(fn) {
  changeListeners.push(fn);
}

/** Store a GeoJSON feature (keyValues) of an entity; its properties keep short names. */
export function putFeature(feature, typeIri, layer) {
  const properties = { id: feature.id, type: shortName(typeIri) };
  for (const [key, value] of Object.entries(feature.properties || {})) {
    if (key === 'type' || key === 'id') continue;
    properties[shortName(key)] = value;
  }
  const previous = entities.get(feature.id);
  const stored = {
    id: feature.id,
    typeIri,
    layer,
    feature: { type: 'Feature', geometry: feature.geometry ?? previous?.feature.geometry ?? null, properties },
  };
  entities.set(feature.id, stored);
  markDirty(layer.id);
  if (previous && previous.layer.id !== layer.id) markDirty(previous.layer.id);
  return stored;
}

/** Merge changed attribute values (short names) into a stored entity. */
export function updateAttrs(id, attrs, geometry) {
  const stored = entities.get(id);
  if (!stored) return false;
  Object.assign(stored.feature.properties, attrs);
  if (geometry) stored.feature.geometry = geometry;
  markDirty(stored.layer.id);
  return true;
}

export function removeEntity(id) {
  const stored = entities.get(id);
  if (!stored) return;
  entities.delete(id);
  markDirty(stored.layer.id);
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

function markDirty(layerId) {
  dirty.add(layerId);
  // Many changes (a page of entities, a burst of notifications) make one redraw.
  if (!flushTimer) flushTimer = setTimeout(flush, 120);
}

/** Push every changed layer's features to its map sources now. */
export function flush() {
  clearTimeout(flushTimer);
  flushTimer = 0;
  if (!map) return;
  const layers = [...dirty];
  dirty.clear();
  for (const layerId of layers) {
    const points = [];
    const shapes = [];
    for (const stored of entities.values()) {
      if (stored.layer.id !== layerId || !stored.feature.geometry) continue;
      const feature = replaying
        ? { ...stored.feature, properties: shownProperties(stored.id) }
        : stored.feature;
      (stored.feature.geometry.type === 'Point' ? points : shapes).push(feature);
    }
    map.getSource(`${layerId}-pt`)?.setData({ type: 'FeatureCollection', features: points });
    map.getSource(`${layerId}-geo`)?.setData({ type: 'FeatureCollection', features: shapes });
    for (const fn of changeListeners) fn(layerId);
  }
}
