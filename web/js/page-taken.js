// page-taken.js: the back office's page (Mijn taken): the open tasks of my departments by due
// time, overdue said in words as well as colour; claim (and release), send back to the first
// line or forward to another department with a reason, open the contact, mark done. The list
// follows the register's events (task.created, task.done, task.due, contact.changed) without
// a reload.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, useLang } from './widgets.js';
import { get, post, q } from './api.js';
import { subscribe } from './stream.js';
import { t, when } from './i18n.js';
import { refusalText } from './tasks.js';

function isOverdue(task, now) {
  return Boolean(task.due_at) && new Date(task.due_at).getTime() < now;
}

function TaskRow({ task, user, departments, now, reload, say, failed }) {
  useLang();
  const [mode, setMode] = useState(null); // null, 'return' or 'forward'
  const [reason, setReason] = useState('');
  const [department, setDepartment] = useState('');
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  const pre = `task-${task.id}`;
  const overdue = isOverdue(task, now);
  const mine = task.assignee === user.name;

  const act = async (path, body, done) => {
    setErrors({});
    setBusy(true);
    try {
      await post(path, body);
      setMode(null);
      setReason('');
      say(done);
    } catch (err) {
      setErrors({ row: refusalText(err) });
      failed(task, refusalText(err));
    } finally {
      setBusy(false);
      reload();
    }
  };
  const open = (m) => {
    setErrors({});
    setMode(mode === m ? null : m);
    if (mode !== m) setTimeout(() => {
      const el = document.getElementById(m === 'forward' ? `${pre}-department` : `${pre}-reason`);
      if (el) el.focus();
    }, 0);
  };
  const confirm = (e) => {
    e.preventDefault();
    const errs = {};
    if (mode === 'forward' && !department) errs.department = t('tk_pick_department');
    if (!reason.trim()) errs.reason = t('tk_reason_needed');
    setErrors(errs);
    if (Object.keys(errs).length) {
      document.getElementById(errs.department ? `${pre}-department` : `${pre}-reason`).focus();
      return;
    }
    if (mode === 'return') {
      act(`/api/v1/tasks/${task.id}/return`, { reason: reason.trim() },
        t('tk_returned', { ref: task.reference }));
    } else {
      act(`/api/v1/tasks/${task.id}/forward`, { department, reason: reason.trim() },
        t('tk_forwarded', { ref: task.reference, department }));
    }
  };
  const claim = () => (mine
    ? act(`/api/v1/tasks/${task.id}/claim`, { release: true }, t('tk_released', { ref: task.reference }))
    : act(`/api/v1/tasks/${task.id}/claim`, {}, t('tk_claimed', { ref: task.reference })));

  return html`<tr id=${pre} class=${overdue ? 'late' : undefined}>
    <td><a href=${`/contact.html?id=${encodeURIComponent(task.contact_id)}`}>${task.reference}</a></td>
    <td>${task.department}</td>
    <td><time datetime=${task.due_at}>${task.due_at ? when(task.due_at) : '—'}</time>
      ${overdue && html` <strong class="overdue">${t('overdue')}</strong>`}</td>
    <td class="text">${task.reason || ''}</td>
    <td class="assignee">${task.assignee || t('nobody')}</td>
    <td>
      <div class="actions">
        <button type="button" class="secondary" disabled=${busy} onClick=${claim}
          aria-label=${t(mine ? 'tk_release_ref' : 'tk_claim_ref', { ref: task.reference })}>${mine ? t('release') : t('claim')}</button>
        <button type="button" class="secondary" aria-expanded=${mode === 'return' ? 'true' : 'false'}
          aria-controls=${`${pre}-form`} onClick=${() => open('return')}>${t('tk_send_back')}</button>
        <button type="button" class="secondary" aria-expanded=${mode === 'forward' ? 'true' : 'false'}
          aria-controls=${`${pre}-form`} onClick=${() => open('forward')}>${t('forward')}</button>
        <button type="button" disabled=${busy}
          onClick=${() => act(`/api/v1/tasks/${task.id}/done`, {}, t('tk_done', { ref: task.reference }))}>${t('done')}</button>
      </div>
      ${errors.row && html`<${Notice} kind="error">${errors.row}<//>`}
      ${mode && html`<form id=${`${pre}-form`} class="handover" novalidate onSubmit=${confirm}
        aria-label=${mode === 'return' ? t('tk_send_back') : t('forward')}>
        ${mode === 'forward' && html`<${Field} id=${`${pre}-department`} as="select" label=${t('tk_to_department')}
          value=${department} onInput=${(v) => { setDepartment(v); setErrors({ ...errors, department: undefined }); }}
          error=${errors.department} required>
          <option value="">${t('tk_choose')}</option>
          ${departments.filter((d) => d !== task.department).map((d) => html`<option value=${d}>${d}</option>`)}
        <//>`}
        <${Field} id=${`${pre}-reason`} as="textarea" label=${t('reason')} value=${reason}
          onInput=${(v) => { setReason(v); if (errors.reason && v.trim()) setErrors({ ...errors, reason: undefined }); }}
          error=${errors.reason} required />
        <button type="submit" disabled=${busy}>${mode === 'return' ? t('tk_confirm_return') : t('tk_confirm_forward')}</button>
        <button type="button" class="secondary" onClick=${() => { setMode(null); setErrors({}); }}>${t('cancel')}</button>
      </form>`}
    </td>
  </tr>`;
}

function Taken({ user }) {
  useLang();
  const [tasks, setTasks] = useState(null);
  const [departments, setDepartments] = useState([]);
  const [error, setError] = useState('');
  const [msg, setMsg] = useState('');
  const [now, setNow] = useState(Date.now());
  // The last refused action: said above the list too when its task has left the list (a
  // task moved out of my departments meanwhile takes its row, and the row's message, along).
  const [refused, setRefused] = useState(null);
  const load = () => get(q('/api/v1/tasks', { status: 'open' }))
    .then((doc) => {
      setNow(Date.now());
      setError('');
      setTasks([...doc.items].sort((a, b) => String(a.due_at || '~').localeCompare(String(b.due_at || '~'))
        || a.id - b.id));
    })
    .catch((e) => setError(errorText(e)));
  const say = (text) => {
    setMsg(text);
    setRefused(null);
    // The row may be gone (forwarded, returned, done): the focus goes to what happened.
    setTimeout(() => {
      const el = document.getElementById('tasks-msg');
      if (el && !document.activeElement.closest('#tasks tbody')) el.focus();
    }, 0);
  };
  useEffect(() => {
    load();
    get('/api/v1/catalogue').then((doc) => setDepartments([...new Set((doc.items || [])
      .map((p) => p.department).filter(Boolean))].sort())).catch(() => {});
    const offs = ['open', 'task.created', 'task.done', 'task.due', 'contact.changed'].map((k) => subscribe(k, load));
    // Overdue is said again as time passes, also without an event.
    const tick = setInterval(() => setNow(Date.now()), 30000);
    return () => { offs.forEach((f) => f()); clearInterval(tick); };
  }, []);
  const late = tasks ? tasks.filter((tk) => isOverdue(tk, now)).length : 0;
  return html`<${Frame} user=${user} current="/taken.html" title=${t('tasks_title')}>
    <p>${t('tk_intro', { departments: (user.departments || []).join(', ') || t('tk_all') })} ${t('live')}</p>
    <${Notice} kind="error">${error}<//>
    ${refused && tasks && !tasks.some((tk) => tk.id === refused.id) && html`<${Notice} kind="error">${
      t('tk_gone', { ref: refused.reference, text: refused.text })}<//>`}
    <p id="tasks-msg" tabindex="-1" role="status" class=${msg ? 'notice ok' : 'visually-hidden'}>${msg}</p>
    ${tasks === null ? html`<p>${t('loading')}</p>` : tasks.length === 0 ? html`<p id="no-tasks">${t('tk_none')}</p>` : html`
    <p id="tasks-count">${t('tk_count', { n: tasks.length, late })}</p>
    <table id="tasks">
      <caption class="visually-hidden">${t('tasks_title')}</caption>
      <thead><tr><th scope="col">${t('reference')}</th><th scope="col">${t('department')}</th>
        <th scope="col">${t('due_at')}</th><th scope="col">${t('reason')}</th>
        <th scope="col">${t('assignee')}</th><th scope="col">${t('tk_actions')}</th></tr></thead>
      <tbody>${tasks.map((tk) => html`<${TaskRow} key=${tk.id} task=${tk} user=${user} now=${now}
        departments=${departments} reload=${load} say=${say}
        failed=${(task, text) => setRefused({ id: task.id, reference: task.reference, text })} />`)}</tbody>
    </table>`}
  <//>`;
}

mountPage(Taken);
