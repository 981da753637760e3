// Time: the slider that replays the twin's state from history, and the attribute chart.
// Both read the standard temporal API (GS CIM 009 5.7.3 and 5.7.4).

import uPlot from 'uplot';
import { attributeHistory, HttpError, shortName, stateAt } from './api.js';
import { formatTime, onLanguage, t } from './i18n.js';
import { el, renderInspector } from './panels.js';
import { clearReplay, entities, flush, setReplay } from './state.js';

const slider = () => document.getElementById('slider');
const DAY_MS = 86_400_000;
let windowMs = DAY_MS;
let endMs = Date.now();
let generation = 0;
let chartState = null; // { id, typeIri, attr }
let plot = null;

export function sliderTime() {
  const s = slider();
  if (Number(s.value) >= Number(s.max)) return null;
  return endMs - windowMs + (Number(s.value) / Number(s.max)) * windowMs;
}

export function initTimeline() {
  const s = slider();
  const windowSelect = document.getElementById('window');
  let timer = 0;
  s.addEventListener('input', () => {
    showTime();
    clearTimeout(timer);
    timer = setTimeout(replayNow, 250);
  });
  s.addEventListener('change', () => {
    clearTimeout(timer);
    replayNow();
  });
  windowSelect.addEventListener('change', () => {
    windowMs = Number(windowSelect.value);
    endMs = Date.now();
    replayNow();
    if (chartState) drawChart();
  });
  document.getElementById('now').addEventListener('click', () => {
    s.value = s.max;
    replayNow();
  });
  onLanguage(() => {
    showTime();
    if (chartState) drawChart();
  });
  showTime();
}

function showTime() {
  const at = sliderTime();
  const output = document.getElementById('time-value');
  output.textContent = at === null ? t('now') : formatTime(at);
  slider().setAttribute('aria-valuetext', output.textContent);
}

/** Replay the state at the slider's time, or go back to the live state at its end. */
export async function replayNow() {
  const status = document.getElementById('time-status');
  const at = sliderTime();
  const mine = ++generation;
  showTime();
  if (at === null) {
    endMs = Date.now();
    clearReplay();
    status.textContent = '';
    flush();
    renderInspector();
    document.body.dataset.replay = 'live';
    return;
  }
  status.textContent = t('loading');
  const types = new Set();
  for (const stored of entities.values()) if (stored.layer.id !== 'buildings') types.add(stored.typeIri);
  try {
    const states = [];
    for (const typeIri of types) states.push(...(await stateAt(typeIri, at)));
    if (mine !== generation) return; // the slider moved on while this was loading
    setReplay(states);
    flush();
    renderInspector();
    status.textContent = t('replaying', formatTime(at));
    document.body.dataset.replay = String(at);
  } catch (error) {
    if (mine !== generation) return;
    status.textContent = error instanceof HttpError && (error.status === 404 || error.status === 501)
      ? t('replayUnavailable')
      : t('failed', error.message);
    document.body.dataset.replay = 'error';
  }
}

/** Back to the live state, and no chart: what they showed may no longer be the
 * person's to see. */
export function resetTime() {
  slider().value = slider().max;
  replayNow();
  chartState = null;
  plot?.destroy();
  plot = null;
  const box = document.getElementById('chart');
  delete box.dataset.series;
  delete box.dataset.points;
  box.replaceChildren(el('p', { class: 'muted', 'data-i18n': 'pickAttribute' }, t('pickAttribute')));
}

/** Chart one attribute of an entity over the time window: measured and simulated series. */
export async function chart(id, typeIri, attr) {
  chartState = { id, typeIri, attr };
  await drawChart();
}

async function drawChart() {
  const box = document.getElementById('chart');
  const asked = chartState;
  const { id, typeIri, attr } = asked;
  box.replaceChildren(el('p', { class: 'muted' }, t('loading')));
  let series;
  try {
    // Over more than a day, the mean of each hour: a week of 5-minute readings would
    // be thousands of points for a chart a few hundred pixels wide.
    series = await attributeHistory(id, typeIri, attr, Date.now() - windowMs, { hourly: windowMs > DAY_MS });
  } catch (error) {
    if (asked !== chartState) return;
    const text = error instanceof HttpError && (error.status === 404 || error.status === 501)
      ? t('replayUnavailable')
      : t('failed', error.message);
    box.replaceChildren(el('p', { class: 'muted' }, text));
    return;
  }
  if (asked !== chartState) return; // another chart was asked for, or none any more
  series = series.filter((s) => s.points.length);
  if (!series.length) {
    box.replaceChildren(el('p', { class: 'muted' }, t('noHistory')));
    return;
  }
  // uPlot wants one shared x axis: the union of every series' times, gaps as null.
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const index = new Map(times.map((time, i) => [time, i]));
  const data = [times.map((time) => time / 1000)];
  for (const s of series) {
    const ys = new Array(times.length).fill(null);
    for (const [time, value] of s.points) ys[index.get(time)] = value;
    data.push(ys);
  }
  const colours = ['#1565c0', '#ef6c00', '#2e7d32', '#8e24aa'];
  const hourly = windowMs > DAY_MS ? ` · ${t('hourlyMean')}` : '';
  const label = (s) => (s.datasetId ? `${t('simulated')} (${shortName(s.datasetId)})` : t('measured')) + hourly;
  const title = `${shortName(attr)} — ${shortName(id)}`;
  const holder = el('div', { class: 'plot', role: 'img', 'aria-label': title });
  box.replaceChildren(el('p', { class: 'chart-title' }, title), holder);
  plot?.destroy();
  plot = new uPlot({
    width: Math.max(240, box.clientWidth - 8),
    height: 200,
    series: [{}, ...series.map((s, i) => ({
      label: label(s),
      stroke: colours[i % colours.length],
      width: 2,
      spanGaps: true,
      dash: s.datasetId ? [6, 4] : undefined,
    }))],
    axes: [{}, { size: 50 }],
    scales: { x: { time: true } },
  }, data, holder);
  box.dataset.series = String(series.length);
  box.dataset.points = String(times.length);
}
