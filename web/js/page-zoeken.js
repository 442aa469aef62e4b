// page-zoeken.js: the search page (zoeken.html?q=...): contacts and citizens found by
// GET /api/v1/search (words, a reference, an email, a phone in any layout, an RRN; case and
// accents do not count), each linking to its page. The header's search box leads here.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, ContactItem,
  param, useLang } from './widgets.js';
import { get, q, ApiError } from './api.js';
import { t } from './i18n.js';

function Zoeken({ user }) {
  useLang();
  const [text, setText] = useState(param('q') || '');
  const [asked, setAsked] = useState(param('q') || '');
  const [found, setFound] = useState(null);
  const [fieldError, setFieldError] = useState('');
  const [error, setError] = useState('');
  useEffect(() => {
    setFound(null);
    setFieldError('');
    setError('');
    if (!asked.trim()) return;
    let live = true;
    get(q('/api/v1/search', { q: asked.trim(), type: 'all', limit: 50 }))
      .then((doc) => { if (live) setFound(doc); })
      .catch((e) => {
        if (!live) return;
        if (e instanceof ApiError && e.status === 422) setFieldError(e.detail);
        else setError(errorText(e));
      });
    return () => { live = false; };
  }, [asked]);
  const submit = (e) => {
    e.preventDefault();
    if (!text.trim()) { setFieldError(t('required')); return; }
    history.replaceState(null, '', q('/zoeken.html', { q: text.trim() }));
    setAsked(text.trim());
  };
  const parties = found ? found.parties || [] : [];
  const contacts = found ? found.contacts || [] : [];
  return html`<${Frame} user=${user} current="/zoeken.html" title=${t('zk_title')}>
    <form role="search" aria-label=${t('zk_form')} onSubmit=${submit} novalidate>
      <${Field} id="zk-q" type="search" label=${t('zk_term')} hint=${t('zk_hint')} value=${text}
        onInput=${setText} error=${fieldError} autocomplete="off" />
      <button type="submit">${t('zk_go')}</button>
    </form>
    <${Notice} kind="error">${error}<//>
    ${found && html`<p role="status" id="zk-count">${t('zk_count', { c: contacts.length, p: parties.length })}</p>
    <div class="columns">
      <section aria-labelledby="zk-contacts-h">
        <h2 id="zk-contacts-h">${t('zk_contacts')}</h2>
        ${contacts.length === 0 ? html`<p>${t('no_results')}</p>`
          : html`<ul class="plain" id="zk-contacts">${contacts.map((c) => html`<${ContactItem} key=${c.id} c=${c} />`)}</ul>`}
      </section>
      <section aria-labelledby="zk-parties-h">
        <h2 id="zk-parties-h">${t('zk_parties')}</h2>
        ${parties.length === 0 ? html`<p>${t('no_results')}</p>` : html`<ul class="plain" id="zk-parties">
          ${parties.map((p) => html`<li key=${p.id}>
            <a href=${`/burger.html?id=${encodeURIComponent(p.id)}`}><span class="text">${p.name || t('cc_no_name')}</span></a>
            <span class="text"> ${[...(p.emails || []), ...(p.phones || [])].join(', ')}</span>
          </li>`)}</ul>`}
      </section>
    </div>`}
  <//>`;
}

mountPage(Zoeken);
