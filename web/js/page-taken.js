// page-taken.js: the back office's page (Mijn taken): open tasks of my departments by due
// time, overdue marked in words and colour; claim, send back to the first line or forward
// to another department with a reason, open the contact, mark done. New tasks appear live.
import { mountPage, html, useState, useEffect, Frame, Field, Notice, errorText, useLang } from './widgets.js';
import { get, post, q } from './api.js';
import { subscribe } from './stream.js';
import { t, when } from './i18n.js';

function TaskRow({ task, user, departments, reload, setMsg }) {
  const [mode, setMode] = useState(null); // null, 'return' or 'forward'
  const [reason, setReason] = useState('');
  const [department, setDepartment] = useState('');
  const [error, setError] = useState('');
  const overdue = task.due_at && new Date(task.due_at) < new Date();
  const act = async (path, body, done) => {
    setError('');
    try {
      await post(path, body);
      setMode(null);
      setMsg(done);
      reload();
    } catch (err) { setError(errorText(err)); }
  };
  const confirm = () => {
    if (!reason.trim()) { setError(t('required')); return; }
    if (mode === 'return') act(`/api/v1/tasks/${task.id}/return`, { reason }, t('send_back'));
    else if (department) act(`/api/v1/tasks/${task.id}/forward`, { department, reason }, t('forward'));
    else setError(t('required'));
  };
  const pre = `task-${task.id}`;
  return html`<tr id=${pre}>
    <td><a href=${`/contact.html?id=${task.contact_id}`}>${task.reference}</a></td>
    <td>${task.department}</td>
    <td><time datetime=${task.due_at}>${when(task.due_at)}</time>
      ${overdue && html` <span class="overdue">${t('overdue')}</span>`}</td>
    <td class="text">${task.reason || ''}</td>
    <td>${task.assignee || t('nobody')}</td>
    <td>
      <div class="actions">
        ${task.assignee === user.name
          ? html`<button type="button" class="secondary" onClick=${() => act(`/api/v1/tasks/${task.id}/claim`, { release: true }, t('release'))}>${t('release')}</button>`
          : html`<button type="button" class="secondary" onClick=${() => act(`/api/v1/tasks/${task.id}/claim`, {}, t('claim'))}>${t('claim')}</button>`}
        <button type="button" class="secondary" aria-expanded=${mode === 'return'} onClick=${() => setMode(mode === 'return' ? null : 'return')}>${t('send_back')}</button>
        <button type="button" class="secondary" aria-expanded=${mode === 'forward'} onClick=${() => setMode(mode === 'forward' ? null : 'forward')}>${t('forward')}</button>
        <button type="button" onClick=${() => act(`/api/v1/tasks/${task.id}/done`, {}, t('done'))}>${t('done')}</button>
      </div>
      ${mode && html`<div>
        ${mode === 'forward' && html`<${Field} id=${`${pre}-department`} as="select" label=${t('department')}
          value=${department} onInput=${setDepartment}>
          <option value="">—</option>
          ${departments.filter((d) => d !== task.department).map((d) => html`<option value=${d}>${d}</option>`)}
        <//>`}
        <${Field} id=${`${pre}-reason`} as="textarea" label=${t('reason')} value=${reason} onInput=${setReason} error=${error} />
        <button type="button" onClick=${confirm}>${t('confirm')}</button>
      </div>`}
      ${!mode && error && html`<${Notice} kind="error">${error}<//>`}
    </td>
  </tr>`;
}

function Taken({ user }) {
  useLang();
  const [tasks, setTasks] = useState(null);
  const [departments, setDepartments] = useState([]);
  const [error, setError] = useState('');
  const [msg, setMsg] = useState('');
  const load = () => get(q('/api/v1/tasks', { status: 'open' }))
    .then((doc) => setTasks([...doc.items].sort((a, b) => String(a.due_at || '~').localeCompare(String(b.due_at || '~')))))
    .catch((e) => setError(errorText(e)));
  useEffect(() => {
    load();
    get('/api/v1/catalogue').then((doc) => setDepartments([...new Set((doc.items || [])
      .map((p) => p.department).filter(Boolean))].sort())).catch(() => {});
    const offs = ['task.created', 'task.done', 'task.due', 'contact.changed'].map((k) => subscribe(k, load));
    return () => offs.forEach((f) => f());
  }, []);
  return html`<${Frame} user=${user} current="/taken.html" title=${t('tasks_title')}>
    <p>${t('live')}</p>
    <${Notice} kind="error">${error}<//>
    <${Notice} kind="ok">${msg}<//>
    ${tasks === null ? html`<p>${t('loading')}</p>` : tasks.length === 0 ? html`<p id="no-tasks">${t('none_yet')}</p>` : html`
    <table id="tasks">
      <caption class="visually-hidden">${t('tasks_title')}</caption>
      <thead><tr><th scope="col">${t('reference')}</th><th scope="col">${t('department')}</th>
        <th scope="col">${t('due_at')}</th><th scope="col">${t('reason')}</th>
        <th scope="col">${t('assignee')}</th><th scope="col"><span class="visually-hidden">${t('status')}</span></th></tr></thead>
      <tbody aria-live="polite">${tasks.map((tk) => html`<${TaskRow} key=${tk.id} task=${tk} user=${user}
        departments=${departments} reload=${load} setMsg=${setMsg} />`)}</tbody>
    </table>`}
  <//>`;
}

mountPage(Taken);
