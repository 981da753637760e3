// Bundles src/ into ../static: app.js (MapLibre GL JS and uPlot included), the map's
// worker, app.css and index.html. The output is committed so that the Python package
// needs no npm when it is installed.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const out = new URL('../static/', import.meta.url);
mkdirSync(out, { recursive: true });

await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  legalComments: 'linked',
  outfile: new URL('app.js', out).pathname,
  logLevel: 'info',
});

copyFileSync('node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs', new URL('maplibre-gl-worker.mjs', out));
const css = [
  'node_modules/maplibre-gl/dist/maplibre-gl.css',
  'node_modules/uplot/dist/uPlot.min.css',
  'src/app.css',
].map((file) => readFileSync(file, 'utf8')).join('\n');
writeFileSync(new URL('app.css', out), css);
copyFileSync('src/index.html', new URL('index.html', out));
