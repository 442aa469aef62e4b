// page-contactcenter.js: the agent's page (contactcenter / onthaal): log a contact fast and
// with the keyboard alone (channel, citizen found by search or new, product picked from the
// catalogue by name or keyword with its standard answer, subject, question, answer), then
// resolve it at the first line or refer it to a department with the due time shown before
// confirming; an internal note on what was just logged; my recent contacts, kept live.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, ContactItem,
  useLang } from './widgets.js';
import { get, post, q, ApiError } from './api.js';
import { subscribe } from './stream.js';
import { t, lang } from './i18n.js';

const CHANNELS = ['phone', 'counter', 'email', 'web']; // what POST /api/v1/contacts accepts
const EMPTY_PARTY = { name: '', email: '', phone: '', rrn: '' };
// The API's field names and the ids of the fields that show their errors.
const FIELD_IDS = { 'party.name': 'party-name', 'party.email': 'party-email', 'party.phone': 'party-phone',
  'party.rrn': 'party-rrn', subject: 'subject', body: 'body', answer: 'answer' };
const FIELD_LABELS = { 'party.name': 'name', 'party.email': 'email', 'party.phone': 'phone',
  'party.rrn': 'rrn', subject: 'subject', body: 'question', answer: 'answer' };

// A due time as the municipality reads it: its own time zone, whatever the browser's.
export function dueText(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(lang(), { timeZone: 'Europe/Brussels', dateStyle: 'full', timeStyle: 'short' });
}

