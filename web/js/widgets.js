// widgets.js: what the pages share: the page frame (skip link, header with the user's name,
// navigation, language picker, sign-out), labelled fields whose errors are tied to them,
// messages, and small views of contacts. Every citizen or mail text is passed to Preact as
// text, which escapes it; nothing here sets HTML.
import { html, render, useState, useEffect } from '../vendor/preact-htm.module.js';
import { session, signOut, ApiError } from './api.js';
import { t, lang, setLang, onLang, LANGUAGES, when } from './i18n.js';

export { html, useState, useEffect };

// Re-renders the caller when the language changes.
export function useLang() {
  const [, set] = useState(lang());
  useEffect(() => onLang(set), []);
  return lang();
}

export function LanguagePicker() {
  useLang();
  return html`<div class="lang">
    <label for="lang-select">${t('language')}</label>
    <select id="lang-select" value=${lang()} onChange=${(e) => setLang(e.target.value)}>
      ${LANGUAGES.map((l) => html`<option value=${l.code} lang=${l.code}>${l.name}</option>`)}
    </select>
  </div>`;
}

// The search box every signed-in page has: a plain GET form to zoeken.html?q= (no script
// needed; the search page does the asking).
function HeaderSearch() {
  return html`<form class="header-search" role="search" action="/zoeken.html" method="get"
    aria-label=${t('zk_landmark')}>
    <label for="header-q" class="visually-hidden">${t('zk_header')}</label>
    <input id="header-q" name="q" type="search" maxlength="200" autocomplete="off"
      placeholder=${t('zk_placeholder')} />
    <button type="submit" class="secondary">${t('zk_go')}</button>
  </form>`;
}

function Header({ user, current }) {
  useLang();
  const links = [
    { href: '/contactcenter.html', key: 'nav_contactcenter', roles: ['agent', 'admin'] },
    { href: '/taken.html', key: 'nav_tasks', roles: ['backoffice', 'admin'] },
    { href: '/beheer.html', key: 'nav_admin', roles: ['admin'] },
  ].filter((l) => user && l.roles.includes(user.role));
  const out = async () => {
    try {
      await signOut();
    } finally {
      location.assign('/');
    }
  };
  return html`<header class="top">
    <span class="brand">${t('app')}</span>
    ${links.length > 0 && html`<nav aria-label=${t('nav')}>
      <ul>
        ${links.map((l) => html`<li><a href=${l.href}
          aria-current=${current === l.href ? 'page' : undefined}>${t(l.key)}</a></li>`)}
      </ul>
    </nav>`}
    ${user && html`<${HeaderSearch} />`}
    <${LanguagePicker} />
    ${user && html`<span class="user">${t('signed_in_as', { name: user.name })}</span>
      <button type="button" class="secondary" onClick=${out}>${t('signout')}</button>`}
  </header>`;
}

// The frame every page has: skip link, header, <main id="main"> with the page's title.
export function Frame({ user, current, title, children }) {
  useLang();
  useEffect(() => {
    document.title = `${title} · ${t('app')}`;
  }, [title, lang()]);
  return html`<a class="skip" href="#main">${t('skip')}</a>
    <${Header} user=${user} current=${current} />
    <main id="main" tabindex="-1">
      <h1>${title}</h1>
      ${children}
    </main>`;
}

// A labelled field; error (text) is shown under it and tied with aria-describedby.
export function Field({ id, label, error, hint, type = 'text', value, onInput, as, required,
  children, ...rest }) {
  const described = [hint ? `${id}-hint` : null, error ? `${id}-error` : null]
    .filter(Boolean).join(' ') || undefined;
  const common = {
    id,
    name: id,
    value,
    required,
    'aria-invalid': error ? 'true' : undefined,
    'aria-describedby': described,
    onInput: onInput && ((e) => onInput(e.target.value)),
    ...rest,
  };
  let control;
  if (as === 'textarea') control = html`<textarea ...${common}></textarea>`;
  else if (as === 'select') {
    control = html`<select ...${common} onChange=${common.onInput}>${children}</select>`;
  } else control = html`<input type=${type} ...${common} />`;
  return html`<div class=${'field' + (error ? ' invalid' : '')}>
    <label for=${id}>${label}</label>
    ${hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
    ${control}
    ${error && html`<p class="error" id=${`${id}-error`}>${error}</p>`}
  </div>`;
}

// A message for everyone (role=status) or an error (role=alert).
export function Notice({ kind = 'info', children }) {
  if (!children) return null;
  return html`<p class=${'notice ' + kind} role=${kind === 'error' ? 'alert' : 'status'}>
    ${children}</p>`;
}

// The text an ApiError or any exception shows a person.
export function errorText(e) {
  if (e instanceof ApiError && e.status === 404 && e.detail === 'no such resource') {
    return t('not_built');
  }
  return t('error', { detail: e && (e.detail || e.message) });
}

export function statusText(status) {
  return t('st_' + status) || status;
}

export function channelText(ch) {
  const k = { phone: 'ch_phone', counter: 'ch_counter', email: 'ch_email', web: 'ch_web' }[ch];
  return k ? t(k) : ch;
}

export { when };

// A contact as one line of a list: reference (a link), channel, time, status, subject.
export function ContactItem({ c }) {
  return html`<li class="contact-item">
    <a href=${`/contact.html?id=${encodeURIComponent(c.id)}`}>${c.reference}</a>
    <span class="tag">${channelText(c.channel)}</span>
    <span class="tag">${statusText(c.status)}</span>
    <time datetime=${c.received_at}>${when(c.received_at)}</time>
    <span class="subject">${c.subject || ''}</span>
  </li>`;
}

// The query parameter name of this page's URL.
export function param(name) {
  return new URLSearchParams(location.search).get(name);
}

// Mounts a page: reads the session (a page without one goes to sign-in), then renders
// Page({user}) into the body.
export async function mountPage(Page) {
  const root = document.getElementById('app') || document.body;
  let user = null;
  try {
    user = await session();
  } catch (e) {
    render(html`<${Frame} title=${t('app')}><${Notice} kind="error">${errorText(e)}<//><//>`, root);
    return;
  }
  if (!user) {
    location.assign('/?next=' + encodeURIComponent(location.pathname + location.search));
    return;
  }
  render(html`<${Page} user=${user} />`, root);
}

export { render };
