// Server-Sent Events read with fetch(). Unlike EventSource, a request made this way can
// carry headers (the signed-in person's Authorization), so no credential has to go into
// the stream's URL, where the server and any proxy in between would see and keep it.

const RETRY_MS = 2000;
const MAX_RETRY_MS = 30_000;

/**
 * Follow the event stream at `url` until `close()`; after a dropped or failed connection,
 * connect again after a delay (2 s, doubling to 30 s; back to 2 s once connected).
 *
 * - `headers()`: the headers of each connection;
 * - `onOpen()`: a connection answered with an event stream;
 * - `onEvent({type, data, id})`: an event (`type` "message" when the event names none);
 * - `onDrop()`: the connection failed or ended; another follows after the delay;
 * - `onFail(response)`: the server answered something else than an event stream (an
 *   error status, another media type): as with EventSource, no further connection is
 *   tried, and `response` (whose body is the callee's to read) says why.
 *
 *     const stream = eventStream('/cityverse/v1/stream?type=…', { onEvent: (e) => … });
 *     stream.close();
 */
export function eventStream(url, { headers = () => ({}), onOpen, onEvent, onDrop, onFail } = {}) {
  const controller = new AbortController();
  let closed = false;
  let delay = RETRY_MS;

  const follow = async () => {
    while (!closed) {
      try {
        const response = await fetch(url, {
          headers: { Accept: 'text/event-stream', ...headers() },
          cache: 'no-store',
          signal: controller.signal,
        });
        const type = response.headers.get('Content-Type') || '';
        if (!response.ok || !type.startsWith('text/event-stream')) {
          closed = true;
          onFail?.(response);
          return;
        }
        delay = RETRY_MS;
        onOpen?.();
        await readEvents(response.body, (event) => onEvent?.(event));
      } catch {
        // a refused connection, a network that went away, or close(): said below
      }
      if (closed) return;
      onDrop?.();
      await pause(delay, controller.signal);
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
  };
  follow();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const feed = eventParser(dispatch);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    feed(value);
  }
}

/**
 * A parser of the text/event-stream format (HTML Living Standard, 9.2.6): feed it the
 * stream's text in pieces of any size; it calls `dispatch({type, data, id})` for each
 * complete event. Comments (": keep-alive") and unknown fields are skipped.
 */
export function eventParser(dispatch) {
  let pending = '';
  let data = null; // the data lines of the event being read
  let type = '';
  let lastId = '';

  const line = (text) => {
    if (text === '') {
      if (data !== null) dispatch({ type: type || 'message', data: data.join('\n'), id: lastId });
      data = null;
      type = '';
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') (data ??= []).push(value);
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) lastId = value;
  };

  return (chunk) => {
    let text = pending + chunk;
    // A CR that ends the piece may be the first half of a CRLF: keep it for the next one.
    const heldCr = text.endsWith('\r');
    if (heldCr) text = text.slice(0, -1);
    const lines = text.split(/\r\n|\r|\n/);
    pending = lines.pop() + (heldCr ? '\r' : '');
    for (const each of lines) line(each);
  };
}