// Case and accents do not count when a product is looked for.
function fold(s) {
  return String(s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
}

function keywordsOf(p) {
  if (Array.isArray(p.keywords)) return p.keywords.map(String);
  return String(p.keywords || '').split(/[\s;]+/).filter(Boolean);
}

function focusLater(id) {
  setTimeout(() => {
    const el = document.getElementById(id);
    if (el) el.focus();
  }, 0);
}

// The strongest identifier of a party found by search, by which the API finds it again.
function partyRef(p) {
  if (p.rrn) return { rrn: p.rrn };
  if (p.bsn) return { bsn: p.bsn };
  if (p.emails && p.emails[0]) return { email: p.emails[0] };
  if (p.phones && p.phones[0]) return { phone: p.phones[0] };
  return p.name ? { name: p.name } : {};
}

function PartyLine({ p }) {
  const ids = [...(p.emails || []), ...(p.phones || []), ...(p.rrn ? [p.rrn] : [])];
  return html`<span class="text">${p.name || t('cc_no_name')}</span>
    ${ids.length > 0 && html` <span class="text muted">${ids.join(', ')}</span>`}`;
}

function CitizenPicker({ mode, setMode, chosen, setChosen, party, setParty, errors }) {
  const [text, setText] = useState('');
  const [found, setFound] = useState(null);
  const [error, setError] = useState('');

  const search = async (e) => {
    if (e) e.preventDefault();
    setError('');
    if (!text.trim()) {
      setError(t('required'));
      return;
    }
    try {
      const doc = await get(q('/api/v1/search', { q: text.trim(), type: 'parties', limit: 10 }));
      setFound(doc.parties || []);
    } catch (err) {
      setFound(null);
      setError(err instanceof ApiError && err.status === 422 ? t('cc_search_invalid', { detail: err.detail }) : errorText(err));
    }
  };
  const choose = (p) => {
    setChosen(p);
    focusLater('product-q');
  };
  const set = (k) => (v) => setParty({ ...party, [k]: v });
  const modeButton = (m, key) => html`<button type="button" class=${mode === m ? '' : 'secondary'}
    aria-pressed=${mode === m ? 'true' : 'false'}
    onClick=${() => { setMode(m); if (m !== 'search') setChosen(null); if (m === 'anon') setParty(EMPTY_PARTY); }}>${t(key)}</button>`;

  return html`<fieldset>
    <legend>${t('citizen')}</legend>
    <div class="actions" role="group" aria-label=${t('cc_citizen_how')}>
      ${modeButton('search', 'cc_existing')}
      ${modeButton('new', 'new_citizen')}
      ${modeButton('anon', 'anonymous')}
    </div>
    ${mode === 'search' && chosen && html`<div class="chosen" id="chosen-citizen">
      <p>${t('cc_chosen')}: <a href=${`/burger.html?id=${encodeURIComponent(chosen.id)}`}><${PartyLine} p=${chosen} /></a></p>
      <button type="button" class="secondary" onClick=${() => { setChosen(null); focusLater('citizen-q'); }}>${t('cc_other_citizen')}</button>
    </div>`}
    ${mode === 'search' && !chosen && html`<div>
      <${Field} id="citizen-q" type="search" label=${t('citizen_search')} value=${text} onInput=${setText}
        error=${error} autocomplete="off" onKeyDown=${(e) => { if (e.key === 'Enter') search(e); }} />
      <button type="button" class="secondary" onClick=${search}>${t('cc_find_citizen')}</button>
      ${found && html`<p role="status" id="citizen-count">${found.length === 0 ? t('no_results')
        : t('cc_found', { n: found.length })}</p>`}
      ${found && found.length > 0 && html`<ul class="plain" id="citizen-results" aria-label=${t('cc_results')}>
        ${found.map((p) => html`<li key=${p.id}>
          <${PartyLine} p=${p} />
          <button type="button" class="secondary" onClick=${() => choose(p)}
            aria-label=${t('cc_choose_named', { name: p.name || p.id })}>${t('choose')}</button>
          <a href=${`/burger.html?id=${encodeURIComponent(p.id)}`}>${t('open_citizen')}<span class="visually-hidden"> ${p.name || p.id}</span></a>
        </li>`)}</ul>`}
    </div>`}
    ${mode === 'new' && html`<div>
      <${Field} id="party-name" label=${t('name')} value=${party.name} onInput=${set('name')} error=${errors['party.name']} autocomplete="off" />
      <${Field} id="party-email" type="email" label=${t('email')} value=${party.email} onInput=${set('email')} error=${errors['party.email']} autocomplete="off" />
      <${Field} id="party-phone" type="tel" label=${t('phone')} value=${party.phone} onInput=${set('phone')} error=${errors['party.phone']} autocomplete="off" />
      <${Field} id="party-rrn" label=${t('rrn')} value=${party.rrn} onInput=${set('rrn')} error=${errors['party.rrn']} autocomplete="off" inputmode="numeric"
        hint=${t('cc_rrn_hint')} />
    </div>`}
  </fieldset>`;
}

// The catalogue as a combobox: type a name or keyword, ArrowUp/ArrowDown, Enter picks,
// Escape closes (WAI-ARIA combobox with a listbox popup).
function ProductPicker({ catalogue, product, setProduct, onInsert }) {
  const [text, setText] = useState('');
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const needle = fold(text.trim());
  const matches = needle && open ? catalogue.filter((p) => fold(p.name).includes(needle) ||
    fold(p.code).includes(needle) || keywordsOf(p).some((k) => fold(k).includes(needle))).slice(0, 10) : [];
  const expanded = matches.length > 0;
  const pick = (p) => {
    setProduct(p);
    setText(p.name);
    setOpen(false);
  };
  const onKeyDown = (e) => {
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      if (!open) setOpen(true);
      setActive((a) => Math.min(a + 1, Math.max(matches.length - 1, 0)));
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      setActive((a) => Math.max(a - 1, 0));
    } else if (e.key === 'Enter') {
      e.preventDefault(); // never submits the form from here
      if (expanded) pick(matches[Math.min(active, matches.length - 1)]);
    } else if (e.key === 'Escape' && expanded) {
      e.preventDefault();
      setOpen(false);
    }
  };
  const optId = (p) => `product-opt-${p.code}`;
  const activeId = expanded ? optId(matches[Math.min(active, matches.length - 1)]) : undefined;
  return html`<fieldset>
    <legend>${t('product')}</legend>
    <div class="field combo">
      <label for="product-q">${t('product_search')}</label>
      <p class="hint" id="product-q-hint">${t('cc_product_hint')}</p>
      <input id="product-q" type="text" role="combobox" autocomplete="off" value=${text}
        aria-autocomplete="list" aria-expanded=${expanded ? 'true' : 'false'} aria-controls="product-list"
        aria-activedescendant=${activeId} aria-describedby="product-q-hint"
        onInput=${(e) => { setText(e.target.value); setOpen(true); setActive(0); }}
        onKeyDown=${onKeyDown} onBlur=${() => setTimeout(() => setOpen(false), 150)} />
      <ul id="product-list" role="listbox" aria-label=${t('cc_products')} class=${expanded ? 'listbox' : 'listbox hidden'}>
        ${matches.map((p, i) => html`<li key=${p.code} id=${optId(p)} role="option"
          aria-selected=${i === Math.min(active, matches.length - 1) ? 'true' : 'false'}
          onMouseDown=${(e) => { e.preventDefault(); pick(p); }}>
          ${p.name} <span class="tag">${p.line === 2 ? (p.department || t('line_2')) : t('line_1')}</span>
        </li>`)}
      </ul>
      ${open && needle && matches.length === 0 && html`<p role="status">${t('no_results')}</p>`}
    </div>
    ${product && html`<div id="product-chosen">
      <p><strong>${t('cc_product_chosen')}:</strong> <span id="product-name">${product.name}</span>
        <button type="button" class="secondary small" onClick=${() => { setProduct(null); setText(''); focusLater('product-q'); }}>
          ${t('cc_product_clear')}</button></p>
      ${product.line === 2 && product.department && html`<p class="hint">${t('cc_product_line2', { department: product.department })}</p>`}
      <h3 id="standard-answer-h">${t('standard_answer')}</h3>
      ${product.standard_answer ? html`<p class="standard-answer" id="standard-answer">${product.standard_answer}</p>
        <button type="button" class="secondary" onClick=${() => onInsert(product.standard_answer)}>${t('cc_insert_answer')}</button>`
        : html`<p>${t('no_standard_answer')}</p>`}
    </div>`}
  </fieldset>`;
}

