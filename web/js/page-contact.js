// page-contact.js: one contact with its whole thread (contact.html?id=N): fields, status,
// history (notes and the rules' decisions too), messages in and out (mail bodies shown as
// text, never as HTML), tasks, internal notes; answer the citizen by email with attachments
// (the API's limits checked before sending); mark it done. Live through the event stream.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, statusText,
  channelText, param, useLang } from './widgets.js';
import { get, post, patch, fileToBase64, ApiError } from './api.js';
import { subscribe } from './stream.js';
import { t, when } from './i18n.js';
import { refusalText, myOpenTask } from './tasks.js';

// The messages API's limits (docs/api.md): 10 files; the whole request within loketd's
// default [http] max_body_size (1 MiB), and base64 makes files a third bigger.
const MAX_FILES = 10;
const MAX_BYTES = 700 * 1024;
const MAX_BODY = 100000;

function size(n) {
  if (n < 1024) return t('ct_bytes', { n });
  if (n < 1024 * 1024) return t('ct_kb', { n: (n / 1024).toFixed(1) });
  return t('ct_mb', { n: (n / 1024 / 1024).toFixed(1) });
}

// A file name with its direction controls made visible: an RTL override would show
// "rekening\u202efdp.exe" as "rekeningexe.pdf" (the classic extension spoof).
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
function fileName(name) {
  return String(name).replace(BIDI, (ch) => `[U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
}

// Each document a download from the register (GET .../attachments/{sha256}: always saved,
// never opened in loket's own page), its name shown as text.
function Attachments({ list, contactId }) {
  if (!list || !list.length) return null;
  return html`<div class="attachments">
    <p>${t('attachments')}</p>
    <ul>${list.map((a) => html`<li><a class="text att-name"
      href=${`/api/v1/contacts/${encodeURIComponent(contactId)}/attachments/${encodeURIComponent(a.sha256 || '')}`}
      title=${t('ct_download')}>${fileName(a.name)}</a>${
      ' · '}${a.content_type}${' · '}${size(a.size || 0)}</li>`)}</ul>
  </div>`;
}

function Messages({ items }) {
  useLang();
  if (!items) return html`<p>${t('loading')}</p>`;
  if (!items.length) return html`<p id="messages-none">${t('ct_no_messages')}</p>`;
  return html`<ol class="plain thread" id="messages">${items.map((m) => html`<li key=${m.id}
    class=${'msg ' + (m.direction === 'in' ? 'in' : 'out')}>
    <p><strong>${m.direction === 'in' ? t('msg_in') : t('msg_out')}</strong>${' · '}<time
      datetime=${m.at}>${when(m.at)}</time>${' · '}${channelText(m.channel)}${
      m.status && html` · ${t('ms_' + m.status)}`}</p>
    <p>${t('from')}: <span class="text">${m.sender || m.actor || ''}</span>
      ${m.recipients && m.recipients.length > 0 && html` · ${t('to')}: <span class="text">${m.recipients.join(', ')}</span>`}</p>
    <p><strong class="text msg-subject">${m.subject || ''}</strong></p>
    <p class="text msg-body">${m.body || ''}</p>
    <${Attachments} list=${m.attachments} contactId=${m.contact_id} />
  </li>`)}</ol>`;
}

function Reply({ contact, onSent }) {
  useLang();
  const [to, setTo] = useState(contact.reply_to || '');
  const [subject, setSubject] = useState(`Re: ${contact.subject || ''}`);
  const [body, setBody] = useState('');
  const [files, setFiles] = useState([]);
  const [errors, setErrors] = useState({});
  const [msg, setMsg] = useState('');
  const [busy, setBusy] = useState(false);
  const check = () => {
    const errs = {};
    if (!body.trim()) errs.body = t('required');
    else if (new TextEncoder().encode(body).length > MAX_BODY) errs.body = t('ct_body_too_long', { n: MAX_BODY });
    if (files.length > MAX_FILES) errs.attachments = t('ct_too_many_files', { n: MAX_FILES, got: files.length });
    else if (files.reduce((s, f) => s + f.size, 0) > MAX_BYTES) {
      errs.attachments = t('ct_files_too_big', { max: size(MAX_BYTES),
        got: size(files.reduce((s, f) => s + f.size, 0)) });
    }
    return errs;
  };
  const send = async (e) => {
    e.preventDefault();
    setMsg('');
    const errs = check();
    setErrors(errs);
    if (Object.keys(errs).length) {
      document.getElementById(errs.body ? 'reply-body' : 'reply-files').focus();
      return;
    }
    setBusy(true);
    const form = e.target;
    try {
      const attachments = await Promise.all(files.map(async (f) => ({
        name: f.name, content_type: f.type || 'application/octet-stream', data: await fileToBase64(f),
      })));
      const doc = { body, subject, via: 'email' };
      if (to.trim()) doc.to = to.trim();
      if (attachments.length) doc.attachments = attachments;
      await post(`/api/v1/contacts/${contact.id}/messages`, doc);
      setBody('');
      setFiles([]);
      form.reset();
      setMsg(t('sent'));
      onSent();
    } catch (err) {
      const field = err instanceof ApiError && err.field;
      if (err instanceof ApiError && err.status === 413) setErrors({ attachments: t('ct_request_too_big') });
      else if (field && ['to', 'subject', 'body'].includes(field)) setErrors({ [field]: err.detail });
      else if (field && field.startsWith('attachments')) setErrors({ attachments: err.detail });
      else setErrors({ form: errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  return html`<form id="reply" onSubmit=${send} novalidate>
    <${Notice} kind="error">${errors.form}<//>
    <${Field} id="reply-to" type="email" label=${t('to')} value=${to} onInput=${setTo} error=${errors.to}
      autocomplete="off" />
    <${Field} id="reply-subject" label=${t('subject')} value=${subject} onInput=${setSubject} error=${errors.subject} />
    <${Field} id="reply-body" as="textarea" label=${t('message')} value=${body} onInput=${setBody}
      error=${errors.body} required />
    <${Field} id="reply-files" type="file" multiple label=${t('attachments')} error=${errors.attachments}
      hint=${t('ct_files_hint', { n: MAX_FILES, max: size(MAX_BYTES) })}
      onChange=${(e) => { setFiles([...e.target.files]); setErrors({ ...errors, attachments: undefined }); }} />
    ${files.length > 0 && html`<ul class="chosen-files">${files.map((f) => html`<li class="text">${fileName(f.name)}${' · '}${size(f.size)}</li>`)}</ul>`}
    <button type="submit" disabled=${busy}>${t('send')}</button>
    <${Notice} kind="ok">${msg}<//>
  </form>`;
}

const ACTIONS = ['created', 'escalate', 'resolve', 'close', 'reopen', 'note', 'claim', 'release',
  'forward', 'return', 'rule', 'task_done', 'party_merged', 'party_conflict', 'patch'];

function actionText(h) {
  const a = h.action || h.kind || '';
  return ACTIONS.includes(a) ? t('hs_' + a) : a;
}

function Contact({ user }) {
  useLang();
  const id = param('id');
  const [c, setC] = useState(null);
  const [messages, setMessages] = useState(null);
  const [error, setError] = useState('');
  const [note, setNote] = useState('');
  const [noteError, setNoteError] = useState('');
  const [answer, setAnswer] = useState('');
  const [msg, setMsg] = useState('');
  const [busy, setBusy] = useState(false);

  let openedBefore = 0; // the first open follows the first load; a reconnect reloads
  const load = () => {
    get(`/api/v1/contacts/${encodeURIComponent(id)}`).then(setC).catch((e) => setError(errorText(e)));
    get(`/api/v1/contacts/${encodeURIComponent(id)}/messages`).then((d) => setMessages(d.items))
      .catch((e) => { setMessages([]); setError(errorText(e)); });
  };
  useEffect(() => {
    if (!id) {
      setError(t('ct_no_id'));
      return undefined;
    }
    load();
    const mine = (ev) => ev && String(ev.contact_id) === String(id) && load();
    const offs = ['contact.changed', 'message.added', 'task.created', 'task.done', 'task.due']
      .map((k) => subscribe(k, mine));
    offs.push(subscribe('open', (ev, kind) => kind === 'open' && openedBefore++ > 0 && load()));
    return () => offs.forEach((f) => f());
  }, []);

  const addNote = async (e) => {
    e.preventDefault();
    setNoteError('');
    setMsg('');
    if (!note.trim()) {
      setNoteError(t('required'));
      document.getElementById('note').focus();
      return;
    }
    try {
      setC(await post(`/api/v1/contacts/${c.id}/notes`, { text: note }));
      setNote('');
      setMsg(t('note_added'));
    } catch (err) { setNoteError(errorText(err)); }
  };
  const task = c ? myOpenTask(c, user) : null;
  const markDone = async () => {
    setError('');
    setMsg('');
    setBusy(true);
    try {
      if (task) {
        // The back office finishes its own task; the answer goes with the contact first.
        if (answer.trim()) await patch(`/api/v1/contacts/${c.id}`, { answer: answer.trim() });
        await post(`/api/v1/tasks/${task.id}/done`, {});
        setC(await get(`/api/v1/contacts/${encodeURIComponent(id)}`));
      } else {
        const verb = c.status === 'escalated' ? 'close' : 'resolve';
        setC(await post(`/api/v1/contacts/${c.id}/${verb}`, answer.trim() ? { answer: answer.trim() } : {}));
      }
      setAnswer('');
      setMsg(t('ct_marked_done'));
    } catch (err) {
      setError(refusalText(err));
    } finally {
      setBusy(false);
    }
  };

  const title = c ? t('contact_title', { ref: c.reference }) : (error ? t('ct_title') : t('loading'));
  const history = c ? c.history || [] : [];
  const notes = history.filter((h) => h.kind === 'note' || h.action === 'note');
  const open = c && (c.status === 'open' || c.status === 'escalated');
  return html`<${Frame} user=${user} title=${title}>
    <${Notice} kind="error">${error}<//>
    <${Notice} kind="ok">${msg}<//>
    ${c && html`<div class="columns">
      <div>
        <h2>${t('ct_details')}</h2>
        <dl class="props">
          <dt>${t('status')}</dt><dd id="contact-status">${statusText(c.status)}</dd>
          <dt>${t('channel')}</dt><dd>${channelText(c.channel)}</dd>
          <dt>${t('received')}</dt><dd>${when(c.received_at)}</dd>
          <dt>${t('line')}</dt><dd id="contact-line">${t('line_' + c.line)}</dd>
          <dt>${t('department')}</dt><dd id="contact-department">${c.department || '—'}</dd>
          <dt>${t('product')}</dt><dd>${c.product || '—'}</dd>
          <dt>${t('citizen')}</dt><dd>${c.party_id ? html`<a href=${`/burger.html?id=${c.party_id}`}
            ><span class="text" id="contact-party">${(c.party && c.party.name) || t('open_citizen')}</span></a>` : t('anonymous')}</dd>
          <dt>${t('ct_reply_to')}</dt><dd class="text">${c.reply_to || '—'}</dd>
          <dt>${t('subject')}</dt><dd class="text" id="contact-subject">${c.subject || ''}</dd>
          <dt>${t('question')}</dt><dd class="text" id="contact-body">${c.body || ''}</dd>
          <dt>${t('answer')}</dt><dd class="text" id="contact-answer">${c.answer || '—'}</dd>
        </dl>
        <h2>${t('messages')}</h2>
        <${Messages} items=${messages} />
        <h2>${t('reply_title')}</h2>
        <${Reply} contact=${c} onSent=${load} />
      </div>
      <div>
        ${open && html`<section aria-labelledby="done-h" id="done">
          <h2 id="done-h">${t('mark_done')}</h2>
          <p>${task ? t('ct_done_task', { department: task.department }) : t('ct_done_contact')}</p>
          <${Field} id="done-answer" as="textarea" label=${t('ct_final_answer')} value=${answer} onInput=${setAnswer} />
          <button type="button" disabled=${busy} onClick=${markDone}>${t('mark_done')}</button>
        </section>`}
        <h2>${t('tasks')}</h2>
        ${(c.tasks || []).length === 0 ? html`<p>${t('none_yet')}</p>` : html`<ul class="plain" id="tasks">
          ${c.tasks.map((tk) => html`<li key=${tk.id}>${t('task_for', { department: tk.department })}${' · '}${
            t('ts_' + tk.status)}${' · '}${t('due_at')}: ${tk.due_at ? when(tk.due_at) : '—'}${
            tk.assignee && html` · ${t('assignee')}: ${tk.assignee}`}${
            tk.reason && html` · <span class="text">${tk.reason}</span>`}</li>`)}</ul>`}
        <h2>${t('notes')}</h2>
        ${notes.length === 0 ? html`<p>${t('none_yet')}</p>` : html`<ul class="plain" id="notes">
          ${notes.map((n) => html`<li><span class="text">${n.text || n.detail}</span> — ${n.actor}, ${when(n.at)}</li>`)}</ul>`}
        <form onSubmit=${addNote} novalidate>
          <${Field} id="note" as="textarea" label=${t('note')} value=${note} onInput=${setNote} error=${noteError} />
          <button type="submit" class="secondary">${t('add_note')}</button>
        </form>
        <h2>${t('history')}</h2>
        <ol class="plain" id="history">${history.map((h) => html`<li>
          <time datetime=${h.at}>${when(h.at)}</time> · ${h.actor || ''} · ${actionText(h)}
          ${h.from && h.to && html` · ${statusText(h.from)} → ${statusText(h.to)}`}
          ${(h.detail || h.text) && html` · <span class="text">${h.text || h.detail}</span>`}</li>`)}</ol>
      </div>
    </div>`}
  <//>`;
}

mountPage(Contact);
