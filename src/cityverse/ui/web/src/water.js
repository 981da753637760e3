// The water twin's panels: KPI cards and the scenario runner, over the water API
// (docs/water.md). Without the API, or without a network, they say "not available".

import { getJson, WATER_API } from './api.js';
import { onLanguage, t } from './i18n.js';
import { el } from './panels.js';

// The scenarios a person can run from here, each compared with a baseline run.
const PRESETS = [
  { key: 'drought20', spec: { kind: 'drought', cuts: { '*': 20 }, name: 'drought -20%' } },
  { key: 'drought40', spec: { kind: 'drought', cuts: { '*': 40 }, name: 'drought -40%' } },
  { key: 'leakage', spec: { kind: 'pressure', leakage: { coefficient: 0.02, exponent: 1.0, zones: ['*'] }, name: 'leakage' } },
];
const JOB_WAIT_MS = 180_000;

// The three cards, each from the network KPIs of a run.
const CARDS = [
  ['waterBalance', (k) => pct(k.waterLossesPercent ?? share(k.waterLosses, k.systemInputVolume)),
    (k) => `${fmt(k.systemInputVolume)} m³`],
  ['nrw', (k) => pct(k.nonRevenueWaterPercent), (k) => `${fmt(k.nonRevenueWater)} m³`],
  ['pressureAdequacy', (k) => typeof k.nodesBelowMinPressurePercent === 'number'
    ? pct(100 - k.nodesBelowMinPressurePercent) : '–', (k) => `min ${fmt(k.minimumPressure)} m`],
];
const COMPARED = ['systemInputVolume', 'realLossesPercent', 'nonRevenueWaterPercent',
  'nodesBelowMinPressurePercent', 'unservedDemand', 'meanPressure', 'minimumPressure'];

let network = null; // the network's name, or null without a water API / network
let kpis = null;
let lastComparison = null;
let running = false;
let loads = 0; // each load of the panels; a newer one (another person signed in) wins

function fmt(value) {
  if (typeof value !== 'number') return '–';
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
}

/** `part` as a percentage of `whole`, or undefined without both. */
function share(part, whole) {
  return typeof part === 'number' && typeof whole === 'number' && whole > 0 ? (100 * part) / whole : undefined;
}

function pct(value) {
  return typeof value === 'number' ? `${value.toFixed(1)} %` : '–';
}

/** Wire the panels and load them once `after` has resolved (the map's data goes first). */
export async function initWater(after = null) {
  onLanguage(render);
  await after;
  if (loads === 0) await loadWater();
}

/** Load the panels (again, after a sign-in or sign-out: what they show is the caller's). */
export async function loadWater() {
  const mine = ++loads;
  let found = null;
  let baseline = null;
  try {
    const { body } = await getJson(`${WATER_API}/networks`);
    const first = Array.isArray(body) ? body[0] : null;
    found = first ? String(first.id).split(':').pop() : null;
    if (found) baseline = await baselineKpis(found);
  } catch {
    found = null;
  }
  if (mine !== loads) return;
  network = found;
  kpis = baseline;
  lastComparison = null;
  render();
  if (network && !kpis) waitForBaseline(mine);
}

// A baseline run may be on its way (the demo asks for one as it starts): look again now
// and then, for a few minutes, until one is there.
async function waitForBaseline(mine, tries = 36) {
  for (let i = 0; i < tries && !kpis; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 5000));
    if (mine !== loads) return;
    try {
      await loadKpis();
    } catch {
      continue;
    }
    if (kpis) renderKpis();
  }
}

/** The KPIs of a network's latest successful baseline run, or null. */
async function baselineKpis(name) {
  const { body } = await getJson(`${WATER_API}/networks/${encodeURIComponent(name)}/scenarios`);
  const baselines = body.filter((row) => row.inputParameters?.kind === 'baseline' && row.outcome?.kpis?.network);
  return baselines.length ? baselines[baselines.length - 1].outcome.kpis.network : null;
}

async function loadKpis() {
  const mine = loads;
  const found = await baselineKpis(network);
  if (mine === loads) kpis = found;
}

function render() {
  renderKpis();
  renderScenarios();
}

