// The map's layers, one per domain, and the MapLibre style that draws them.
// Entity types are matched by their short name, whatever @context they were written with.

export const LAYERS = [
  { id: 'buildings', types: ['Building'], colour: '#b8ad9a', on: true },
  {
    id: 'water',
    types: ['Junction', 'Pipe', 'Tank', 'Reservoir', 'Pump', 'Valve'],
    colour: '#1f78b4',
    on: true,
  },
  {
    id: 'sensors',
    types: ['Device', 'WaterObserved', 'WaterQualityObserved', 'AirQualityObserved',
      'WeatherObserved', 'NoiseLevelObserved'],
    colour: '#00897b',
    on: true,
  },
  { id: 'alerts', types: ['Alert'], colour: '#d32f2f', on: true },
  { id: 'streetlights', types: ['Streetlight'], colour: '#c79100', on: false },
  { id: 'waste', types: ['WasteContainer'], colour: '#6d4c41', on: false },
  { id: 'parking', types: ['ParkingSpot'], colour: '#3949ab', on: false },
  {
    id: 'reports',
    types: ['ServiceRequest', 'Open311ServiceRequest', 'CitizenReport', 'Issue'],
    colour: '#8e24aa',
    on: true,
    onlyWhenPresent: true,
  },
];

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

/** Add the sources and MapLibre layers of one domain layer; returns its clickable layer ids. */
export function addLayer(map, layer) {
  const geo = `${layer.id}-geo`;
  const pt = `${layer.id}-pt`;
  map.addSource(geo, { type: 'geojson', data: EMPTY });
  // Clustering keeps tens of thousands of points fluid: the worker merges them per zoom.
  map.addSource(pt, {
    type: 'geojson',
    data: EMPTY,
    cluster: true,
    clusterRadius: 40,
    clusterMaxZoom: 15,
  });
  const colour = pointColour(layer);
  const ids = [];
  if (layer.id === 'buildings') {
    map.addLayer({
      id: `${geo}-fill`,
      type: 'fill-extrusion',
      source: geo,
      filter: ['==', ['geometry-type'], 'Polygon'],
      paint: {
        'fill-extrusion-color': layer.colour,
        'fill-extrusion-height': ['to-number', ['coalesce', ['get', 'height'], 6], 6],
        'fill-extrusion-base': 0,
        'fill-extrusion-opacity': 0.85,
      },
    });
  } else {
    map.addLayer({
      id: `${geo}-fill`,
      type: 'fill',
      source: geo,
      filter: ['==', ['geometry-type'], 'Polygon'],
      paint: { 'fill-color': layer.colour, 'fill-opacity': 0.35, 'fill-outline-color': layer.colour },
    });
  }
  map.addLayer({
    id: `${geo}-line`,
    type: 'line',
    source: geo,
    filter: ['==', ['geometry-type'], 'LineString'],
    layout: { 'line-cap': 'round', 'line-join': 'round' },
    paint: {
      'line-color': layer.id === 'water' ? layer.colour : colour,
      'line-width': ['interpolate', ['linear'], ['zoom'], 12, 1.5, 17, 5],
    },
  });
  map.addLayer({
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
  });
  map.addLayer({
    id: `${pt}-point`,
    type: 'circle',
    source: pt,
    filter: ['!', ['has', 'point_count']],
    paint: {
      'circle-color': colour,
      'circle-radius': ['interpolate', ['linear'], ['zoom'], 12, 4, 18, 9],
      'circle-stroke-color': '#1b1b1b',
      'circle-stroke-width': 1,
    },
  });
  ids.push(`${geo}-fill`, `${geo}-line`, `${pt}-cluster`, `${pt}-point`);
  return ids;
}

/** Show or hide every MapLibre layer of a domain layer. */
export function setVisible(map, layer, visible) {
  for (const id of [`${layer.id}-geo-fill`, `${layer.id}-geo-line`, `${layer.id}-pt-cluster`,
    `${layer.id}-pt-point`]) {
    if (map.getLayer(id)) map.setLayoutProperty(id, 'visibility', visible ? 'visible' : 'none');
  }
}
