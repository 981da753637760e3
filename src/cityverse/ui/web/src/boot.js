// The dashboard's first step, an entry of its own (build.mjs): a few kilobytes that the
// page runs as soon as they arrive, before the map library (app.js, the bulk of the
// page's code) is fetched and compiled. It asks for the layers switched on, a request
// per layer (see usualRequests), and main.js takes the answers (see loadUsual there);
// then for the code of the map's worker, which the map would otherwise ask for only
// once app.js has been read, behind the answers for the map's data.

import './auth.js'; // the credential of this browser session, for these requests too
import { askEarly, featuresOfTypes } from './api.js';
import { LAYERS, requestKey, usualRequests } from './layers.js';

for (const request of usualRequests(LAYERS.filter((layer) => layer.on))) {
  askEarly(requestKey(request), (onPage) => featuresOfTypes(request.iris, onPage, request.attrs));
}

