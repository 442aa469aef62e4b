// page-contact.js: one contact with its whole thread (contact.html?id=N): fields, history,
// messages (mail bodies shown as text, never as HTML), tasks, internal notes; answer the
// citizen by email with attachments; mark it done.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, statusText,
  channelText, param, useLang } from './widgets.js';
import { get, post, fileToBase64, ApiError } from './api.js';
import { subscribe } from './stream.js';
import { t, when } from './i18n.js';

function Messages({ items }) {
  if (!items) return html`<p>${t('loading')}</p>`;
  if (!items.length) return html`<p>${t('none_yet')}</p>`;
  return html`<ol class="plain" id="messages">${items.map((m) => html`<li key=${m.id}>
    <p><strong>${m.direction === 'in' ? t('msg_in') : t('msg_out')}</strong>
      <time datetime=${m.at}> ${when(m.at)}</time> · ${channelText(m.channel)}
      ${m.status && html` · ${m.status}`}</p>
    <p>${t('from')}: <span class="text">${m.sender || m.actor || ''}</span>
      ${m.recipients && m.recipients.length > 0 && html` · ${t('to')}: <span class="text">${m.recipients.join(', ')}</span>`}</p>
    <p><strong class="text">${m.subject || ''}</strong></p>
    <p class="text">${m.body || ''}</p>
    ${(m.attachments || []).length > 0 && html`<ul>${m.attachments.map((a) => html`<li class="text">${a.name} (${a.content_type}, ${a.size} B)</li>`)}</ul>`}
  </li>`)}</ol>`;
}

