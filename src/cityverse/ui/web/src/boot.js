// The dashboard's first step, imported before anything else (main.js imports it first):
// it asks for the layers switched on before the map library, the bulk of the page's
// code, is set up, and main.js takes the answers (see loadUsual there).

import './auth.js'; // the credential of this browser session, for these requests too
import { askEarly, featuresOfType } from './api.js';
import { LAYERS, usualNames } from './layers.js';

for (const layer of LAYERS) {
  if (!layer.on) continue;
  for (const { iri, attrs } of usualNames(layer)) {
    askEarly(`type:${iri}`, () => featuresOfType(iri, null, attrs));
  }
}
