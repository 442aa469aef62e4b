// page-contactcenter.js: the agent's page (contactcenter / onthaal): log a contact fast
// (channel, citizen found or new, product with its standard answer, question, answer), then
// resolve it at the first line or refer it to a department with the due time shown before
// confirming; an internal note on what was logged; my recent contacts, kept live.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, ContactItem,
  useLang } from './widgets.js';
import { get, post, q, ApiError } from './api.js';
import { subscribe } from './stream.js';
import { t, when } from './i18n.js';

const CHANNELS = ['phone', 'counter', 'email', 'web'];
const EMPTY_PARTY = { name: '', email: '', phone: '', rrn: '' };

// What kind of identifier a searched text looks like, for the party lookup.
function identifierOf(text) {
  const s = text.trim();
  if (/^[^\s@]+@[^\s@]+$/.test(s)) return { email: s };
  const digits = s.replace(/[\s.\-/]/g, '');
  if (/^\d{11}$/.test(digits)) return { rrn: digits };
  if (/^\+?\d{6,15}$/.test(digits)) return { phone: s };
  return null;
}

function CitizenPicker({ chosen, setChosen, party, setParty, errors }) {
  const [text, setText] = useState('');
  const [found, setFound] = useState(null);
  const [error, setError] = useState('');
  const [mode, setMode] = useState('search');

  const search = async (e) => {
    e.preventDefault();
    setError('');
    if (!text.trim()) return;
    try {
      const id = identifierOf(text);
      let items = [];
      if (id) items = (await get(q('/api/v1/parties', id))).items;
      else items = (await get(q('/api/v1/search', { q: text.trim(), type: 'parties', limit: 10 }))).parties || [];
      setFound(items);
    } catch (err) {
      setFound(null);
      setError(err instanceof ApiError && err.status === 422 ? err.detail : errorText(err));
    }
  };
  const set = (k) => (v) => setParty({ ...party, [k]: v });

  return html`<fieldset>
    <legend>${t('citizen')}</legend>
    <div class="actions" role="group" aria-label=${t('citizen')}>
      <button type="button" class=${mode === 'search' ? '' : 'secondary'} aria-pressed=${mode === 'search'}
        onClick=${() => setMode('search')}>${t('search')}</button>
      <button type="button" class=${mode === 'new' ? '' : 'secondary'} aria-pressed=${mode === 'new'}
        onClick=${() => { setMode('new'); setChosen(null); }}>${t('new_citizen')}</button>
      <button type="button" class=${mode === 'anon' ? '' : 'secondary'} aria-pressed=${mode === 'anon'}
        onClick=${() => { setMode('anon'); setChosen(null); setParty(EMPTY_PARTY); }}>${t('anonymous')}</button>
    </div>
    ${mode === 'search' && html`<div>
      <${Field} id="citizen-q" type="search" label=${t('citizen_search')} value=${text} onInput=${setText}
        error=${error} onKeyDown=${(e) => e.key === 'Enter' && search(e)} />
      <button type="button" class="secondary" onClick=${search}>${t('search')}</button>
      ${found && (found.length === 0 ? html`<p role="status">${t('no_results')}</p>` : html`<ul class="plain" aria-label=${t('citizen')}>
        ${found.map((p) => html`<li key=${p.id}>
          <span class="text">${p.name || '—'}</span> ${(p.emails || []).join(', ')} ${(p.phones || []).join(', ')}
          <button type="button" class="secondary" aria-pressed=${chosen && chosen.id === p.id}
            onClick=${() => setChosen(p)}>${chosen && chosen.id === p.id ? t('chosen') : t('choose')}</button>
          <a href=${`/burger.html?id=${p.id}`}>${t('open_citizen')}</a>
        </li>`)}</ul>`)}
    </div>`}
    ${mode === 'new' && html`<div>
      <${Field} id="party-name" label=${t('name')} value=${party.name} onInput=${set('name')} error=${errors['party.name']} autocomplete="off" />
      <${Field} id="party-email" type="email" label=${t('email')} value=${party.email} onInput=${set('email')} error=${errors['party.email']} autocomplete="off" />
      <${Field} id="party-phone" type="tel" label=${t('phone')} value=${party.phone} onInput=${set('phone')} error=${errors['party.phone']} autocomplete="off" />
      <${Field} id="party-rrn" label=${t('rrn')} value=${party.rrn} onInput=${set('rrn')} error=${errors['party.rrn']} autocomplete="off" inputmode="numeric" />
    </div>`}
  </fieldset>`;
}

