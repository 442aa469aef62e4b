// page-beheer.js: the admin's page (Beheer, issue 17 point 1): users (add with a password
// shown once, disable/enable, reset the password, change role, departments, organisation),
// tokens (add shown once, revoke after a confirmation), the catalogue's standard answers
// (edit, remove), the audit log for the data-protection officer (by staff member, person,
// action and period, newest first, "meer" with the cursor) and the quarantined mail when
// chan_email is loaded. Only for admins: any other role sees a refusal and the page asks the
// API nothing. Everything from the register is rendered as text.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, useLang,
  when } from './widgets.js';
import { get, post, patch, put, del, q, ApiError } from './api.js';
import { useRef } from '../vendor/preact-htm.module.js';
import { t } from './i18n.js';

const ROLES = ['agent', 'backoffice', 'admin'];
const TOKEN_ROLES = ['agent', 'backoffice', 'admin', 'intake'];

// "a, b ,c" -> ["a", "b", "c"]
const list = (s) => String(s || '').split(',').map((x) => x.trim()).filter(Boolean);

// Which field of a user or token form an API sentence is about (the API names it first:
// "login: required", "--department X: no such department", "a user named ... exists").
function fieldOf(detail) {
  const d = String(detail || '');
  if (/^(login|name)\b|^a (user|token) named/.test(d)) return 'login';
  if (/^role\b/.test(d)) return 'role';
  if (/^(--)?department|^a backoffice user needs/.test(d)) return 'departments';
  if (/^(--)?organisation/.test(d)) return 'organisation';
  if (/^(password)\b/.test(d)) return 'password';
  return null;
}

// A modal dialog (the browser's own <dialog>: focus kept inside, Escape closes it).
function Dialog({ id, title, onClose, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const el = ref.current;
    if (el && !el.open) el.showModal();
    const closed = () => onClose();
    el.addEventListener('close', closed);
    return () => el.removeEventListener('close', closed);
  }, []);
  return html`<dialog ref=${ref} id=${id} aria-labelledby=${`${id}-title`} class="dialog">
    <h2 id=${`${id}-title`}>${title}</h2>
    ${children}
  </dialog>`;
}

// A secret shown once: the admin reads or copies it and must close the dialog.
function SecretDialog({ id, title, intro, secret, onClose }) {
  useLang();
  return html`<${Dialog} id=${id} title=${title} onClose=${onClose}>
    <p>${intro}</p>
    <p><code class="secret" id=${`${id}-secret`}>${secret}</code></p>
    <p>${t('bh_once')}</p>
    <form method="dialog"><button type="submit" autofocus>${t('bh_close')}</button></form>
  <//>`;
}

function RoleSelect({ id, value, onInput, error, roles = ROLES }) {
  return html`<${Field} id=${id} as="select" label=${t('bh_role')} value=${value}
    onInput=${onInput} error=${error} required>
    ${roles.map((r) => html`<option value=${r}>${t('role_' + r)}</option>`)}
  <//>`;
}

// The add-user dialog: login, role, departments, organisation; then the password, once.
function AddUser({ onClose, done }) {
  useLang();
  const [v, setV] = useState({ login: '', role: 'agent', departments: '', organisation: '' });
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState(null);
  const set = (k) => (x) => { setV({ ...v, [k]: x }); setErrors({ ...errors, [k]: undefined }); };
  const submit = async (e) => {
    e.preventDefault();
    const errs = {};
    if (!v.login.trim()) errs.login = t('required');
    if (v.role === 'backoffice' && list(v.departments).length === 0) errs.departments = t('bh_dept_needed');
    setErrors(errs);
    if (Object.keys(errs).length) {
      document.getElementById(`au-${Object.keys(errs)[0]}`).focus();
      return;
    }
    setBusy(true);
    try {
      const body = { login: v.login.trim(), role: v.role, departments: list(v.departments) };
      if (v.organisation.trim()) body.organisation = v.organisation.trim();
      const doc = await post('/api/v1/users', body);
      setMade({ login: doc.user.login, password: doc.password });
      done(t('bh_user_added', { login: doc.user.login }));
    } catch (err) {
      const f = fieldOf(err.detail) || 'form';
      setErrors({ [f]: err instanceof ApiError ? err.detail : errorText(err) });
      const el = document.getElementById(f === 'form' ? 'au-form-error' : `au-${f}`);
      if (el) el.focus();
    } finally {
      setBusy(false);
    }
  };
  if (made) {
    return html`<${SecretDialog} id="user-password" title=${t('bh_user_added', { login: made.login })}
      intro=${t('bh_password_for', { login: made.login })} secret=${made.password} onClose=${onClose} />`;
  }
  return html`<${Dialog} id="add-user" title=${t('bh_add_user')} onClose=${onClose}>
    <form novalidate onSubmit=${submit}>
      ${errors.form && html`<p class="notice error" role="alert" id="au-form-error" tabindex="-1">${errors.form}</p>`}
      <${Field} id="au-login" label=${t('bh_login')} value=${v.login} onInput=${set('login')}
        error=${errors.login} required autocomplete="off" />
      <${RoleSelect} id="au-role" value=${v.role} onInput=${set('role')} error=${errors.role} />
      <${Field} id="au-departments" label=${t('bh_departments')} hint=${t('bh_departments_hint')}
        value=${v.departments} onInput=${set('departments')} error=${errors.departments} />
      <${Field} id="au-organisation" label=${t('bh_organisation')} value=${v.organisation}
        onInput=${set('organisation')} error=${errors.organisation} />
      <div class="actions">
        <button type="submit" disabled=${busy}>${t('bh_add')}</button>
        <button type="button" class="secondary" onClick=${() => onClose()}>${t('cancel')}</button>
      </div>
    </form>
  <//>`;
}

