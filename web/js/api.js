// api.js: the one module that talks to loketd's API: same-origin credentials (the session
// cookie), the CSRF token on every state change, problem+json turned into ApiError, and a
// lapsed session sent back to the sign-in page.

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
let csrf = null; // from the session, kept in memory only (never in storage a script could read later)

export class ApiError extends Error {
  constructor(status, detail, headers) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail || '';
    this.headers = headers;
    // The API names the field first ("party.email: not an address"): errors go beside it.
    const m = /^([a-z_][a-z0-9_.]*): /i.exec(this.detail);
    this.field = m ? m[1] : null;
  }
}

function signInPage() {
  const here = location.pathname + location.search;
  location.assign('/?next=' + encodeURIComponent(here));
}

// One request; answers the decoded JSON (null for 204). Throws ApiError.
// options: body (sent as JSON), signin401 (a 401 is an answer, not a lapsed session).
export async function request(method, path, options = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(options.body);
  }
  if (STATE_CHANGING.has(method) && csrf) headers['X-CSRF-Token'] = csrf;
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  const type = (res.headers.get('Content-Type') || '').split(';')[0].trim();
  let doc = null;
  if (type === 'application/json' || type === 'application/problem+json') {
    doc = await res.json().catch(() => null);
  }
  if (res.ok) return doc;
  if (res.status === 401 && !options.signin401) {
    csrf = null;
    signInPage();
  }
  const detail = doc && typeof doc.detail === 'string' ? doc.detail : res.statusText;
  throw new ApiError(res.status, detail, res.headers);
}

export const get = (path, o) => request('GET', path, o);
export const post = (path, body, o = {}) => request('POST', path, { ...o, body: body ?? {} });
export const patch = (path, body, o = {}) => request('PATCH', path, { ...o, body });
export const put = (path, body, o = {}) => request('PUT', path, { ...o, body });
export const del = (path, o) => request('DELETE', path, o);

// The signed-in user ({name, role, departments, organisation, extension}), or null.
export async function session() {
  try {
    const doc = await request('GET', '/api/v1/session', { signin401: true });
    csrf = doc.csrf;
    return doc.user;
  } catch (e) {
    if (e.status === 401 || e.status === 404) return null;
    throw e;
  }
}

// Signs in; answers the user. A wrong name or password, a 429 and the rest are ApiErrors.
export async function signIn(username, password) {
  const doc = await request('POST', '/api/v1/session', {
    body: { username, password },
    signin401: true,
  });
  csrf = doc.csrf;
  return doc.user;
}

export async function signOut() {
  try {
    await request('DELETE', '/api/v1/session', { signin401: true });
  } finally {
    csrf = null;
  }
}

// The page a role starts on.
export function homeOf(user) {
  return user && user.role === 'backoffice' ? '/taken.html' : '/contactcenter.html';
}

// A path with its query built from params, leaving out empty values.
export function q(path, params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `${path}?${s}` : path;
}

// Reads a File in the browser and answers its content as base64 (for the messages API).
export function fileToBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onerror = () => reject(r.error);
    r.onload = () => {
      const url = String(r.result);
      resolve(url.slice(url.indexOf(',') + 1));
    };
    r.readAsDataURL(file);
  });
}