function renderKpis() {
  const box = document.getElementById('kpis');
  if (!network) {
    box.replaceChildren(el('p', { class: 'muted unavailable' }, t('kpiUnavailable')));
    return;
  }
  if (!kpis) {
    box.replaceChildren(el('p', { class: 'muted' }, t('noBaseline')));
    return;
  }
  box.replaceChildren(...CARDS.map(([word, main, detail]) =>
    el('div', { class: 'kpi', 'data-kpi': word },
      el('span', { class: 'kpi-label' }, t(word)),
      el('span', { class: 'kpi-value' }, main(kpis)),
      el('span', { class: 'kpi-label' }, detail(kpis)))));
}

function renderScenarios() {
  const box = document.getElementById('scenarios');
  if (!network) {
    box.replaceChildren(el('p', { class: 'muted unavailable' }, t('scenarioUnavailable')));
    return;
  }
  const select = el('select', { id: 'scenario' },
    PRESETS.map((p) => el('option', { value: p.key }, t(`preset_${p.key}`))));
  const result = el('div', { id: 'scenario-result', 'aria-live': 'polite' });
  const button = el('button', { type: 'button', class: 'btn', disabled: running,
    onclick: () => run(select.value, result, button) }, t('run'));
  box.replaceChildren(el('label', { for: 'scenario' }, t('scenario')), select, button, result);
  if (lastComparison) result.replaceChildren(comparison(lastComparison));
}

/** Run the chosen scenario and a baseline, wait for the job, and compare their KPIs. */
async function run(key, result, button) {
  const preset = PRESETS.find((p) => p.key === key);
  const mine = loads;
  running = true;
  button.disabled = true;
  result.replaceChildren(el('p', { class: 'muted' }, t('running')));
  try {
    const base = `${WATER_API}/networks/${encodeURIComponent(network)}`;
    const { body, response } = await getJson(`${base}/scenarios`, { 'Content-Type': 'application/json' }, {
      method: 'POST',
      body: JSON.stringify([{ kind: 'baseline', name: 'baseline' }, preset.spec]),
    });
    await waitForJob(response.headers.get('Location') || `${WATER_API}/jobs/${body.id}`);
    const ids = body.scenarios.join(',');
    const compared = (await getJson(`${WATER_API}/compare?scenarios=${encodeURIComponent(ids)}`)).body;
    if (mine !== loads) return; // signed in or out meanwhile: the panel was drawn again
    lastComparison = compared;
    await loadKpis();
    renderKpis();
    result.replaceChildren(comparison(lastComparison));
  } catch (error) {
    if (mine !== loads) return;
    result.replaceChildren(el('p', { class: 'error', role: 'alert' }, t('failed', error.message)));
  } finally {
    running = false;
    button.disabled = false;
    if (mine !== loads) renderScenarios();
  }
}

// A run is a job the server finishes in its own time: ask about it until it is done.
async function waitForJob(url) {
  const until = Date.now() + JOB_WAIT_MS;
  while (Date.now() < until) {
    const { body } = await getJson(url);
    if (body.status === 'succeeded') return body;
    if (body.status === 'failed') throw new Error(body.error?.detail || 'the run failed');
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error('the run took too long');
}

/** A table of each KPI: baseline, scenario, and the change. */
function comparison(body) {
  const [baseline, scenario] = body.scenarios;
  const rows = COMPARED.filter((name) => body.network?.[name]).map((name) => {
    const before = body.network[name][baseline.id];
    const after = body.network[name][scenario.id];
    const delta = typeof before === 'number' && typeof after === 'number' ? after - before : null;
    return el('tr', { 'data-kpi': name },
      el('th', { scope: 'row' }, name),
      el('td', {}, fmt(before)),
      el('td', {}, fmt(after)),
      el('td', {}, delta === null ? '–' : `${delta > 0 ? '+' : ''}${fmt(delta)}`));
  });
  return el('table', { class: 'compare' },
    el('caption', { class: 'visually-hidden' }, scenario.name ?? ''),
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col' }, t('kpi')), el('th', { scope: 'col' }, t('baseline')),
      el('th', { scope: 'col' }, t('result')), el('th', { scope: 'col' }, t('difference')))),
    el('tbody', {}, rows));
}
