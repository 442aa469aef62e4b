// workflow.test.mjs: the staff workflows end to end with real users and sessions against a
// real loketd (issue 15 points 2, 5 and 6): sign-in and sign-out, a page opened without a
// session comes back after signing in, a throttled sign-in says how long to wait; an agent
// logs a contact and refers it with the due time shown; the back office sees the task appear
// live, claims it, opens it, reads the agent's note, answers the citizen by email with an
// attachment and marks it done; the register is checked through the API; the same back
// office work by keyboard alone; axe-core on every page with a real session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Loketd, launch, newPage, screenshot, axeViolations, signIn, settled, until, freePort } from './fixture.mjs';

let d;
let browser;
const AGENT = { name: 'an-agent', password: 'lang genoeg wachtwoord 1' };
const BO = { name: 'bo-burgerzaken', password: 'lang genoeg wachtwoord 2' };
const KBD = { name: 'bo-toetsenbord', password: 'lang genoeg wachtwoord 3' };

before(async () => {
  // chan_email (without mailboxes) so that an answer by email is queued in the outbox.
  d = await new Loketd({ plugins: ['chan_email'],
    pluginConf: { chan_email: { smtp_port: String(await freePort()), retry_min: '1h' } } }).start();
  browser = await launch();
  d.user(AGENT.name, 'agent', AGENT.password);
  d.user(BO.name, 'backoffice', BO.password, { departments: ['burgerzaken'] });
  d.user(KBD.name, 'backoffice', KBD.password, { departments: ['omgeving'] });
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

// A contact referred to department through the API (as an agent would), with its task.
async function referred(department, subject, extra = {}) {
  const made = await d.api('POST', '/api/v1/contacts', { channel: 'phone', subject, department,
    party: { name: 'Mia Wouters', email: `mia.${Date.now()}@example.be` }, ...extra });
  assert.equal(made.status, 201, JSON.stringify(made.doc));
  const esc = await d.api('POST', `/api/v1/contacts/${made.doc.id}/escalate`, { department, reason: 'nakijken' });
  assert.equal(esc.status, 200, JSON.stringify(esc.doc));
  return esc.doc;
}

test('sign-in lands on the role\'s page, shows the name, and sign-out ends the session', async () => {
  const page = await newPage(browser);
  await signIn(page, d, AGENT);
  assert.equal(new URL(page.url()).pathname, '/contactcenter.html');
  await page.getByText(`Aangemeld als ${AGENT.name}`).waitFor();
  const cookie = (await page.context().cookies()).find((c) => c.name === 'loket_session');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'HttpOnly SameSite=Strict cookie');
  assert.equal(await page.evaluate(() => document.cookie.includes('loket_session')), false);
  await screenshot(page, 'workflow-contactcenter-aangemeld');
  await page.getByRole('button', { name: 'Afmelden' }).click();
  await page.waitForURL((u) => u.pathname === '/');
  await page.getByRole('button', { name: 'Aanmelden' }).waitFor();
  // The session is gone in the register, not only in this browser.
  const r = await page.request.get(d.url('/api/v1/session'));
  assert.equal(r.status(), 401);
  await page.goto(d.url('/contactcenter.html'));
  await page.waitForURL((u) => u.pathname === '/');
  await page.getByRole('button', { name: 'Aanmelden' }).waitFor();
  const bo = await newPage(browser);
  await signIn(bo, d, BO);
  assert.equal(new URL(bo.url()).pathname, '/taken.html');
  await bo.getByText(`Aangemeld als ${BO.name}`).waitFor();
  await page.context().close();
  await bo.context().close();
});

test('a page opened without a session goes to sign-in and back to that page after it', async () => {
  const c = await referred('burgerzaken', 'Terug naar de pagina na aanmelden');
  const page = await newPage(browser);
  await page.goto(d.url(`/contact.html?id=${c.id}`));
  await page.waitForURL((u) => u.pathname === '/');
  assert.equal(new URL(page.url()).searchParams.get('next'), `/contact.html?id=${c.id}`);
  await page.getByLabel('Gebruikersnaam').fill(BO.name);
  await page.getByLabel('Wachtwoord').fill(BO.password);
  await page.getByRole('button', { name: 'Aanmelden' }).click();
  await page.waitForURL((u) => u.pathname === '/contact.html');
  assert.equal(new URL(page.url()).search, `?id=${c.id}`, 'the query is kept');
  await page.getByRole('heading', { name: `Contact ${c.reference}`, level: 1 }).waitFor();
  // Another site is never the next page.
  await page.context().clearCookies();
  await page.goto(d.url('/?next=%2F%2Fevil.example%2F'));
  await page.getByLabel('Gebruikersnaam').fill(BO.name);
  await page.getByLabel('Wachtwoord').fill(BO.password);
  await page.getByRole('button', { name: 'Aanmelden' }).click();
  await page.waitForURL((u) => u.pathname === '/taken.html');
  assert.equal(new URL(page.url()).host, new URL(d.base).host);
  await page.context().close();
});

test('a wrong password or user name gets one message that names neither', async () => {
  const page = await newPage(browser);
  const texts = [];
  for (const [name, pass] of [[AGENT.name, 'fout'], ['niemand', AGENT.password]]) {
    await page.goto(d.url('/'));
    await page.getByLabel('Gebruikersnaam').fill(name);
    await page.getByLabel('Wachtwoord').fill(pass);
    await page.getByRole('button', { name: 'Aanmelden' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    texts.push(await alert.textContent());
  }
  assert.equal(texts[0], texts[1], 'the same words whichever part was wrong');
  assert.doesNotMatch(texts[0], /wachtwoord is fout|onbekende gebruiker/i);
  assert.equal(new URL(page.url()).pathname, '/');
  await screenshot(page, 'workflow-aanmelden-mislukt');
  await page.context().close();
});

test('too many failed sign-ins say in words how many minutes to wait', async () => {
  const who = d.user('bo-vergeetachtig', 'backoffice', 'lang genoeg wachtwoord 4', { departments: ['burgerzaken'] });
  const page = await newPage(browser);
  await page.goto(d.url('/'));
  let text = '';
  for (let i = 0; i < 8 && !/Te veel/.test(text); i++) {
    await page.getByLabel('Gebruikersnaam').fill(who.name);
    await page.getByLabel('Wachtwoord').fill(`fout ${i}`);
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/v1/session'));
    await page.getByRole('button', { name: 'Aanmelden' }).click();
    await answered;
    await page.getByRole('alert').waitFor();
    text = await page.getByRole('alert').textContent();
  }
  assert.match(text, /^\s*Te veel mislukte pogingen\. Wacht (\d+ minuten|1 minuut) en probeer dan opnieuw\.\s*$/);
  const mins = Number((/Wacht (\d+)/.exec(text) || [])[1]);
  assert.ok(mins >= 1 && mins <= 15, `the window is 15 minutes: ${text}`);
  // Even the right password waits now, and is told so.
  await page.getByLabel('Gebruikersnaam').fill(who.name);
  await page.getByLabel('Wachtwoord').fill(who.password);
  await page.getByRole('button', { name: 'Aanmelden' }).click();
  await page.getByRole('alert').filter({ hasText: 'Te veel mislukte pogingen' }).waitFor();
  assert.equal(new URL(page.url()).pathname, '/');
  await screenshot(page, 'workflow-aanmelden-te-veel');
  await page.getByLabel('Taal').selectOption('en');
  await page.getByLabel('User name').fill(who.name);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: /Too many failed attempts\. Wait (\d+ minutes|1 minute)/ }).waitFor();
  await page.getByLabel('Language').selectOption('nl-BE');
  await page.context().close();
});

test('the agent refers a contact with its due time, the back office sees it live, answers and closes it', async () => {
  const bo = await newPage(browser);
  await signIn(bo, d, BO);
  await bo.getByRole('heading', { name: 'Mijn taken', level: 1 }).waitFor();
  await settled(bo);
  await bo.locator('html[data-stream="open"]').waitFor({ state: 'attached' });

  const agent = await newPage(browser);
  await signIn(agent, d, AGENT);
  await agent.getByLabel('Kanaal').selectOption('phone');
  await agent.getByRole('button', { name: 'Nieuwe burger' }).click();
  await agent.getByLabel('Naam', { exact: true }).fill('Lotte Claes');
  await agent.getByLabel('E-mail', { exact: true }).fill('lotte.claes@example.be');
  await agent.getByLabel('Onderwerp').fill('Vraag over huwelijksakte');
  await agent.getByLabel('Vraag').fill('Ik heb een afschrift nodig voor de notaris.');
  await agent.getByRole('button', { name: 'Doorverwijzen' }).click();
  await agent.getByLabel('Dienst').selectOption('burgerzaken');
  await agent.getByLabel('Reden').fill('afschrift opzoeken in het register');
  await agent.locator('#esc-due').filter({ hasText: /Uiterlijk beantwoord op/ }).waitFor();
  await screenshot(agent, 'workflow-doorverwijzen-termijn');
  await agent.getByRole('button', { name: 'Doorverwijzing bevestigen' }).click();
  const notice = agent.getByRole('status').filter({ hasText: /doorverwezen naar burgerzaken/ });
  await notice.waitFor();
  const ref = /\d{4}-\d{6}/.exec(await notice.textContent())[0];
  await agent.getByLabel('Interne notitie').fill('Burger belt terug na 14u.');
  await agent.getByRole('button', { name: 'Notitie toevoegen' }).click();
  await agent.getByText('Notitie toegevoegd.').waitFor();

  // Live: the task shows on the back office's page without a reload.
  const navigations = [];
  bo.on('framenavigated', (f) => { if (f === bo.mainFrame()) navigations.push(f.url()); });
  const row = bo.locator('#tasks tr', { hasText: ref });
  await row.waitFor({ timeout: 10000 });
  assert.equal(await row.getByText('afschrift opzoeken in het register').count(), 1);
  await screenshot(bo, 'workflow-taken-live');
  await row.getByRole('button', { name: 'Opnemen' }).click();
  await row.locator('.assignee', { hasText: BO.name }).waitFor();
  await bo.getByRole('status').filter({ hasText: `U hebt ${ref} opgenomen.` }).waitFor();
  assert.equal(await row.getByRole('button', { name: 'Vrijgeven' }).count(), 1);
  assert.deepEqual(navigations, [], 'no reload');
  const tasks = await d.api('GET', '/api/v1/tasks?status=open');
  assert.equal(tasks.doc.items.find((x) => x.reference === ref).assignee, BO.name);
  await row.getByRole('link', { name: ref }).click();
  await bo.getByRole('heading', { name: `Contact ${ref}`, level: 1 }).waitFor();
  await bo.locator('#notes').getByText('Burger belt terug na 14u.').waitFor();
  assert.match(await bo.locator('#contact-status').textContent(), /doorverwezen/);
  assert.match(await bo.locator('#tasks').textContent(), /Behandelaar: bo-burgerzaken/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loket-att-'));
  const file = path.join(dir, 'afschrift <b>.txt');
  fs.writeFileSync(file, 'afschrift huwelijksakte');
  await bo.getByLabel('Bericht').fill('Beste, in bijlage het afschrift.');
  await bo.getByLabel('Bijlagen').setInputFiles(file);
  await bo.getByRole('button', { name: 'Versturen' }).click();
  await bo.getByText('Bericht staat klaar om te versturen.').waitFor();
  const sent = bo.locator('#messages li', { hasText: 'Beste, in bijlage het afschrift.' });
  await sent.waitFor();
  assert.equal(await sent.locator('.att-name').textContent(), 'afschrift <b>.txt');
  assert.match(await sent.textContent(), /text\/plain · 23 B/);
  // The attachment opens as a download of the very bytes sent, never as a page of loket's.
  const [download] = await Promise.all([bo.waitForEvent('download'), sent.locator('.att-name').click()]);
  assert.equal(fs.readFileSync(await download.path(), 'utf8'), 'afschrift huwelijksakte');
  assert.match(new URL(bo.url()).pathname, /\/contact\.html$/);
  await screenshot(bo, 'workflow-contact-beantwoord');
  assert.deepEqual(await axeViolations(bo), []);
  await bo.getByLabel('Antwoord (wat de burger te horen kreeg)').fill('Afschrift per e-mail bezorgd.');
  await bo.getByRole('button', { name: 'Afhandelen' }).click();
  await bo.locator('#contact-status').filter({ hasText: 'afgesloten' }).waitFor();
  await bo.getByRole('status').filter({ hasText: 'Afgehandeld.' }).waitFor();
  await screenshot(bo, 'workflow-contact-afgehandeld');
  assert.deepEqual(await axeViolations(bo), []);
  // The register holds what the page said.
  const list = await d.api('GET', '/api/v1/contacts?limit=50');
  const c = list.doc.items.find((x) => x.reference === ref);
  assert.equal(c.status, 'closed');
  const full = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.equal(full.doc.answer, 'Afschrift per e-mail bezorgd.');
  assert.equal(full.doc.tasks[0].status, 'done');
  assert.equal(full.doc.tasks[0].done_by, BO.name);
  const msgs = await d.api('GET', `/api/v1/contacts/${c.id}/messages`);
  const out = msgs.doc.items.find((m) => m.direction === 'out' && m.actor === BO.name);
  assert.equal(out.attachments[0].name, 'afschrift <b>.txt');
  assert.equal(out.attachments[0].size, 23);
  assert.deepEqual(out.recipients, ['lotte.claes@example.be']);
  assert.match(out.subject, /Vraag over huwelijksakte/);
  // The task list lost it, live.
  await bo.goBack();
  await bo.getByRole('heading', { name: 'Mijn taken', level: 1 }).waitFor();
  await settled(bo);
  assert.equal(await bo.locator('#tasks tr', { hasText: ref }).count(), 0);
  assert.deepEqual(agent.pageErrors, []);
  assert.deepEqual(bo.pageErrors, []);
  await agent.context().close();
  await bo.context().close();
});

// Presses Tab until the focused element matches pred (at most max times); answers it.
async function tabTo(page, pred, arg, max = 60) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const hit = await page.evaluate(pred, arg ?? null);
    if (hit) return;
  }
  throw new Error(`not reached by Tab: ${pred}`);
}