function ProductPicker({ catalogue, product, setProduct }) {
  const [text, setText] = useState('');
  const needle = text.trim().toLowerCase();
  const matches = needle ? catalogue.filter((p) => (p.name || '').toLowerCase().includes(needle) ||
    (p.code || '').toLowerCase().includes(needle) ||
    (p.keywords || []).some((k) => String(k).toLowerCase().includes(needle))).slice(0, 8) : [];
  return html`<fieldset>
    <legend>${t('product')}</legend>
    <${Field} id="product-q" type="search" label=${t('product_search')} value=${text} onInput=${setText} />
    ${matches.length > 0 && html`<ul class="plain" aria-label=${t('product')}>
      ${matches.map((p) => html`<li key=${p.code}>
        <button type="button" class="secondary" aria-pressed=${product && product.code === p.code}
          onClick=${() => setProduct(p)}>${p.name}</button> <span class="tag">${p.department || t('line_1')}</span>
      </li>`)}</ul>`}
    ${product && html`<div aria-live="polite">
      <p><strong>${t('product')}:</strong> ${product.name}</p>
      <h3>${t('standard_answer')}</h3>
      ${product.standard_answer ? html`<p class="standard-answer" id="standard-answer">${product.standard_answer}</p>`
        : html`<p>${t('no_standard_answer')}</p>`}
    </div>`}
  </fieldset>`;
}

