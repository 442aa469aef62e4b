// page-burger.js: the citizen page (burger.html?id=N): identifiers, changed only on purpose
// after a confirm step (PATCH, audited by the API); a timeline across every channel; possible
// duplicates, merged after a confirm step.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, ContactItem,
  param, useLang } from './widgets.js';
import { get, patch, post, q, ApiError } from './api.js';
import { t } from './i18n.js';

const KINDS = ['email', 'phone', 'rrn', 'bsn'];

function Edit({ party, onSaved, onCancel }) {
  const [name, setName] = useState(party.name || '');
  const [add, setAdd] = useState({ email: '', phone: '', rrn: '', bsn: '' });
  const [remove, setRemove] = useState({});
  const [reviewing, setReviewing] = useState(false);
  const [confirmed, setConfirmed] = useState(false);
  const [errors, setErrors] = useState({});
  const held = [...(party.emails || []).map((v) => ['email', v]), ...(party.phones || []).map((v) => ['phone', v]),
    ...(party.rrn ? [['rrn', party.rrn]] : []), ...(party.bsn ? [['bsn', party.bsn]] : [])];
  const change = () => {
    const doc = {};
    const a = Object.fromEntries(KINDS.filter((k) => add[k].trim()).map((k) => [k, add[k].trim()]));
    const r = {};
    for (const key of Object.keys(remove)) if (remove[key]) { const [k, v] = key.split('\u0000'); r[k] = v; }
    if (Object.keys(a).length) doc.add = a;
    if (Object.keys(r).length) doc.remove = r;
    if (name.trim() !== (party.name || '')) doc.name = name.trim() || null;
    return doc;
  };
  const save = async () => {
    try {
      onSaved(await patch(`/api/v1/parties/${party.id}`, change()));
    } catch (err) {
      setReviewing(false);
      setConfirmed(false);
      if (err instanceof ApiError && err.field) setErrors({ [err.field]: err.detail });
      else setErrors({ form: errorText(err) });
    }
  };
  const doc = change();
  if (reviewing) {
    return html`<section aria-labelledby="review-h">
      <h3 id="review-h">${t('confirm_edit_q')}</h3>
      <ul>
        ${doc.name !== undefined && html`<li>${t('name')}: <span class="text">${doc.name || '—'}</span></li>`}
        ${Object.entries(doc.add || {}).map(([k, v]) => html`<li>${t('add')} ${t(k)}: <span class="text">${v}</span></li>`)}
        ${Object.entries(doc.remove || {}).map(([k, v]) => html`<li>${t('remove')} ${t(k)}: <span class="text">${v}</span></li>`)}
      </ul>
      <div class="field"><label><input type="checkbox" id="confirm-edit" checked=${confirmed}
        onChange=${(e) => setConfirmed(e.target.checked)} /> ${t('confirm_edit')}</label></div>
      <div class="actions">
        <button type="button" disabled=${!confirmed} onClick=${save}>${t('save')}</button>
        <button type="button" class="secondary" onClick=${() => setReviewing(false)}>${t('cancel')}</button>
      </div>
    </section>`;
  }
  return html`<form onSubmit=${(e) => { e.preventDefault(); if (Object.keys(doc).length) setReviewing(true); }}>
    <${Notice} kind="error">${errors.form}<//>
    <${Field} id="edit-name" label=${t('name')} value=${name} onInput=${setName} error=${errors.name} />
    <fieldset><legend>${t('add')}</legend>
      ${KINDS.map((k) => html`<${Field} id=${`add-${k}`} label=${t(k)} value=${add[k]}
        onInput=${(v) => setAdd({ ...add, [k]: v })} error=${errors[`add.${k}`]} />`)}
    </fieldset>
    ${held.length > 0 && html`<fieldset><legend>${t('remove')}</legend>
      ${held.map(([k, v], i) => html`<div class="field"><label><input type="checkbox" id=${`remove-${i}`}
        checked=${!!remove[k + '\u0000' + v]} onChange=${(e) => setRemove({ ...remove, [k + '\u0000' + v]: e.target.checked })} />
        ${t(k)}: <span class="text">${v}</span></label></div>`)}
      ${errors[`remove.email`] && html`<p class="error">${errors['remove.email']}</p>`}
    </fieldset>`}
    <div class="actions">
      <button type="submit">${t('confirm_edit_q')}</button>
      <button type="button" class="secondary" onClick=${onCancel}>${t('cancel')}</button>
    </div>
  </form>`;
}