test('the back office claims, sends back and forwards by keyboard alone', async () => {
  const first = await referred('omgeving', 'Toetsenbord: terugsturen');
  const second = await referred('omgeving', 'Toetsenbord: doorsturen');
  const page = await newPage(browser);
  await page.goto(d.url('/'));
  await page.getByLabel('Gebruikersnaam').waitFor();
  await tabTo(page, () => document.activeElement.id === 'username');
  await page.keyboard.type(KBD.name);
  await page.keyboard.press('Tab');
  await page.keyboard.type(KBD.password);
  await page.keyboard.press('Enter');
  await page.waitForURL((u) => u.pathname === '/taken.html');
  await page.locator('#tasks').waitFor();
  // Skip link first, then into the page.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), 'Naar de inhoud');
  await page.keyboard.press('Enter');
  await tabTo(page, (ref) => document.activeElement.getAttribute('aria-label') === `Opnemen ${ref}`,
    first.reference);
  await page.keyboard.press('Enter');
  await page.locator(`#task-${first.tasks[0].id} .assignee`, { hasText: KBD.name }).waitFor();
  // Send it back: the button opens the form and puts the focus in the reason.
  const inRow = ([id, label]) => Boolean(document.activeElement.closest(`#task-${id}`))
    && document.activeElement.textContent.trim() === label;
  await tabTo(page, inRow, [first.tasks[0].id, 'Terugsturen naar eerste lijn']);
  await page.keyboard.press('Enter');
  await until(page, (id) => document.activeElement.id === `task-${id}-reason`, first.tasks[0].id);
  // An empty reason is refused and named beside the field.
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.locator(`#task-${first.tasks[0].id}-reason-error`).filter({ hasText: 'Geef een reden op.' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), `task-${first.tasks[0].id}-reason`);
  assert.equal(await page.locator(`#task-${first.tasks[0].id}-reason`).getAttribute('aria-invalid'), 'true');
  await page.keyboard.type('hoort bij de eerste lijn');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: `${first.reference} is teruggestuurd naar de eerste lijn.` }).waitFor();
  await page.locator(`#task-${first.tasks[0].id}`).waitFor({ state: 'detached' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tasks-msg', 'the focus goes to what happened');
  const back = await d.api('GET', `/api/v1/contacts/${first.id}`);
  assert.equal(back.doc.status, 'open');
  assert.equal(back.doc.line, 1);
  // Forward the other one to burgerzaken.
  const tid = second.tasks[0].id;
  await tabTo(page, inRow, [tid, 'Doorsturen']);
  await page.keyboard.press('Enter');
  await until(page, (id) => document.activeElement.id === `task-${id}-department`, tid);
  await page.keyboard.press('Tab');
  await page.keyboard.type('vraag over een akte');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.locator(`#task-${tid}-department-error`).filter({ hasText: 'Kies de dienst' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), `task-${tid}-department`);
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Tab');
  // Choose burgerzaken in the focused select with the keyboard (type-ahead).
  await page.keyboard.type('burg');
  assert.equal(await page.locator(`#task-${tid}-department`).inputValue(), 'burgerzaken');
  await tabTo(page, () => document.activeElement.textContent.trim() === 'Doorsturen bevestigen', null, 5);
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: `${second.reference} is doorgestuurd naar burgerzaken.` }).waitFor();
  await screenshot(page, 'workflow-taken-toetsenbord');
  const moved = await d.api('GET', `/api/v1/contacts/${second.id}`);
  assert.equal(moved.doc.department, 'burgerzaken');
  assert.equal(moved.doc.tasks.find((x) => x.status === 'open').department, 'burgerzaken');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('every page passes axe-core with a real session, and is kept as a screenshot', async () => {
  const c = await referred('burgerzaken', 'Alle pagina\'s nakijken');
  const pages = [
    [AGENT, '/contactcenter.html', 'Contactcenter', 'pagina-contactcenter'],
    [AGENT, `/burger.html?id=${c.party_id}`, 'Burger: Mia Wouters', 'pagina-burger'],
    [AGENT, `/contact.html?id=${c.id}`, `Contact ${c.reference}`, 'pagina-contact-agent'],
    [BO, '/taken.html', 'Mijn taken', 'pagina-taken'],
    [BO, `/contact.html?id=${c.id}`, `Contact ${c.reference}`, 'pagina-contact-backoffice'],
  ];
  const problems = [];
  for (const [user, p, heading, shot] of pages) {
    const page = await newPage(browser);
    await signIn(page, d, user);
    await page.goto(d.url(p));
    await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
    await settled(page);
    await screenshot(page, shot);
    for (const v of await axeViolations(page)) problems.push(`${p}: ${v}`);
    assert.deepEqual(page.pageErrors, [], p);
    await page.context().close();
  }
  assert.deepEqual(problems, []);
});
