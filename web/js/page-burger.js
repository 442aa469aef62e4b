// page-burger.js: the citizen page (burger.html?id=N): identifiers, changed only on purpose
// ("Wijzigen", a form, a confirm step the citizen agreed to, then PATCH, audited by the API;
// a 409 or 422 shown beside its field); a timeline across every channel, newest first;
// possible duplicates, merged after a confirm step by the back office or an admin.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, ContactItem,
  param, useLang } from './widgets.js';
import { get, patch, post, q, ApiError } from './api.js';
import { t } from './i18n.js';

const KINDS = ['email', 'phone', 'rrn', 'bsn'];
const MAY_MERGE = ['backoffice', 'admin']; // POST .../merge is theirs (docs/api.md)

function focusLater(id) {
  setTimeout(() => {
    const el = document.getElementById(id);
    if (el) el.focus();
  }, 0);
}

// The id of the field that shows an error the API names (add.email, remove.rrn, name).
function fieldIdOf(field) {
  if (field === 'name') return 'edit-name';
  const m = /^(add|remove)\.(email|phone|rrn|bsn)$/.exec(field || '');
  return m ? `${m[1]}-${m[2]}` : null;
}

function Edit({ party, onSaved, onCancel }) {
  const [name, setName] = useState(party.name || '');
  const [add, setAdd] = useState({ email: '', phone: '', rrn: '', bsn: '' });
  const [remove, setRemove] = useState({ email: '', phone: '', rrn: '', bsn: '' });
  const [reviewing, setReviewing] = useState(false);
  const [confirmed, setConfirmed] = useState(false);
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  useEffect(() => focusLater(reviewing ? 'review-h' : 'edit-name'), [reviewing]);
  const held = {
    email: party.emails || [], phone: party.phones || [],
    rrn: party.rrn ? [party.rrn] : [], bsn: party.bsn ? [party.bsn] : [],
  };
  const change = () => {
    const doc = {};
    const a = Object.fromEntries(KINDS.filter((k) => add[k].trim()).map((k) => [k, add[k].trim()]));
    const r = Object.fromEntries(KINDS.filter((k) => remove[k]).map((k) => [k, remove[k]]));
    if (Object.keys(a).length) doc.add = a;
    if (Object.keys(r).length) doc.remove = r;
    if (name.trim() !== (party.name || '')) doc.name = name.trim() || null;
    return doc;
  };
  const doc = change();
  const save = async () => {
    setBusy(true);
    try {
      onSaved(await patch(`/api/v1/parties/${party.id}`, doc));
    } catch (err) {
      setReviewing(false);
      setConfirmed(false);
      const id = err instanceof ApiError && fieldIdOf(err.field);
      if (id) {
        setErrors({ [err.field]: err.detail });
        focusLater(id);
      } else setErrors({ form: errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  if (reviewing) {
    return html`<section aria-labelledby="review-h" class="review">
      <h3 id="review-h" tabindex="-1">${t('confirm_edit_q')}</h3>
      <ul id="review-list">
        ${doc.name !== undefined && html`<li>${t('name')}: <span class="text">${doc.name || '—'}</span></li>`}
        ${Object.entries(doc.remove || {}).map(([k, v]) => html`<li>${t('remove')} ${t(k)}: <span class="text">${v}</span></li>`)}
        ${Object.entries(doc.add || {}).map(([k, v]) => html`<li>${t('add')} ${t(k)}: <span class="text">${v}</span></li>`)}
      </ul>
      <div class="field checkbox"><label><input type="checkbox" id="confirm-edit" checked=${confirmed}
        onChange=${(e) => setConfirmed(e.target.checked)} /> ${t('bg_confirmed')}</label></div>
      <div class="actions">
        <button type="button" disabled=${!confirmed || busy} onClick=${save}>${t('save')}</button>
        <button type="button" class="secondary" onClick=${() => setReviewing(false)}>${t('bg_back')}</button>
      </div>
    </section>`;
  }
  const fieldErrors = Object.entries(errors).filter(([k, v]) => v && fieldIdOf(k));
  return html`<form id="edit-form" novalidate onSubmit=${(e) => {
    e.preventDefault();
    if (Object.keys(doc).length) { setErrors({}); setReviewing(true); } else setErrors({ form: t('bg_nothing') });
  }}>
    <${Notice} kind="error">${errors.form}<//>
    ${fieldErrors.length > 0 && html`<div class="notice error" role="alert">
      <p>${t('cc_check_fields')}</p>
      <ul>${fieldErrors.map(([k, v]) => html`<li><a href=${`#${fieldIdOf(k)}`}>${k}</a>: ${v}</li>`)}</ul>
    </div>`}
    <${Field} id="edit-name" label=${t('name')} value=${name} onInput=${setName} error=${errors.name} autocomplete="off" />
    <fieldset><legend>${t('add')}</legend>
      ${KINDS.map((k) => html`<${Field} id=${`add-${k}`} label=${`${t(k)} ${t('bg_to_add')}`} value=${add[k]}
        onInput=${(v) => setAdd({ ...add, [k]: v })} error=${errors[`add.${k}`]} autocomplete="off" />`)}
    </fieldset>
    ${KINDS.some((k) => held[k].length) && html`<fieldset><legend>${t('remove')}</legend>
      ${KINDS.filter((k) => held[k].length).map((k) => html`<${Field} id=${`remove-${k}`} as="select"
        label=${`${t(k)} ${t('bg_to_remove')}`} value=${remove[k]} error=${errors[`remove.${k}`]}
        onInput=${(v) => setRemove({ ...remove, [k]: v })}>
          <option value="">${t('bg_keep_all')}</option>
          ${held[k].map((v) => html`<option value=${v}>${v}</option>`)}
        <//>`)}
    </fieldset>`}
    <div class="actions">
      <button type="submit">${t('bg_next')}</button>
      <button type="button" class="secondary" onClick=${onCancel}>${t('cancel')}</button>
    </div>
  </form>`;
}

function Duplicates({ user, party, onMerged }) {
  const [items, setItems] = useState(null);
  const [error, setError] = useState('');
  const [confirming, setConfirming] = useState(null);
  const [busy, setBusy] = useState(false);
  const mayMerge = MAY_MERGE.includes(user.role);
  useEffect(() => {
    setItems(null);
    get(`/api/v1/parties/${party.id}/duplicates`).then((d) => setItems(d.items))
      .catch((e) => { setItems([]); setError(errorText(e)); });
  }, [party.id, party.merged]);
  const merge = async (other) => {
    setBusy(true);
    setError('');
    try {
      onMerged(await post(`/api/v1/parties/${party.id}/merge`, { party: other.id }), other);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 409 ? t('bg_merge_refused', { detail: err.detail }) : errorText(err));
    } finally {
      setBusy(false);
      setConfirming(null);
    }
  };
  return html`<section aria-labelledby="dup-h">
    <h2 id="dup-h">${t('duplicates')}</h2>
    ${!mayMerge && html`<p class="hint" id="merge-why">${t('bg_merge_role')}</p>`}
    <${Notice} kind="error">${error}<//>
    ${items === null ? html`<p>${t('loading')}</p>` : items.length === 0 ? html`<p>${t('bg_no_duplicates')}</p>` : html`<ul class="plain" id="duplicates">
      ${items.map((p) => html`<li key=${p.id}>
        <a href=${`/burger.html?id=${p.id}`}><span class="text">${p.name || '—'}</span></a>
        <span class="text">${[...(p.emails || []), ...(p.phones || []), ...(p.rrn ? [p.rrn] : [])].join(', ')}</span>
        ${mayMerge && (confirming === p.id ? html`<div class="confirm" role="group" aria-labelledby=${`merge-q-${p.id}`}>
            <p id=${`merge-q-${p.id}`}>${t('confirm_merge', { a: party.name || party.id, b: p.name || p.id })}</p>
            <button type="button" id=${`merge-yes-${p.id}`} disabled=${busy} onClick=${() => merge(p)}>${t('bg_merge_confirm')}</button>
            <button type="button" class="secondary" onClick=${() => setConfirming(null)}>${t('cancel')}</button></div>`
          : html`<button type="button" class="secondary" onClick=${() => { setConfirming(p.id); focusLater(`merge-yes-${p.id}`); }}
              aria-label=${t('bg_merge_named', { name: p.name || p.id })}>${t('merge')}</button>`)}
      </li>`)}</ul>`}
  </section>`;
}

function Burger({ user }) {
  useLang();
  const [id, setId] = useState(param('id'));
  const [party, setParty] = useState(null);
  const [contacts, setContacts] = useState(null);
  const [error, setError] = useState('');
  const [editing, setEditing] = useState(false);
  const [msg, setMsg] = useState('');
  const load = (which) => {
    get(`/api/v1/parties/${encodeURIComponent(which)}`).then(setParty).catch((e) => setError(errorText(e)));
    get(q(`/api/v1/parties/${encodeURIComponent(which)}/contacts`, { limit: 100 })).then((d) => setContacts(d.items))
      .catch(() => setContacts([]));
  };
  useEffect(() => {
    if (!id || !/^\d+$/.test(id)) setError(t('bg_no_id'));
    else load(id);
  }, [id]);
  const merged = (p, other) => {
    // The older party survives whichever page the merge was asked from: show that one.
    if (String(p.id) !== String(id)) history.replaceState(null, '', `/burger.html?id=${p.id}`);
    const n = (p.merged && p.merged.contacts || []).length;
    setMsg(t('bg_merged', { other: other.name || other.id, n }));
    setParty({ ...p, merged: p.merged && p.merged.party });
    setId(String(p.id));
    get(q(`/api/v1/parties/${p.id}/contacts`, { limit: 100 })).then((d) => setContacts(d.items)).catch(() => {});
    focusLater('page-msg');
  };
  const title = party ? `${t('burger_title')}: ${party.name || party.id}` : t('burger_title');
  return html`<${Frame} user=${user} title=${title}>
    <${Notice} kind="error">${error}<//>
    ${msg && html`<p class="notice ok" role="status" id="page-msg" tabindex="-1">${msg}</p>`}
    ${party && html`<div class="columns"><div>
      <section aria-labelledby="ids-h">
        <h2 id="ids-h">${t('identifiers')}</h2>
        ${editing ? html`<${Edit} party=${party} onCancel=${() => { setEditing(false); focusLater('edit-open'); }}
            onSaved=${(p) => { setParty(p); setEditing(false); setMsg(t('bg_saved')); focusLater('page-msg'); }} />`
          : html`<dl class="props" id="identifiers">
            <dt>${t('name')}</dt><dd class="text" id="id-name">${party.name || '—'}</dd>
            <dt>${t('email')}</dt><dd class="text" id="id-email">${(party.emails || []).join(', ') || '—'}</dd>
            <dt>${t('phone')}</dt><dd class="text" id="id-phone">${(party.phones || []).join(', ') || '—'}</dd>
            <dt>${t('rrn')}</dt><dd class="text" id="id-rrn">${party.rrn || '—'}</dd>
            <dt>${t('bsn')}</dt><dd class="text" id="id-bsn">${party.bsn || '—'}</dd>
          </dl>
          <button type="button" class="secondary" id="edit-open" onClick=${() => { setMsg(''); setEditing(true); }}>${t('bg_edit')}</button>`}
      </section>
      <section aria-labelledby="tl-h">
        <h2 id="tl-h">${t('timeline')}</h2>
        ${contacts === null ? html`<p>${t('loading')}</p>` : contacts.length === 0 ? html`<p>${t('none_yet')}</p>`
          : html`<ul class="plain" id="timeline">${contacts.map((c) => html`<${ContactItem} key=${c.id} c=${c} />`)}</ul>`}
      </section>
    </div>
    <${Duplicates} user=${user} party=${party} onMerged=${merged} />
    </div>`}
  <//>`;
}

mountPage(Burger);