function UserRow({ u, reload, say }) {
  useLang();
  const pre = `user-${u.login.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const [edit, setEdit] = useState(false);
  const [v, setV] = useState(null);
  const [errors, setErrors] = useState({});
  const [secret, setSecret] = useState(null);
  const [busy, setBusy] = useState(false);
  const path = `/api/v1/users/${encodeURIComponent(u.login)}`;
  const act = async (fn, text) => {
    setErrors({});
    setBusy(true);
    try {
      const doc = await fn();
      say(text);
      reload();
      return doc;
    } catch (err) {
      const f = fieldOf(err.detail) || 'row';
      setErrors({ [f]: err instanceof ApiError ? err.detail : errorText(err) });
      return null;
    } finally {
      setBusy(false);
    }
  };
  const openEdit = () => {
    setV({ role: u.role, departments: (u.departments || []).join(', '), organisation: u.organisation || '' });
    setErrors({});
    setEdit(!edit);
    setTimeout(() => { const el = document.getElementById(`${pre}-role`); if (el) el.focus(); }, 0);
  };
  const save = async (e) => {
    e.preventDefault();
    const ok = await act(() => patch(path, { role: v.role, departments: list(v.departments),
      organisation: v.organisation.trim() || null }), t('bh_user_changed', { login: u.login }));
    if (ok) setEdit(false);
  };
  const reset = async () => {
    const doc = await act(() => post(`${path}/password`, {}), t('bh_password_reset', { login: u.login }));
    if (doc) setSecret(doc.password);
  };
  const set = (k) => (x) => setV({ ...v, [k]: x });
  return html`<tr id=${pre}>
    <td>${u.login}</td>
    <td>${t('role_' + u.role)}</td>
    <td>${(u.departments || []).join(', ')}</td>
    <td>${u.organisation || ''}</td>
    <td class="state">${u.disabled ? t('bh_disabled') : t('bh_active')}</td>
    <td>
      <div class="actions">
        <button type="button" class="secondary" disabled=${busy} onClick=${() => act(
          () => patch(path, { disabled: !u.disabled }),
          t(u.disabled ? 'bh_enabled_msg' : 'bh_disabled_msg', { login: u.login }))}
          aria-label=${t(u.disabled ? 'bh_enable_who' : 'bh_disable_who', { login: u.login })}>${
          u.disabled ? t('bh_enable') : t('bh_disable')}</button>
        <button type="button" class="secondary" disabled=${busy} onClick=${reset}
          aria-label=${t('bh_reset_who', { login: u.login })}>${t('bh_reset')}</button>
        <button type="button" class="secondary" aria-expanded=${edit ? 'true' : 'false'}
          aria-controls=${`${pre}-form`} onClick=${openEdit}
          aria-label=${t('bh_change_who', { login: u.login })}>${t('bh_change')}</button>
      </div>
      ${errors.row && html`<${Notice} kind="error">${errors.row}<//>`}
      ${edit && v && html`<form id=${`${pre}-form`} novalidate onSubmit=${save}
        aria-label=${t('bh_change_who', { login: u.login })}>
        <${RoleSelect} id=${`${pre}-role`} value=${v.role} onInput=${set('role')} error=${errors.role} />
        <${Field} id=${`${pre}-departments`} label=${t('bh_departments')} hint=${t('bh_departments_hint')}
          value=${v.departments} onInput=${set('departments')} error=${errors.departments} />
        <${Field} id=${`${pre}-organisation`} label=${t('bh_organisation')} value=${v.organisation}
          onInput=${set('organisation')} error=${errors.organisation} />
        <button type="submit" disabled=${busy}>${t('bh_save')}</button>
        <button type="button" class="secondary" onClick=${() => setEdit(false)}>${t('cancel')}</button>
      </form>`}
      ${secret && html`<${SecretDialog} id="reset-password" title=${t('bh_password_reset', { login: u.login })}
        intro=${t('bh_password_for', { login: u.login })} secret=${secret} onClose=${() => setSecret(null)} />`}
    </td>
  </tr>`;
}

function Users({ say }) {
  useLang();
  const [users, setUsers] = useState(null);
  const [error, setError] = useState('');
  const [adding, setAdding] = useState(false);
  const load = () => get('/api/v1/users').then((doc) => { setError(''); setUsers(doc.items); })
    .catch((e) => setError(errorText(e)));
  useEffect(() => { load(); }, []);
  return html`<section aria-labelledby="users-h" id="users">
    <h2 id="users-h">${t('bh_users')}</h2>
    <${Notice} kind="error">${error}<//>
    <button type="button" id="add-user-open" onClick=${() => setAdding(true)}>${t('bh_add_user')}</button>
    ${adding && html`<${AddUser} onClose=${() => { setAdding(false); load();
      setTimeout(() => document.getElementById('add-user-open').focus(), 0); }} done=${say} />`}
    ${users === null ? html`<p>${t('loading')}</p>` : html`<div class="scroll" tabindex="0" role="region" aria-label=${t('bh_users')}><table id="users-table">
      <caption class="visually-hidden">${t('bh_users')}</caption>
      <thead><tr><th scope="col">${t('bh_login')}</th><th scope="col">${t('bh_role')}</th>
        <th scope="col">${t('bh_departments')}</th><th scope="col">${t('bh_organisation')}</th>
        <th scope="col">${t('bh_state')}</th><th scope="col">${t('tk_actions')}</th></tr></thead>
      <tbody>${users.map((u) => html`<${UserRow} key=${u.login} u=${u} reload=${load} say=${say} />`)}</tbody>
    </table></div>`}
  </section>`;
}

function Tokens({ say }) {
  useLang();
  const [tokens, setTokens] = useState(null);
  const [error, setError] = useState('');
  const [v, setV] = useState({ login: '', role: 'agent', departments: '', organisation: '' });
  const [errors, setErrors] = useState({});
  const [made, setMade] = useState(null);
  const [revoking, setRevoking] = useState(null);
  const [revokeError, setRevokeError] = useState('');
  const load = () => get('/api/v1/tokens').then((doc) => { setError(''); setTokens(doc.items); })
    .catch((e) => setError(errorText(e)));
  useEffect(() => { load(); }, []);
  const set = (k) => (x) => { setV({ ...v, [k]: x }); setErrors({ ...errors, [k]: undefined }); };
  const submit = async (e) => {
    e.preventDefault();
    if (!v.login.trim()) {
      setErrors({ login: t('required') });
      document.getElementById('tk-login').focus();
      return;
    }
    try {
      const body = { name: v.login.trim(), role: v.role, departments: list(v.departments) };
      if (v.organisation.trim()) body.organisation = v.organisation.trim();
      const doc = await post('/api/v1/tokens', body);
      setMade(doc);
      setV({ login: '', role: 'agent', departments: '', organisation: '' });
      say(t('bh_token_added', { name: doc.name }));
      load();
    } catch (err) {
      const f = fieldOf(err.detail) || 'form';
      setErrors({ [f]: err instanceof ApiError ? err.detail : errorText(err) });
    }
  };
  const revoke = async () => {
    try {
      await del(`/api/v1/tokens/${encodeURIComponent(revoking)}`);
      say(t('bh_token_revoked', { name: revoking }));
      setRevoking(null);
      load();
    } catch (err) {
      setRevokeError(errorText(err));
    }
  };
  return html`<section aria-labelledby="tokens-h" id="tokens">
    <h2 id="tokens-h">${t('bh_tokens')}</h2>
    <${Notice} kind="error">${error}<//>
    <form novalidate onSubmit=${submit} aria-labelledby="tk-add-h" class="inline-form">
      <h3 id="tk-add-h">${t('bh_add_token')}</h3>
      ${errors.form && html`<${Notice} kind="error">${errors.form}<//>`}
      <${Field} id="tk-login" label=${t('bh_token_name')} value=${v.login} onInput=${set('login')}
        error=${errors.login} required autocomplete="off" />
      <${RoleSelect} id="tk-role" value=${v.role} onInput=${set('role')} error=${errors.role} roles=${TOKEN_ROLES} />
      <${Field} id="tk-departments" label=${t('bh_departments')} hint=${t('bh_departments_hint')}
        value=${v.departments} onInput=${set('departments')} error=${errors.departments} />
      <${Field} id="tk-organisation" label=${t('bh_organisation')} value=${v.organisation}
        onInput=${set('organisation')} error=${errors.organisation} />
      <button type="submit">${t('bh_add_token')}</button>
    </form>
    ${made && html`<${SecretDialog} id="token-secret" title=${t('bh_token_added', { name: made.name })}
      intro=${t('bh_token_for', { name: made.name })} secret=${made.token} onClose=${() => setMade(null)} />`}
    ${revoking && html`<${Dialog} id="revoke-token" title=${t('bh_revoke_q', { name: revoking })}
      onClose=${() => { setRevoking(null); setRevokeError(''); }}>
      <p>${t('bh_revoke_explain')}</p>
      ${revokeError && html`<${Notice} kind="error">${revokeError}<//>`}
      <div class="actions">
        <button type="button" class="danger" onClick=${revoke}>${t('bh_revoke')}</button>
        <form method="dialog"><button type="submit" class="secondary" autofocus>${t('cancel')}</button></form>
      </div>
    <//>`}
    ${tokens === null ? html`<p>${t('loading')}</p>` : html`<div class="scroll" tabindex="0" role="region" aria-label=${t('bh_tokens')}><table id="tokens-table">
      <caption class="visually-hidden">${t('bh_tokens')}</caption>
      <thead><tr><th scope="col">${t('bh_token_name')}</th><th scope="col">${t('bh_role')}</th>
        <th scope="col">${t('bh_departments')}</th><th scope="col">${t('bh_organisation')}</th>
        <th scope="col">${t('bh_created')}</th><th scope="col">${t('bh_state')}</th>
        <th scope="col">${t('tk_actions')}</th></tr></thead>
      <tbody>${tokens.map((k) => html`<tr key=${k.name + (k.revoked_at || '')}>
        <td>${k.name}</td><td>${t('role_' + k.role)}</td><td>${(k.departments || []).join(', ')}</td>
        <td>${k.organisation || ''}</td><td><time datetime=${k.created_at}>${when(k.created_at)}</time></td>
        <td>${k.revoked_at ? t('bh_revoked_at', { at: when(k.revoked_at) }) : t('bh_active')}</td>
        <td>${!k.revoked_at && html`<button type="button" class="secondary"
          aria-label=${t('bh_revoke_who', { name: k.name })}
          onClick=${() => { setRevokeError(''); setRevoking(k.name); }}>${t('bh_revoke')}</button>`}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

function Catalogue({ say }) {
  useLang();
  const [items, setItems] = useState(null);
  const [error, setError] = useState('');
  const [code, setCode] = useState('');
  const [text, setText] = useState('');
  const [fieldError, setFieldError] = useState('');
  const load = () => get('/api/v1/catalogue').then((doc) => { setError(''); setItems(doc.items || []); return doc.items; })
    .catch((e) => setError(errorText(e)));
  useEffect(() => { load(); }, []);
  const pick = (c) => {
    setCode(c);
    setFieldError('');
    const p = (items || []).find((x) => x.code === c);
    setText(p && p.standard_answer ? p.standard_answer : '');
  };
  const product = (items || []).find((x) => x.code === code);
  const save = async (e) => {
    e.preventDefault();
    setFieldError('');
    try {
      await put(`/api/v1/catalogue/${encodeURIComponent(code)}/answer`, { text });
      say(t(text ? 'bh_answer_saved' : 'bh_answer_removed', { name: product.name }));
      load();
    } catch (err) {
      setFieldError(err instanceof ApiError ? err.detail : errorText(err));
    }
  };
  const remove = async () => {
    setFieldError('');
    try {
      await del(`/api/v1/catalogue/${encodeURIComponent(code)}/answer`);
      setText('');
      say(t('bh_answer_removed', { name: product.name }));
      load();
    } catch (err) {
      setFieldError(err instanceof ApiError ? err.detail : errorText(err));
    }
  };
  return html`<section aria-labelledby="cat-h" id="catalogue">
    <h2 id="cat-h">${t('bh_catalogue')}</h2>
    <${Notice} kind="error">${error}<//>
    ${items === null ? html`<p>${t('loading')}</p>` : html`
    <form novalidate onSubmit=${save} aria-labelledby="cat-h">
      <${Field} id="cat-product" as="select" label=${t('product')} value=${code} onInput=${pick}>
        <option value="">${t('bh_choose_product')}</option>
        ${items.map((p) => html`<option value=${p.code}>${p.name} (${p.code})${p.standard_answer ? '' : ' — ' + t('bh_no_answer')}</option>`)}
      <//>
      ${product && html`<${Field} id="cat-answer" as="textarea" rows="6" label=${t('bh_answer_for', { name: product.name })}
        hint=${t('bh_answer_hint')} value=${text} onInput=${(x) => { setText(x); setFieldError(''); }} error=${fieldError} />
      <div class="actions">
        <button type="submit">${t('bh_save')}</button>
        <button type="button" class="secondary" disabled=${!product.standard_answer} onClick=${remove}>${t('bh_answer_remove')}</button>
      </div>`}
    </form>`}
  </section>`;
}

const EMPTY_FILTER = { actor: '', party: '', action: '', from: '', to: '' };

function Audit() {
  useLang();
  const [f, setF] = useState(EMPTY_FILTER);
  const [rows, setRows] = useState(null);
  const [next, setNext] = useState(null);
  const [asked, setAsked] = useState(null);
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  const fetchPage = async (filter, cursor) => {
    setBusy(true);
    setErrors({});
    try {
      const doc = await get(q('/api/v1/audit', { ...filter, cursor, limit: 50 }));
      setRows((old) => (cursor ? [...(old || []), ...doc.items] : doc.items));
      setNext(doc.next_cursor || null);
      if (!cursor) setAsked(filter);
    } catch (err) {
      const m = err instanceof ApiError && /^(actor|party|action|from|to|cursor|limit): /.exec(err.detail);
      setErrors(m && m[1] in EMPTY_FILTER ? { [m[1]]: err.detail } : { form: errorText(err) });
      if (m && m[1] in EMPTY_FILTER) document.getElementById(`au-f-${m[1]}`).focus();
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => { fetchPage(EMPTY_FILTER, null); }, []);
  const set = (k) => (x) => { setF({ ...f, [k]: x.trim ? x : x }); setErrors({ ...errors, [k]: undefined }); };
  const submit = (e) => {
    e.preventDefault();
    const trimmed = Object.fromEntries(Object.entries(f).map(([k, x]) => [k, x.trim()]));
    fetchPage(trimmed, null);
  };
  return html`<section aria-labelledby="audit-h" id="audit">
    <h2 id="audit-h">${t('bh_audit')}</h2>
    <p>${t('bh_audit_intro')}</p>
    <form novalidate onSubmit=${submit} aria-label=${t('bh_audit_filter')} class="filters">
      ${errors.form && html`<${Notice} kind="error">${errors.form}<//>`}
      <${Field} id="au-f-actor" label=${t('bh_actor')} value=${f.actor} onInput=${set('actor')} error=${errors.actor} autocomplete="off" />
      <${Field} id="au-f-party" label=${t('bh_party')} hint=${t('bh_party_hint')} inputmode="numeric"
        value=${f.party} onInput=${set('party')} error=${errors.party} autocomplete="off" />
      <${Field} id="au-f-action" label=${t('bh_action')} hint=${t('bh_action_hint')} value=${f.action}
        onInput=${set('action')} error=${errors.action} autocomplete="off" />
      <${Field} id="au-f-from" type="date" label=${t('bh_from')} value=${f.from} onInput=${set('from')} error=${errors.from} />
      <${Field} id="au-f-to" type="date" label=${t('bh_to')} value=${f.to} onInput=${set('to')} error=${errors.to} />
      <div class="actions">
        <button type="submit" disabled=${busy}>${t('bh_filter')}</button>
        <button type="button" class="secondary" onClick=${() => { setF(EMPTY_FILTER); fetchPage(EMPTY_FILTER, null); }}>${t('bh_clear')}</button>
      </div>
    </form>
    ${rows === null ? (busy ? html`<p>${t('loading')}</p>` : null) : html`
    <p role="status" id="audit-count">${t('bh_audit_count', { n: rows.length })}</p>
    ${rows.length > 0 && html`<div class="scroll" tabindex="0" role="region" aria-label=${t('bh_audit')}><table id="audit-table">
      <caption class="visually-hidden">${t('bh_audit')}</caption>
      <thead><tr><th scope="col">${t('bh_at')}</th><th scope="col">${t('bh_actor')}</th>
        <th scope="col">${t('bh_action')}</th><th scope="col">${t('bh_object')}</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.id}>
        <td><time datetime=${r.at}>${when(r.at)}</time></td><td class="text">${r.actor}</td>
        <td class="text">${r.action}</td><td class="text">${r.object || ''}</td></tr>`)}</tbody>
    </table></div>`}
    ${next && html`<button type="button" id="audit-more" disabled=${busy}
      onClick=${() => fetchPage(asked || EMPTY_FILTER, next)}>${t('bh_more')}</button>`}`}
  </section>`;
}

function Quarantine() {
  useLang();
  const [items, setItems] = useState(null);
  const [absent, setAbsent] = useState(false);
  const [error, setError] = useState('');
  useEffect(() => {
    get('/api/v1/email/quarantine').then((doc) => setItems(doc.items || []))
      .catch((e) => {
        if (e instanceof ApiError && e.status === 404) setAbsent(true);
        else setError(errorText(e));
      });
  }, []);
  return html`<section aria-labelledby="quar-h" id="quarantine">
    <h2 id="quar-h">${t('bh_quarantine')}</h2>
    <${Notice} kind="error">${error}<//>
    ${absent ? html`<p id="quarantine-absent">${t('bh_no_email')}</p>`
      : items === null ? (error ? null : html`<p>${t('loading')}</p>`)
      : items.length === 0 ? html`<p id="quarantine-none">${t('bh_quarantine_none')}</p>`
      : html`<div class="scroll" tabindex="0" role="region" aria-label=${t('bh_quarantine')}><table id="quarantine-table">
        <caption class="visually-hidden">${t('bh_quarantine')}</caption>
        <thead><tr><th scope="col">${t('bh_at')}</th><th scope="col">${t('bh_mailbox')}</th>
          <th scope="col">UID</th><th scope="col">${t('bh_reason')}</th><th scope="col">${t('bh_folder')}</th>
          <th scope="col">${t('bh_size')}</th></tr></thead>
        <tbody>${items.map((m) => html`<tr key=${`${m.mailbox}-${m.uidvalidity}-${m.uid}`}>
          <td><time datetime=${m.at}>${when(m.at)}</time></td><td class="text">${m.mailbox}</td>
          <td>${m.uid}</td><td class="text">${m.error}</td><td class="text">${m.folder}</td>
          <td>${m.raw_size}</td></tr>`)}</tbody>
      </table></div>`}
  </section>`;
}

function Beheer({ user }) {
  useLang();
  const [msg, setMsg] = useState('');
  if (user.role !== 'admin') {
    return html`<${Frame} user=${user} current="/beheer.html" title=${t('bh_title')}>
      <p class="notice error" role="alert" id="admin-only">${t('bh_admin_only')}</p>
    <//>`;
  }
  return html`<${Frame} user=${user} current="/beheer.html" title=${t('bh_title')}>
    <nav aria-label=${t('bh_sections')} class="sections"><ul class="plain inline">
      <li><a href="#users">${t('bh_users')}</a></li><li><a href="#tokens">${t('bh_tokens')}</a></li>
      <li><a href="#catalogue">${t('bh_catalogue')}</a></li><li><a href="#audit">${t('bh_audit')}</a></li>
      <li><a href="#quarantine">${t('bh_quarantine')}</a></li></ul></nav>
    <p id="beheer-msg" role="status" class=${msg ? 'notice ok' : 'visually-hidden'}>${msg}</p>
    <${Users} say=${setMsg} />
    <${Tokens} say=${setMsg} />
    <${Catalogue} say=${setMsg} />
    <${Audit} />
    <${Quarantine} />
  <//>`;
}

mountPage(Beheer);
