// workflow.test.mjs: the staff workflows end to end with real users and sessions (issue 15):
// sign-in and sign-out; an agent logs a contact and refers it with the due time shown; the
// back office sees the task appear live, claims it, answers the citizen by email with an
// attachment, and marks it done. Each test first probes the backend routes it needs (the
// auth, stream and workflow parts of issue 15) and is skipped, naming them, while they
// answer the router's 404, so that main stays green until they are merged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Loketd, launch, newPage, screenshot, axeViolations, needRoutes, needUserCommand,
  signIn, freePort } from './fixture.mjs';

let d;
let browser;
const AGENT = { name: 'an-agent', password: 'lang genoeg wachtwoord 1' };
const BO = { name: 'bo-burgerzaken', password: 'lang genoeg wachtwoord 2' };
let usersMade = false;

before(async () => {
  // chan_email (without mailboxes) so that an answer by email is queued in the outbox.
  d = await new Loketd({ plugins: ['chan_email'],
    pluginConf: { chan_email: { smtp_port: String(await freePort()), retry_min: '1h' } } }).start();
  browser = await launch();
  try {
    d.user(AGENT.name, 'agent', AGENT.password);
    d.user(BO.name, 'backoffice', BO.password, { departments: ['burgerzaken'] });
    usersMade = true;
  } catch (e) {
    usersMade = false;
  }
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

async function needAuth(t) {
  if (!needUserCommand(t, d)) return false;
  if (!(await needRoutes(t, d, [['POST', '/api/v1/session'], ['GET', '/api/v1/session']]))) return false;
  assert.ok(usersMade, 'loketctl user add made the test users');
  return true;
}

test('sign-in lands on the role\'s page, shows the name, and sign-out ends the session', async (t) => {
  if (!(await needAuth(t))) return;
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
  await page.goto(d.url('/contactcenter.html'));
  await page.waitForURL((u) => u.pathname === '/');
  await page.getByRole('button', { name: 'Aanmelden' }).waitFor();
  const bo = await newPage(browser);
  await signIn(bo, d, BO);
  assert.equal(new URL(bo.url()).pathname, '/taken.html');
  await page.context().close();
  await bo.context().close();
});

test('a wrong password or user name gets one message that names neither', async (t) => {
  if (!(await needAuth(t))) return;
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

test('the agent refers a contact with its due time, the back office sees it live, answers and closes it', async (t) => {
  if (!(await needAuth(t))) return;
  if (!(await needRoutes(t, d, [['GET', '/api/v1/events'], ['GET', '/api/v1/due?department=burgerzaken'],
    ['POST', '/api/v1/tasks/1/claim'], ['POST', '/api/v1/contacts/1/notes']]))) return;
  const bo = await newPage(browser);
  await signIn(bo, d, BO);
  await bo.getByRole('heading', { name: 'Mijn taken', level: 1 }).waitFor();
  await bo.waitForLoadState('networkidle');

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
  const row = bo.locator('tr', { hasText: ref });
  await row.waitFor({ timeout: 10000 });
  await screenshot(bo, 'workflow-taken-live');
  await row.getByRole('button', { name: 'Opnemen' }).click();
  await row.getByText(BO.name).waitFor();
  await row.getByRole('link', { name: ref }).click();
  await bo.getByRole('heading', { name: `Contact ${ref}`, level: 1 }).waitFor();
  await bo.locator('#notes').getByText('Burger belt terug na 14u.').waitFor();
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'loket-att-')), 'afschrift <b>.txt');
  fs.writeFileSync(file, 'afschrift huwelijksakte');
  await bo.getByLabel('Bericht').fill('Beste, in bijlage het afschrift.');
  await bo.getByLabel('Bijlagen').setInputFiles(file);
  await bo.getByRole('button', { name: 'Versturen' }).click();
  await bo.getByText('Bericht staat klaar om te versturen.').waitFor();
  await bo.locator('#messages').getByText('afschrift <b>.txt', { exact: false }).waitFor();
  await screenshot(bo, 'workflow-contact-beantwoord');
  assert.deepEqual(await axeViolations(bo), []);
  await bo.getByRole('button', { name: 'Afhandelen' }).click();
  await bo.locator('#contact-status').filter({ hasText: 'afgesloten' }).waitFor();
  const list = await d.api('GET', '/api/v1/contacts?limit=10');
  const c = list.doc.items.find((x) => x.reference === ref);
  assert.equal(c.status, 'closed');
  const msgs = await d.api('GET', `/api/v1/contacts/${c.id}/messages`);
  const out = msgs.doc.items.find((m) => m.direction === 'out');
  assert.equal(out.attachments[0].name, 'afschrift <b>.txt');
  assert.deepEqual(out.recipients, ['lotte.claes@example.be']);
  await agent.context().close();
  await bo.context().close();
});

test('a signed-in page passes axe-core on every page (real session)', async (t) => {
  if (!(await needAuth(t))) return;
  const page = await newPage(browser);
  await signIn(page, d, AGENT);
  for (const p of ['/contactcenter.html', '/taken.html']) {
    await page.goto(d.url(p));
    await page.locator('main h1').waitFor();
    assert.deepEqual(await axeViolations(page), [], p);
  }
  await page.context().close();
});
