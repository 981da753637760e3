// The map's layers, one per domain, and the MapLibre style that draws them.
// Entity types are matched by their short name, whatever @context they were written with.
//
// A domain layer's sources and MapLibre layers are made only when it has something to
// draw and is switched on, and only for the kinds of geometry it holds: every layer
// costs the map a pass on each frame, even an empty one (in software rendering, a
// dozen empty layers cost as much as all the city's points).

// `attrs`: the attributes a big layer asks the server for (null: all of them); `draws`:
// those its map style reads, the only ones given to the map with `id` and `type`.
export const LAYERS = [
  { id: 'streets', types: ['RoadSegment'], colour: '#c9c2b2', on: true, attrs: ['name'], draws: [] },
  { id: 'buildings', types: ['Building'], colour: '#b8ad9a', on: true, attrs: ['height', 'name'], draws: ['height'] },
  {
    id: 'water',
    types: ['Junction', 'Pipe', 'Tank', 'Reservoir', 'Pump', 'Valve'],
    colour: '#1f78b4',
    on: true,
    attrs: ['pressure', 'level', 'flow', 'name', 'status'],
    draws: ['pressure'],
  },
  {
    id: 'sensors',
    types: ['Device', 'WaterObserved', 'WaterQualityObserved', 'AirQualityObserved',
      'WeatherObserved', 'NoiseLevelObserved'],
    colour: '#00897b',
    on: true,
    draws: [],
  },
  { id: 'alerts', types: ['Alert'], colour: '#d32f2f', on: true, draws: ['severity', 'area'] },
  {
    id: 'streetlights', types: ['Streetlight'], colour: '#c79100', on: false,
    attrs: ['powerState', 'status', 'name'], draws: ['powerState', 'status'],
  },
  {
    id: 'waste', types: ['WasteContainer'], colour: '#6d4c41', on: false,
    attrs: ['fillingLevel', 'status', 'name'], draws: ['fillingLevel'],
  },
  { id: 'parking', types: ['ParkingSpot'], colour: '#3949ab', on: false, attrs: ['status', 'name'], draws: ['status'] },
  {
    id: 'reports',
    types: ['ServiceRequest', 'Open311ServiceRequest', 'CitizenReport', 'Issue'],
    colour: '#8e24aa',
    on: true,
    onlyWhenPresent: true,
    draws: [],
  },
];

/** The Smart Data Models subject of each type the layers show: its IRI names the type in
 * the live stream before any entity of it is loaded (an Alert raised later, say). */
export const SDM_SUBJECTS = {
  RoadSegment: 'Transportation', Building: 'Building', Junction: 'WaterDistributionManagementEPANET',
  Pipe: 'WaterDistributionManagementEPANET', Tank: 'WaterDistributionManagementEPANET',
  Reservoir: 'WaterDistributionManagementEPANET', Pump: 'WaterDistributionManagementEPANET',
  Valve: 'WaterDistributionManagementEPANET', Device: 'Device', WaterObserved: 'WaterQuality',
  WaterQualityObserved: 'WaterQuality', AirQualityObserved: 'Environment',
  WeatherObserved: 'Weather', NoiseLevelObserved: 'Environment', Alert: 'Alert',
  Streetlight: 'Streetlighting', WasteContainer: 'WasteManagement', ParkingSpot: 'Parking',
  ServiceRequest: 'ServiceRequest', Open311ServiceRequest: 'ServiceRequest', Issue: 'IssueReporting',
};

const SDM = 'https://smartdatamodels.org/';
// Attributes the Smart Data Models share (under https://smartdatamodels.org/); the others
// are each model's own (https://smartdatamodels.org/dataModel.<subject>/<name>).
const SDM_COMMON = new Set(['name', 'address', 'dateObserved']);

/**
 * What a layer's types and the attributes it asks for (`layer.attrs`) are called under
 * the Smart Data Models: [{iri, attrs}] (`attrs` null when the layer asks for every
 * attribute). With these the layer is asked for before the list of the twin's types
 * comes back; that list then says whether anything was named otherwise.
 */
export function usualNames(layer) {
  const out = [];
  for (const name of layer.types) {
    const subject = SDM_SUBJECTS[name];
    if (!subject) continue;
    const model = `${SDM}dataModel.${subject}/`;
    const attrs = layer.attrs
      ? ['location', ...layer.attrs.map((attr) => (SDM_COMMON.has(attr) ? SDM : model) + attr)]
      : null;
    out.push({ iri: `${model}${name}`, attrs });
  }
  return out;
}