function Reply({ contact, onSent }) {
  const [to, setTo] = useState(contact.reply_to || '');
  const [subject, setSubject] = useState(`Re: ${contact.subject || ''}`);
  const [body, setBody] = useState('');
  const [files, setFiles] = useState([]);
  const [errors, setErrors] = useState({});
  const [msg, setMsg] = useState('');
  const [busy, setBusy] = useState(false);
  const send = async (e) => {
    e.preventDefault();
    setMsg('');
    if (!body.trim()) { setErrors({ body: t('required') }); document.getElementById('reply-body').focus(); return; }
    setErrors({});
    setBusy(true);
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
      e.target.reset();
      setMsg(t('sent'));
      onSent();
    } catch (err) {
      const field = err instanceof ApiError && err.field;
      const map = { to: 'to', subject: 'subject', body: 'body' };
      if (field && map[field]) setErrors({ [field]: err.detail });
      else if (field && field.startsWith('attachments')) setErrors({ attachments: err.detail });
      else setErrors({ form: errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  return html`<form onSubmit=${send} novalidate>
    <${Notice} kind="error">${errors.form}<//>
    <${Field} id="reply-to" type="email" label=${t('to')} value=${to} onInput=${setTo} error=${errors.to} />
    <${Field} id="reply-subject" label=${t('subject')} value=${subject} onInput=${setSubject} error=${errors.subject} />
    <${Field} id="reply-body" as="textarea" label=${t('message')} value=${body} onInput=${setBody} error=${errors.body} />
    <${Field} id="reply-files" type="file" multiple label=${t('attachments')} error=${errors.attachments}
      onChange=${(e) => setFiles([...e.target.files])} />
    <button type="submit" disabled=${busy}>${t('send')}</button>
    <${Notice} kind="ok">${msg}<//>
  </form>`;
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

  const load = () => {
    get(`/api/v1/contacts/${encodeURIComponent(id)}`).then(setC).catch((e) => setError(errorText(e)));
    get(`/api/v1/contacts/${encodeURIComponent(id)}/messages`).then((d) => setMessages(d.items))
      .catch(() => setMessages([]));
  };
  useEffect(() => {
    load();
    const mine = (ev) => ev && String(ev.contact_id) === String(id) && load();
    const offs = ['contact.changed', 'message.added', 'task.created', 'task.done'].map((k) => subscribe(k, mine));
    return () => offs.forEach((f) => f());
  }, []);

  const addNote = async (e) => {
    e.preventDefault();
    setNoteError('');
    if (!note.trim()) { setNoteError(t('required')); return; }
    try {
      setC(await post(`/api/v1/contacts/${c.id}/notes`, { text: note }));
      setNote('');
      setMsg(t('note_added'));
    } catch (err) { setNoteError(errorText(err)); }
  };
  const markDone = async () => {
    setError('');
    setMsg('');
    try {
      const verb = c.status === 'escalated' ? 'close' : 'resolve';
      setC(await post(`/api/v1/contacts/${c.id}/${verb}`, answer.trim() ? { answer } : {}));
      setMsg(t('done'));
    } catch (err) { setError(errorText(err)); }
  };

  const title = c ? t('contact_title', { ref: c.reference }) : t('loading');
  const history = c ? c.history || [] : [];
  const notes = history.filter((h) => h.kind === 'note');
  return html`<${Frame} user=${user} title=${title}>
    <${Notice} kind="error">${error}<//>
    <${Notice} kind="ok">${msg}<//>
    ${c && html`<div class="columns">
      <div>
        <dl class="props">
          <dt>${t('status')}</dt><dd id="contact-status">${statusText(c.status)}</dd>
          <dt>${t('channel')}</dt><dd>${channelText(c.channel)}</dd>
          <dt>${t('received')}</dt><dd>${when(c.received_at)}</dd>
          <dt>${t('line')}</dt><dd>${t('line_' + c.line)}</dd>
          <dt>${t('department')}</dt><dd>${c.department || '—'}</dd>
          <dt>${t('product')}</dt><dd>${c.product || '—'}</dd>
          <dt>${t('citizen')}</dt><dd>${c.party_id ? html`<a href=${`/burger.html?id=${c.party_id}`}>
            <span class="text">${(c.party && c.party.name) || t('open_citizen')}</span></a>` : t('anonymous')}</dd>
          <dt>${t('subject')}</dt><dd class="text" id="contact-subject">${c.subject || ''}</dd>
          <dt>${t('question')}</dt><dd class="text" id="contact-body">${c.body || ''}</dd>
          <dt>${t('answer')}</dt><dd class="text">${c.answer || '—'}</dd>
        </dl>
        <h2>${t('messages')}</h2>
        <${Messages} items=${messages} />
        <h2>${t('reply_title')}</h2>
        <${Reply} contact=${c} onSent=${load} />
      </div>
      <div>
        ${(c.status === 'open' || c.status === 'escalated') && html`<section aria-labelledby="done-h">
          <h2 id="done-h">${t('mark_done')}</h2>
          <${Field} id="done-answer" as="textarea" label=${t('answer')} value=${answer} onInput=${setAnswer} />
          <button type="button" onClick=${markDone}>${t('mark_done')}</button>
        </section>`}
        <h2>${t('tasks')}</h2>
        ${(c.tasks || []).length === 0 ? html`<p>${t('none_yet')}</p>` : html`<ul class="plain">
          ${c.tasks.map((tk) => html`<li key=${tk.id}>${t('task_for', { department: tk.department })} ·
            ${tk.status} · ${t('due_at')}: ${when(tk.due_at)} <span class="text">${tk.reason || ''}</span></li>`)}</ul>`}
        <h2>${t('notes')}</h2>
        ${notes.length === 0 ? html`<p>${t('none_yet')}</p>` : html`<ul class="plain" id="notes">
          ${notes.map((n) => html`<li><span class="text">${n.text}</span> — ${n.actor}, ${when(n.at)}</li>`)}</ul>`}
        <form onSubmit=${addNote}>
          <${Field} id="note" as="textarea" label=${t('note')} value=${note} onInput=${setNote} error=${noteError} />
          <button type="submit" class="secondary">${t('add_note')}</button>
        </form>
        <h2>${t('history')}</h2>
        <ol class="plain" id="history">${history.map((h) => html`<li>
          <time datetime=${h.at}>${when(h.at)}</time> · ${h.actor || ''} · ${h.action || h.kind || ''}
          ${h.from && html` · ${statusText(h.from)} → ${statusText(h.to)}`}
          ${(h.detail || h.text) && html` · <span class="text">${h.detail || h.text}</span>`}</li>`)}</ol>
      </div>
    </div>`}
  <//>`;
}

mountPage(Contact);