function Escalation({ departments, product, onConfirm, onCancel, busy }) {
  const [department, setDepartment] = useState(product && product.department || '');
  const [reason, setReason] = useState('');
  const [due, setDue] = useState(null);
  const [error, setError] = useState('');
  useEffect(() => focusLater('esc-department'), []);
  useEffect(() => {
    setDue(null);
    setError('');
    if (!department) return;
    let live = true;
    get(q('/api/v1/due', { department, product: product && product.code }))
      .then((d) => { if (live) setDue(d); }).catch((e) => { if (live) setError(errorText(e)); });
    return () => { live = false; };
  }, [department, product]);
  return html`<fieldset class="escalation">
    <legend>${t('escalate')}</legend>
    <${Field} id="esc-department" as="select" label=${t('department')} value=${department} onInput=${setDepartment}>
      <option value="">${t('cc_choose_department')}</option>
      ${departments.map((d) => html`<option value=${d}>${d}</option>`)}
    <//>
    <${Field} id="esc-reason" as="textarea" label=${t('reason')} value=${reason} onInput=${setReason} />
    <p id="esc-due" role="status">${due ? html`${t('cc_due_prefix')} <time datetime=${due.due_at}>${dueText(due.due_at)}</time>
      ${t('cc_due_within', { within: due.within })}` : t('due_none')}</p>
    <${Notice} kind="error">${error}<//>
    <div class="actions">
      <button type="button" disabled=${!due || busy} onClick=${() => onConfirm({ department, reason, due: due.due_at })}>
        ${t('confirm_escalate')}</button>
      <button type="button" class="secondary" onClick=${onCancel}>${t('cancel')}</button>
    </div>
  </fieldset>`;
}

function NoteForm({ contact }) {
  const [text, setText] = useState('');
  const [msg, setMsg] = useState('');
  const [error, setError] = useState('');
  const add = async (e) => {
    e.preventDefault();
    setMsg('');
    setError('');
    if (!text.trim()) { setError(t('required')); focusLater('note'); return; }
    try {
      await post(`/api/v1/contacts/${contact.id}/notes`, { text });
      setText('');
      setMsg(t('note_added'));
    } catch (err) {
      setError(err instanceof ApiError && err.status === 422 ? err.detail : errorText(err));
    }
  };
  return html`<form onSubmit=${add}>
    <${Field} id="note" as="textarea" label=${t('note')} value=${text} onInput=${setText} error=${error}
      hint=${t('cc_note_hint')} />
    <button type="submit" class="secondary">${t('add_note')}</button>
    <${Notice} kind="ok">${msg}<//>
  </form>`;
}