/**
 * The requests that load `layers` under their types' usual names (see usualNames):
 * [{iris, attrs}], one for each layer that asks for some attributes (every type of it,
 * with the names of those attributes in any of its models) and one for every type of
 * the layers that ask for all of them. Fewer requests than types: a browser sends at most
 * six at a time to one server, and a city holds few of the types a dashboard can show.
 */
export function usualRequests(layers) {
  const out = [];
  const whole = [];
  for (const layer of layers) {
    const names = usualNames(layer);
    if (!names.length) continue;
    if (!layer.attrs) {
      whole.push(...names.map((name) => name.iri));
      continue;
    }
    out.push({ iris: names.map((name) => name.iri), attrs: [...new Set(names.flatMap((name) => name.attrs))] });
  }
  if (whole.length) out.push({ iris: whole, attrs: null });
  return out;
}

/** The key under which boot.js asks for a request of `usualRequests` (see askEarly). */
export function requestKey({ iris, attrs }) {
  return `types:${iris.join(',')}|${attrs ? attrs.join(',') : '*'}`;
}

/** The layer that shows entities of a type (by short name), or undefined. */
export function layerForType(name) {
  return LAYERS.find((layer) => layer.types.includes(name));
}

// Pressure in metres of water: red below 10, amber to 20, green to 60, blue above.
const PRESSURE = [
  'case',
  ['!', ['has', 'pressure']], '#9e9e9e',
  ['interpolate', ['linear'], ['to-number', ['get', 'pressure'], 0],
    0, '#c62828', 10, '#f9a825', 20, '#2e7d32', 60, '#2e7d32', 90, '#1565c0'],
];
// fillingLevel is a fraction (0..1) in the Smart Data Models.
const FILLING = [
  'interpolate', ['linear'], ['to-number', ['get', 'fillingLevel'], 0],
  0, '#2e7d32', 0.6, '#f9a825', 0.9, '#c62828',
];
const PARKING = [
  'match', ['get', 'status'], 'free', '#2e7d32', 'occupied', '#c62828', 'closed', '#616161',
  '#9e9e9e',
];
const LIGHT = [
  'match', ['to-string', ['get', 'powerState']], 'on', '#f5c400', 'off', '#616161',
  ['match', ['to-string', ['get', 'status']], 'ok', '#f5c400', 'defectiveLamp', '#c62828', '#c79100'],
];
const ALERT = [
  'match', ['get', 'severity'], ['critical', 'high'], '#b71c1c', ['medium'], '#ef6c00',
  '#fbc02d',
];

function pointColour(layer) {
  switch (layer.id) {
    case 'water': return PRESSURE;
    case 'waste': return FILLING;
    case 'parking': return PARKING;
    case 'streetlights': return LIGHT;
    case 'alerts': return ALERT;
    default: return layer.colour;
  }
}

/** The map's style: a plain background, the optional raster basemap, and no layer yet. */
export function baseStyle(tilesUrl) {
  const style = {
    version: 8,
    sources: {},
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#eef0ea' } }],
  };
  if (tilesUrl) {
    style.sources.basemap = { type: 'raster', tiles: [tilesUrl], tileSize: 256 };
    style.layers.push({ id: 'basemap', type: 'raster', source: 'basemap' });
  }
  return style;
}

const EMPTY = { type: 'FeatureCollection', features: [] };

// Every MapLibre layer a domain layer may have, bottom to top of the map: a layer made
// later goes in its place in this order.
const PARTS = ['geo-fill', 'geo-extrusion', 'geo-line', 'pt-cluster', 'pt-point'];
const ORDER = [
  ...['geo-fill', 'geo-extrusion', 'geo-line'].flatMap((part) => LAYERS.map((l) => `${l.id}-${part}`)),
  ...['pt-cluster', 'pt-point'].flatMap((part) => LAYERS.map((l) => `${l.id}-${part}`)),
];

/** Every MapLibre layer id a domain layer may have (the clickable ones). */
export function partIds(layer) {
  return PARTS.map((part) => `${layer.id}-${part}`);
}

function before(map, id) {
  for (const next of ORDER.slice(ORDER.indexOf(id) + 1)) if (map.getLayer(next)) return next;
  return undefined;
}

function add(map, spec, visible) {
  if (map.getLayer(spec.id)) return;
  spec.layout = { ...(spec.layout || {}), visibility: visible ? 'visible' : 'none' };
  map.addLayer(spec, before(map, spec.id));
}

