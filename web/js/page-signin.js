// page-signin.js: the sign-in page (index.html): user name and password; on success the
// page of the user's role (or the page that sent here, ?next=, a path on this site only).
// A failure says one thing, never which part was wrong; a 429 says how many minutes to wait.
import { html, render, useState, useEffect, Frame, Field, Notice, useLang } from './widgets.js';
import { session, signIn, homeOf, ApiError } from './api.js';
import { t } from './i18n.js';

// Only a path on this site may be the next page (never another origin).
function nextPage(user) {
  const next = new URLSearchParams(location.search).get('next');
  if (next && next.startsWith('/') && !next.startsWith('//') && !next.includes('\\')) return next;
  return homeOf(user);
}

function SignIn() {
  useLang();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    session().then((user) => user && location.replace(nextPage(user))).catch(() => {});
  }, []);

  const submit = async (e) => {
    e.preventDefault();
    const errs = {};
    if (!username.trim()) errs.username = t('required');
    if (!password) errs.password = t('required');
    setErrors(errs);
    setMessage('');
    if (Object.keys(errs).length) {
      document.getElementById(errs.username ? 'username' : 'password').focus();
      return;
    }
    setBusy(true);
    try {
      const user = await signIn(username.trim(), password);
      location.assign(nextPage(user));
    } catch (err) {
      setPassword('');
      if (err instanceof ApiError && err.status === 401) setMessage(t('signin_failed'));
      else if (err instanceof ApiError && err.status === 429) {
        // Retry-After is in seconds; a person is told whole minutes, rounded up.
        const secs = parseInt(err.headers.get('Retry-After'), 10);
        const mins = Math.max(1, Math.ceil((Number.isFinite(secs) ? secs : 60) / 60));
        setMessage(mins === 1 ? t('signin_wait_1') : t('signin_wait_min', { n: mins }));
      } else setMessage(t('signin_unavailable', { detail: err.detail || err.message }));
      setBusy(false);
    }
  };

  return html`<${Frame} title=${t('signin_title')}>
    <form class="signin" novalidate onSubmit=${submit}>
      <${Notice} kind="error">${message}<//>
      <${Field} id="username" label=${t('username')} value=${username} onInput=${setUsername}
        error=${errors.username} autocomplete="username" autocapitalize="none" spellcheck="false" required />
      <${Field} id="password" type="password" label=${t('password')} value=${password}
        onInput=${setPassword} error=${errors.password} autocomplete="current-password" required />
      <button type="submit" disabled=${busy}>${t('signin')}</button>
    </form>
  <//>`;
}

render(html`<${SignIn} />`, document.getElementById('app'));