// My recent contacts: loaded once, then kept live from the stream (a contact I logged
// appears, one of mine that changes is read again), without reloading the page.
function Recent({ user, added }) {
  const [items, setItems] = useState(null);
  const mine = (c) => c && c.created_by === user.name;
  const upsert = (c) => setItems((list) => {
    const rest = (list || []).filter((x) => x.id !== c.id);
    return [c, ...rest].sort((a, b) => b.id - a.id).slice(0, 15);
  });
  useEffect(() => {
    get(q('/api/v1/contacts', { limit: 200 }))
      .then((doc) => setItems(doc.items.filter(mine).slice(0, 15)))
      .catch(() => setItems([]));
    const reread = (ev) => {
      if (!ev || !ev.contact_id) return;
      get(`/api/v1/contacts/${ev.contact_id}`).then((c) => { if (mine(c)) upsert(c); }).catch(() => {});
    };
    const offs = [
      subscribe('contact.created', reread),
      subscribe('contact.changed', (ev) => setItems((list) => {
        if (list && list.some((c) => c.id === ev.contact_id)) reread(ev);
        return list;
      })),
    ];
    return () => offs.forEach((f) => f());
  }, []);
  // What I saved myself shows at once, stream or not.
  useEffect(() => { if (added) upsert(added); }, [added]);
  return html`<section aria-labelledby="recent-h">
    <h2 id="recent-h">${t('my_recent')}</h2>
    <p class="hint">${t('cc_recent_live')}</p>
    ${items === null ? html`<p>${t('loading')}</p>` : items.length === 0 ? html`<p>${t('none_yet')}</p>`
      : html`<ul class="plain" id="recent">${items.map((c) => html`<${ContactItem} key=${c.id} c=${c} />`)}</ul>`}
  </section>`;
}