function Escalation({ departments, product, onConfirm, onCancel, busy }) {
  const [department, setDepartment] = useState(product && product.department || '');
  const [reason, setReason] = useState('');
  const [due, setDue] = useState(null);
  const [error, setError] = useState('');
  useEffect(() => {
    setDue(null);
    setError('');
    if (!department) return;
    get(q('/api/v1/due', { department, product: product && product.code }))
      .then(setDue).catch((e) => setError(errorText(e)));
  }, [department, product]);
  return html`<fieldset class="escalation">
    <legend>${t('escalate')}</legend>
    <${Field} id="esc-department" as="select" label=${t('department')} value=${department} onInput=${setDepartment}>
      <option value="">—</option>
      ${departments.map((d) => html`<option value=${d}>${d}</option>`)}
    <//>
    <${Field} id="esc-reason" as="textarea" label=${t('reason')} value=${reason} onInput=${setReason} />
    <p id="esc-due" role="status">${due ? t('due', { at: when(due.due_at), within: due.within }) : t('due_none')}</p>
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
    if (!text.trim()) { setError(t('required')); return; }
    try {
      await post(`/api/v1/contacts/${contact.id}/notes`, { text });
      setText('');
      setMsg(t('note_added'));
    } catch (err) {
      setError(errorText(err));
    }
  };
  return html`<form onSubmit=${add}>
    <${Field} id="note" as="textarea" label=${t('note')} value=${text} onInput=${setText} error=${error} />
    <button type="submit" class="secondary">${t('add_note')}</button>
    <${Notice} kind="ok">${msg}<//>
  </form>`;
}

function Recent({ user, refresh }) {
  const [items, setItems] = useState(null);
  const load = () => get(q('/api/v1/contacts', { limit: 100 }))
    .then((doc) => setItems(doc.items.filter((c) => c.created_by === user.name).slice(0, 15)))
    .catch(() => setItems([]));
  useEffect(() => {
    load();
    const offs = ['contact.created', 'contact.changed'].map((k) => subscribe(k, load));
    return () => offs.forEach((f) => f());
  }, []);
  // What I saved myself shows at once, stream or not.
  useEffect(() => { if (refresh) load(); }, [refresh]);
  return html`<section aria-labelledby="recent-h">
    <h2 id="recent-h">${t('my_recent')}</h2>
    ${items === null ? html`<p>${t('loading')}</p>` : items.length === 0 ? html`<p>${t('none_yet')}</p>`
      : html`<ul class="plain" id="recent" aria-live="polite">${items.map((c) => html`<${ContactItem} key=${c.id} c=${c} />`)}</ul>`}
  </section>`;
}

function ContactCenter({ user }) {
  useLang();
  const [catalogue, setCatalogue] = useState([]);
  const [channel, setChannel] = useState('phone');
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
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    get('/api/v1/catalogue').then((doc) => setCatalogue(doc.items || [])).catch((e) => setError(errorText(e)));
  }, []);
  const departments = [...new Set([...catalogue.map((p) => p.department).filter(Boolean),
    ...(user.departments || [])])].sort();

  const newContact = () => {
    const doc = { channel, subject: subject.trim() || (product ? product.name : ''), body };
    if (product) doc.product = product.code;
    const p = {};
    if (chosen) {
      // A chosen party is found again by its strongest identifier.
      if (chosen.rrn) p.rrn = chosen.rrn;
      else if (chosen.emails && chosen.emails[0]) p.email = chosen.emails[0];
      else if (chosen.phones && chosen.phones[0]) p.phone = chosen.phones[0];
    } else {
      for (const k of Object.keys(EMPTY_PARTY)) if (party[k].trim()) p[k] = party[k].trim();
    }
    if (Object.keys(p).length) doc.party = p;
    return doc;
  };

  const reset = () => {
    setChosen(null); setParty(EMPTY_PARTY); setProduct(null); setSubject(''); setBody('');
    setAnswer(''); setEscalating(false);
  };

  const save = async (then) => {
    setErrors({});
    setError('');
    setDone(null);
    if (!subject.trim() && !product) {
      setErrors({ subject: t('required') });
      document.getElementById('subject').focus();
      return;
    }
    setBusy(true);
    try {
      let c = await post('/api/v1/contacts', newContact());
      c = await then(c);
      setDone(c);
      reset();
    } catch (err) {
      if (err instanceof ApiError && err.field) {
        setErrors({ [err.field]: err.detail });
        const el = document.getElementById(err.field.replace('.', '-'));
        if (el) el.focus();
      } else setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const resolve = () => save(async (c) => {
    if (c.status !== 'open') return c; // the rules referred it already: say what happened
    return post(`/api/v1/contacts/${c.id}/resolve`, answer.trim() ? { answer } : {});
  });
  const escalate = (how) => save(async (c) => {
    if (c.status !== 'open') return c;
    return post(`/api/v1/contacts/${c.id}/escalate`, { department: how.department,
      reason: how.reason || undefined, due: how.due });
  });

  const doneText = done && (done.status === 'resolved' ? t('saved_resolved', { ref: done.reference })
    : done.status === 'escalated' ? t('saved_escalated', { ref: done.reference, department: done.department })
      : t('saved_other', { ref: done.reference, status: done.status }));

  return html`<${Frame} user=${user} current="/contactcenter.html" title=${t('cc_title')}>
    <div class="columns">
      <section aria-labelledby="new-h">
        <h2 id="new-h">${t('cc_new')}</h2>
        <${Notice} kind="error">${error}<//>
        ${done && html`<div class="notice ok" role="status">
          <p>${doneText}</p>
          <p><a href=${`/contact.html?id=${done.id}`}>${t('open_contact')}</a>
          ${done.party_id && html` · <a href=${`/burger.html?id=${done.party_id}`}>${t('open_citizen')}</a>`}</p>
          <${NoteForm} contact=${done} />
        </div>`}
        <form onSubmit=${(e) => { e.preventDefault(); resolve(); }} novalidate>
          <${Field} id="channel" as="select" label=${t('channel')} value=${channel} onInput=${setChannel}>
            ${CHANNELS.map((c) => html`<option value=${c}>${t('ch_' + c)}</option>`)}
          <//>
          <${CitizenPicker} chosen=${chosen} setChosen=${setChosen} party=${party} setParty=${setParty} errors=${errors} />
          <${ProductPicker} catalogue=${catalogue} product=${product} setProduct=${setProduct} />
          <${Field} id="subject" label=${t('subject')} value=${subject} onInput=${setSubject} error=${errors.subject} />
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
      <${Recent} user=${user} refresh=${done && done.id} />
    </div>
  <//>`;
}

mountPage(ContactCenter);
