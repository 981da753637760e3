// Bundles src/ into ../static: boot.js (the first requests, a few kilobytes), app.js (the
// rest, MapLibre GL JS and uPlot included), the code they share (chunk-<hash>.js), the
// map's worker, app.css and index.html. The output is committed so that the Python
// package needs no npm when it is installed.
//
// Two entries, so that the page's first requests leave as soon as boot.js and its
// chunk are read, while the megabyte of app.js is still being fetched and compiled:
// both import the shared chunk, so they share one credential and one set of early
// answers (api.js). index.html names the chunk for the browser to fetch with boot.js.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

const out = new URL('../static/', import.meta.url);
mkdirSync(out, { recursive: true });
for (const name of readdirSync(out)) {
  if (/^chunk-.*\.js$/.test(name)) rmSync(new URL(name, out));
}

const result = await build({
  entryPoints: { boot: 'src/boot.js', app: 'src/main.js' },
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  legalComments: 'linked',
  outdir: out.pathname,
  chunkNames: 'chunk-[hash]',
  metafile: true,
  logLevel: 'info',
});

// What boot.js imports, to be fetched beside it rather than after it has been read.
const outputs = result.metafile.outputs;
const bootOut = Object.keys(outputs).find((file) => basename(file) === 'boot.js');
const bootImports = outputs[bootOut].imports.filter((i) => i.kind === 'import-statement').map((i) => basename(i.path));
const preload = bootImports.map((name) => `<link rel="modulepreload" href="/ui/static/${name}">`).join('\n');

copyFileSync('node_modules/maplibre-gl/dist/maplibre-gl-worker.mjs', new URL('maplibre-gl-worker.mjs', out));
const css = [
  'node_modules/maplibre-gl/dist/maplibre-gl.css',
  'node_modules/uplot/dist/uPlot.min.css',
  'src/app.css',
].map((file) => readFileSync(file, 'utf8')).join('\n');
writeFileSync(new URL('app.css', out), css);
const page = readFileSync('src/index.html', 'utf8');
if (!page.includes('<!--cityverse-preload-->')) throw new Error('index.html lacks <!--cityverse-preload-->');
writeFileSync(new URL('index.html', out), page.replace('<!--cityverse-preload-->', preload));