function ContactCenter({ user }) {
  useLang();
  const [catalogue, setCatalogue] = useState([]);
  const [channel, setChannel] = useState('phone');
  const [mode, setMode] = useState('search');
  const [chosen, setChosen] = useState(null);
  const [party, setParty] = useState(EMPTY_PARTY);
  const [product, setProduct] = useState(null);
  const [subject, setSubject] = useState('');
  const [body, setBody] = useState('');
  const [answer, setAnswer] = useState('');
  const [escalating, setEscalating] = useState(false);
  const [errors, setErrors] = useState({});
  const [error, setError] = useState('');
  const [done, setDone] = useState(null);
  const [pending, setPending] = useState(null); // logged, but resolving or referring it failed
  const [busy, setBusy] = useState(false);
  const [formKey, setFormKey] = useState(0);

  useEffect(() => {
    get('/api/v1/catalogue').then((doc) => setCatalogue(doc.items || [])).catch((e) => setError(errorText(e)));
  }, []);
  const departments = [...new Set([...catalogue.map((p) => p.department).filter(Boolean),
    ...(user.departments || [])])].sort();

  const newContact = () => {
    const doc = { channel, subject: subject.trim() || (product ? product.name : '') };
    if (body.trim()) doc.body = body;
    if (product) doc.product = product.code;
    let p = {};
    if (mode === 'search' && chosen) p = partyRef(chosen);
    else if (mode === 'new') for (const k of Object.keys(EMPTY_PARTY)) if (party[k].trim()) p[k] = party[k].trim();
    if (Object.keys(p).length) doc.party = p;
    return doc;
  };

  const reset = () => {
    setChosen(null); setParty(EMPTY_PARTY); setProduct(null); setSubject(''); setBody('');
    setAnswer(''); setEscalating(false); setMode('search'); setPending(null); setFormKey((k) => k + 1);
  };

  const save = async (then) => {
    setErrors({});
    setError('');
    setDone(null);
    if (!subject.trim() && !product) {
      setErrors({ subject: t('required') });
      focusLater('subject');
      return;
    }
    setBusy(true);
    try {
      let c = pending || await post('/api/v1/contacts', newContact());
      setPending(c);
      c = await then(c);
      setDone(c);
      reset();
      focusLater('done-notice');
    } catch (err) {
      if (err instanceof ApiError && err.field && FIELD_IDS[err.field]) {
        setErrors({ [err.field]: err.detail });
        setEscalating(false);
        focusLater(FIELD_IDS[err.field]);
      } else setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const resolve = () => save(async (c) => {
    if (c.status !== 'open') return c; // the rules referred it already: the notice says so
    return post(`/api/v1/contacts/${c.id}/resolve`, answer.trim() ? { answer } : {});
  });
  const escalate = (how) => save(async (c) => {
    if (c.status !== 'open') return c;
    return post(`/api/v1/contacts/${c.id}/escalate`, { department: how.department,
      reason: how.reason.trim() || undefined, due: how.due });
  });
  const insertAnswer = (text) => {
    setAnswer((a) => (a.trim() ? `${a.trimEnd()}\n\n${text}` : text));
    focusLater('answer');
  };

  const doneText = done && (done.status === 'resolved' ? t('saved_resolved', { ref: done.reference })
    : done.status === 'escalated' ? t('saved_escalated', { ref: done.reference, department: done.department })
      : t('saved_other', { ref: done.reference, status: done.status }));
  const fieldErrors = Object.entries(errors).filter(([k, v]) => v && FIELD_IDS[k]);

  return html`<${Frame} user=${user} current="/contactcenter.html" title=${t('cc_title')}>
    <div class="columns">
      <section aria-labelledby="new-h">
        <h2 id="new-h">${t('cc_new')}</h2>
        <${Notice} kind="error">${error}<//>
        ${pending && error && html`<p class="notice">${t('cc_pending', { ref: pending.reference })}</p>`}
        ${fieldErrors.length > 0 && html`<div class="notice error" role="alert" id="error-summary">
          <p>${t('cc_check_fields')}</p>
          <ul>${fieldErrors.map(([k, v]) => html`<li><a href=${`#${FIELD_IDS[k]}`}
            onClick=${(e) => { e.preventDefault(); focusLater(FIELD_IDS[k]); }}>${t(FIELD_LABELS[k])}</a>: ${v}</li>`)}</ul>
        </div>`}
        ${done && html`<div class="notice ok">
          <p role="status" id="done-notice" tabindex="-1">${doneText}</p>
          <p><a href=${`/contact.html?id=${done.id}`}>${t('open_contact')}</a>
          ${done.party_id && html` · <a href=${`/burger.html?id=${done.party_id}`}>${t('open_citizen')}</a>`}</p>
          <${NoteForm} key=${done.id} contact=${done} />
        </div>`}
        <form key=${formKey} onSubmit=${(e) => { e.preventDefault(); resolve(); }} novalidate>
          <${Field} id="channel" as="select" label=${t('channel')} value=${channel} onInput=${setChannel}>
            ${CHANNELS.map((c) => html`<option value=${c}>${t('ch_' + c)}</option>`)}
          <//>
          <${CitizenPicker} mode=${mode} setMode=${setMode} chosen=${chosen} setChosen=${setChosen}
            party=${party} setParty=${setParty} errors=${errors} />
          <${ProductPicker} catalogue=${catalogue} product=${product} setProduct=${setProduct} onInsert=${insertAnswer} />
          <${Field} id="subject" label=${t('subject')} value=${subject} onInput=${setSubject} error=${errors.subject}
            hint=${product ? t('cc_subject_hint') : undefined} />
          <${Field} id="body" as="textarea" label=${t('question')} value=${body} onInput=${setBody} error=${errors.body} />
          <${Field} id="answer" as="textarea" label=${t('answer')} value=${answer} onInput=${setAnswer} error=${errors.answer} />
          ${!escalating && html`<div class="actions">
            <button type="submit" disabled=${busy}>${t('resolve')}</button>
            <button type="button" class="secondary" disabled=${busy} onClick=${() => setEscalating(true)}>${t('escalate')}</button>
          </div>`}
        </form>
        ${escalating && html`<${Escalation} departments=${departments} product=${product} busy=${busy}
          onConfirm=${escalate} onCancel=${() => setEscalating(false)} />`}
      </section>
      <${Recent} user=${user} added=${done} />
    </div>
  <//>`;
}

mountPage(ContactCenter);
