// stream.js: the one module that listens to the register's events (GET /api/v1/events,
// server-sent events). Pages subscribe by kind; one EventSource per page, opened on the
// first subscription. EventSource resumes by itself with Last-Event-ID; when the browser
// gives up (the server answered an error), a new one starts from the last id seen.

const KINDS = ['contact.created', 'contact.changed', 'message.added', 'task.created',
  'task.due', 'task.done', 'reset'];
const handlers = new Map(); // kind -> Set of functions
let source = null;
let lastId = null;
let retryMs = 1000;
let retryTimer = null;
let stateFn = null;

function dispatch(kind, ev) {
  if (ev.lastEventId) lastId = ev.lastEventId;
  let data = null;
  try {
    data = ev.data ? JSON.parse(ev.data) : null;
  } catch (e) {
    return;
  }
  for (const fn of handlers.get(kind) || []) fn(data, kind);
  for (const fn of handlers.get('*') || []) fn(data, kind);
}

function open() {
  const url = lastId ? `/api/v1/events?last_event_id=${encodeURIComponent(lastId)}` : '/api/v1/events';
  source = new EventSource(url, { withCredentials: true });
  source.onopen = () => {
    retryMs = 1000;
    // Subscribers of 'open' reload what they show: what changed before the stream was
    // (re)connected reached no event handler. The attribute lets the browser tests wait for it.
    document.documentElement.dataset.stream = 'open';
    for (const fn of handlers.get('open') || []) fn(null, 'open');
    if (stateFn) stateFn('open');
  };
  source.onerror = () => {
    document.documentElement.dataset.stream = 'down';
    if (stateFn) stateFn(source && source.readyState === EventSource.CONNECTING ? 'reconnecting' : 'closed');
    if (source && source.readyState === EventSource.CLOSED) {
      source = null;
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => {
        retryTimer = null;
        open();
      }, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    }
  };
  for (const kind of KINDS) source.addEventListener(kind, (ev) => dispatch(kind, ev));
}

// Calls fn(data, kind) for each event of kind ('*': every kind; 'open': each time the stream
// is connected, with data null); returns the unsubscribe.
export function subscribe(kind, fn) {
  if (!handlers.has(kind)) handlers.set(kind, new Set());
  handlers.get(kind).add(fn);
  if (!source && !retryTimer) open();
  return () => handlers.get(kind).delete(fn);
}

// fn('open' | 'reconnecting' | 'closed') as the connection changes.
export function onState(fn) {
  stateFn = fn;
}

export function close() {
  clearTimeout(retryTimer);
  retryTimer = null;
  if (source) source.close();
  source = null;
}