function Duplicates({ party, onMerged }) {
  const [items, setItems] = useState(null);
  const [error, setError] = useState('');
  const [confirming, setConfirming] = useState(null);
  useEffect(() => {
    get(`/api/v1/parties/${party.id}/duplicates`).then((d) => setItems(d.items)).catch((e) => { setItems([]); setError(errorText(e)); });
  }, [party.id]);
  const merge = async (other) => {
    try {
      onMerged(await post(`/api/v1/parties/${party.id}/merge`, { party: other.id }));
    } catch (err) { setError(errorText(err)); }
    setConfirming(null);
  };
  return html`<section aria-labelledby="dup-h">
    <h2 id="dup-h">${t('duplicates')}</h2>
    <${Notice} kind="error">${error}<//>
    ${items === null ? html`<p>${t('loading')}</p>` : items.length === 0 ? html`<p>${t('none_yet')}</p>` : html`<ul class="plain" id="duplicates">
      ${items.map((p) => html`<li key=${p.id}>
        <a href=${`/burger.html?id=${p.id}`}><span class="text">${p.name || '—'}</span></a>
        <span class="text">${[...(p.emails || []), ...(p.phones || [])].join(', ')}</span>
        ${confirming === p.id ? html`<span>${t('confirm_merge', { a: party.name || party.id, b: p.name || p.id })}
            <button type="button" onClick=${() => merge(p)}>${t('confirm')}</button>
            <button type="button" class="secondary" onClick=${() => setConfirming(null)}>${t('cancel')}</button></span>`
          : html`<button type="button" class="secondary" onClick=${() => setConfirming(p.id)}>${t('merge')}</button>`}
      </li>`)}</ul>`}
  </section>`;
}

function Burger({ user }) {
  useLang();
  const id = param('id');
  const [party, setParty] = useState(null);
  const [contacts, setContacts] = useState(null);
  const [error, setError] = useState('');
  const [editing, setEditing] = useState(false);
  const [msg, setMsg] = useState('');
  const load = () => {
    get(`/api/v1/parties/${encodeURIComponent(id)}`).then(setParty).catch((e) => setError(errorText(e)));
    get(q(`/api/v1/parties/${encodeURIComponent(id)}/contacts`, { limit: 100 })).then((d) => setContacts(d.items))
      .catch(() => setContacts([]));
  };
  useEffect(load, []);
  const title = party ? `${t('burger_title')}: ${party.name || party.id}` : t('burger_title');
  return html`<${Frame} user=${user} title=${title}>
    <${Notice} kind="error">${error}<//>
    <${Notice} kind="ok">${msg}<//>
    ${party && html`<div class="columns"><div>
      <section aria-labelledby="ids-h">
        <h2 id="ids-h">${t('identifiers')}</h2>
        ${editing ? html`<${Edit} party=${party} onCancel=${() => setEditing(false)}
            onSaved=${(p) => { setParty(p); setEditing(false); setMsg(t('saved')); }} />`
          : html`<dl class="props" id="identifiers">
            <dt>${t('name')}</dt><dd class="text">${party.name || '—'}</dd>
            <dt>${t('email')}</dt><dd class="text">${(party.emails || []).join(', ') || '—'}</dd>
            <dt>${t('phone')}</dt><dd class="text">${(party.phones || []).join(', ') || '—'}</dd>
            <dt>${t('rrn')}</dt><dd class="text">${party.rrn || '—'}</dd>
            ${party.bsn && html`<dt>${t('bsn')}</dt><dd class="text">${party.bsn}</dd>`}
          </dl>
          <button type="button" class="secondary" onClick=${() => { setMsg(''); setEditing(true); }}>${t('edit')}</button>`}
      </section>
      <section aria-labelledby="tl-h">
        <h2 id="tl-h">${t('timeline')}</h2>
        ${contacts === null ? html`<p>${t('loading')}</p>` : contacts.length === 0 ? html`<p>${t('none_yet')}</p>`
          : html`<ul class="plain" id="timeline">${contacts.map((c) => html`<${ContactItem} key=${c.id} c=${c} />`)}</ul>`}
      </section>
    </div>
    <${Duplicates} party=${party} onMerged=${(p) => { setMsg(t('merged')); setParty(p); load(); }} />
    </div>`}
  <//>`;
}

mountPage(Burger);