/**
 * Make what a domain layer needs to draw `kinds` (a set of 'point', 'line', 'polygon'),
 * if it is not there yet. `view3d` says whether buildings stand extruded or lie flat;
 * `data.pt` and `data.geo` are the features a source made now starts with (the map's
 * worker then reads them once, not an empty collection first); `lean`: the map is drawn
 * without a GPU, and the buildings' edges are not smoothed (the outlines of thousands of
 * small footprints cost the emulated GPU about a quarter of each frame).
 */
export function ensureLayer(map, layer, kinds, { view3d = false, data = {}, lean = false } = {}) {
  const geo = `${layer.id}-geo`;
  const pt = `${layer.id}-pt`;
  if ((kinds.has('line') || kinds.has('polygon')) && !map.getSource(geo)) {
    map.addSource(geo, { type: 'geojson', data: data.geo ?? EMPTY, buffer: 32, tolerance: 0.5 });
  }
  if (kinds.has('polygon')) {
    add(map, {
      id: `${geo}-fill`,
      type: 'fill',
      source: geo,
      filter: ['==', ['geometry-type'], 'Polygon'],
      paint: layer.id === 'buildings'
        ? { 'fill-color': layer.colour, 'fill-opacity': 0.9, 'fill-antialias': !lean }
        : { 'fill-color': layer.id === 'alerts' ? ALERT : layer.colour, 'fill-opacity': 0.3,
          'fill-outline-color': layer.id === 'alerts' ? ALERT : layer.colour },
    }, !(layer.id === 'buildings' && view3d));
    if (layer.id === 'buildings') {
      // Extruded only in the 3D view: seen from above, a flat fill looks the same and
      // costs the map far less.
      add(map, {
        id: `${geo}-extrusion`,
        type: 'fill-extrusion',
        source: geo,
        filter: ['==', ['geometry-type'], 'Polygon'],
        paint: {
          'fill-extrusion-color': layer.colour,
          'fill-extrusion-height': ['to-number', ['coalesce', ['get', 'height'], 6], 6],
          'fill-extrusion-base': 0,
          'fill-extrusion-opacity': 0.85,
        },
      }, view3d);
    }
  }
  if (kinds.has('line')) {
    add(map, {
      id: `${geo}-line`,
      type: 'line',
      source: geo,
      filter: ['==', ['geometry-type'], 'LineString'],
      layout: { 'line-cap': 'round', 'line-join': 'round' },
      paint: {
        'line-color': layer.id === 'water' || layer.id === 'streets' ? layer.colour : pointColour(layer),
        'line-width': layer.id === 'streets'
          ? ['interpolate', ['exponential', 2], ['zoom'], 12, 1, 18, 24]
          : ['interpolate', ['linear'], ['zoom'], 12, 1.5, 17, 5],
      },
    }, true);
  }
  if (kinds.has('point') && !map.getSource(pt)) {
    // Clustering keeps tens of thousands of points fluid: the worker merges them per zoom.
    // From zoom 14 each point stands alone, and the tiles of zoom 14 are scaled beyond it:
    // zooming in further makes no new tiles, whose arrival costs the frame that draws them.
    map.addSource(pt, {
      type: 'geojson',
      data: data.pt ?? EMPTY,
      cluster: true,
      clusterRadius: 40,
      clusterMaxZoom: 13,
      maxzoom: 14,
      buffer: 32,
    });
    add(map, {
      id: `${pt}-cluster`,
      type: 'circle',
      source: pt,
      filter: ['has', 'point_count'],
      paint: {
        'circle-color': layer.colour,
        'circle-opacity': 0.75,
        'circle-radius': ['step', ['get', 'point_count'], 12, 50, 16, 500, 22, 5000, 28],
        'circle-stroke-color': '#ffffff',
        'circle-stroke-width': 2,
      },
    }, true);
    add(map, {
      id: `${pt}-point`,
      type: 'circle',
      source: pt,
      filter: ['!', ['has', 'point_count']],
      paint: {
        'circle-color': pointColour(layer),
        'circle-radius': ['interpolate', ['linear'], ['zoom'], 12, 4, 18, 9],
        'circle-stroke-color': '#1b1b1b',
        'circle-stroke-width': 1,
      },
    }, true);
  }
}

/** Show or hide every MapLibre layer of a domain layer (buildings: the 3D view's one). */
export function setVisible(map, layer, visible, { view3d = false } = {}) {
  for (const id of partIds(layer)) {
    if (!map.getLayer(id)) continue;
    let on = visible;
    if (id === 'buildings-geo-fill') on = visible && !view3d;
    if (id === 'buildings-geo-extrusion') on = visible && view3d;
    map.setLayoutProperty(id, 'visibility', on ? 'visible' : 'none');
  }
}
