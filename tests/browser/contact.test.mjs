// contact.test.mjs: the contact page (contact.html?id=N, issue 15 point 6) in Chromium against
// a real loketd: the whole thread (fields, status, history with notes, messages in and out
// with their attachments listed, tasks); an internal note; the answer by email with the
// messages API's limits checked before anything is sent; marking done, seen live on a
// colleague's copy of the page; the register checked through the API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Loketd, launch, newPage, screenshot, axeViolations, signIn, settled, freePort } from './fixture.mjs';

let d;
let browser;
const AGENT = { name: 'ct-agent', password: 'lang genoeg wachtwoord e' };
const BO = { name: 'ct-bo', password: 'lang genoeg wachtwoord f' };

before(async () => {
  d = await new Loketd({ plugins: ['chan_email'],
    pluginConf: { chan_email: { smtp_port: String(await freePort()), retry_min: '1h' } } }).start();
  browser = await launch();
  d.user(AGENT.name, 'agent', AGENT.password);
  d.user(BO.name, 'backoffice', BO.password, { departments: ['burgerzaken'] });
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

let n = 0;
// An email contact (subject 'Adreswijziging' is classified and referred by the example rules).
async function emailContact(subject) {
  n += 1;
  const made = await d.api('POST', '/api/v1/contacts', { channel: 'email', subject, department: 'burgerzaken',
    body: 'Beste,\nik verhuis op 1 maart.\nGroeten', party: { name: `Els Maes ${n}`, email: `els${n}@example.be` } });
  assert.equal(made.status, 201, JSON.stringify(made.doc));
  return made.doc;
}

async function open(user, c) {
  const page = await newPage(browser);
  await signIn(page, d, user);
  await page.goto(d.url(`/contact.html?id=${c.id}`));
  await page.getByRole('heading', { name: `Contact ${c.reference}`, level: 1 }).waitFor();
  await settled(page);
  await page.locator('html[data-stream="open"]').waitFor({ state: 'attached' });
  return page;
}

test('the contact page shows the whole thread: fields, history with notes, messages with attachments, tasks', async () => {
  const c = await emailContact('Adreswijziging');
  assert.equal((await d.api('POST', `/api/v1/contacts/${c.id}/notes`, { text: 'Eerst het dossier nakijken.' })).status, 201);
  // The example rules classify it (adreswijziging) and refer it to burgerzaken themselves.
  assert.equal((await d.api('GET', `/api/v1/contacts/${c.id}`)).doc.status, 'escalated');
  const sent = await d.api('POST', `/api/v1/contacts/${c.id}/messages`, { body: 'We bekijken uw vraag.',
    via: 'email', attachments: [{ name: 'formulier.txt', content_type: 'text/plain', data: Buffer.from('x'.repeat(2048)).toString('base64') }] });
  assert.equal(sent.status, 202, JSON.stringify(sent.doc));
  const page = await open(BO, c);
  assert.match(await page.locator('#contact-status').textContent(), /doorverwezen/);
  assert.equal(await page.locator('#contact-line').textContent(), 'tweede lijn');
  assert.equal(await page.locator('#contact-department').textContent(), 'burgerzaken');
  assert.equal(await page.locator('#contact-body').textContent(), 'Beste,\nik verhuis op 1 maart.\nGroeten');
  assert.equal(await page.locator('#contact-party').textContent(), 'Els Maes 1');
  await page.locator('#notes').getByText('Eerst het dossier nakijken.').waitFor();
  const history = await page.locator('#history').textContent();
  assert.match(history, /notitie/);
  assert.match(history, /doorverwezen/);
  assert.match(history, /aangemaakt/);
  assert.match(history, /beslissing van de regels · set product = "adreswijziging"/);
  assert.match(history, /rule:10-routing\.lua:3 · beslissing van de regels · escalate to burgerzaken/);
  const out = page.locator('#messages li.out', { hasText: 'We bekijken uw vraag.' });
  assert.equal(await out.locator('.att-name').textContent(), 'formulier.txt');
  assert.match(await out.textContent(), /text\/plain · 2\.0 kB/);
  // The name is a link that downloads the document from the register.
  assert.match(await out.locator('.att-name').getAttribute('href'),
    /^\/api\/v1\/contacts\/\d+\/attachments\/[0-9a-f]{64}$/);
  assert.match(await out.textContent(), /Aan: els1@example\.be/);
  assert.match(await page.locator('#tasks').textContent(), /Taak voor burgerzaken · open/);
  await screenshot(page, 'contact-draad');
  assert.deepEqual(await axeViolations(page), []);
  // A note from this page: in the register, not on the messages list.
  await page.getByLabel('Interne notitie').fill('Burger gebeld, adres bevestigd.');
  await page.getByRole('button', { name: 'Notitie toevoegen' }).click();
  await page.getByRole('status').filter({ hasText: 'Notitie toegevoegd.' }).waitFor();
  await page.locator('#notes').getByText('Burger gebeld, adres bevestigd.').waitFor();
  const full = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.ok(full.doc.history.some((h) => h.kind === 'note' && h.text === 'Burger gebeld, adres bevestigd.' && h.actor === BO.name));
  const msgs = await d.api('GET', `/api/v1/contacts/${c.id}/messages`);
  assert.ok(!msgs.doc.items.some((m) => (m.body || '').includes('adres bevestigd')), 'a note is never a message');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('the answer by email checks the API\'s limits before sending, tied to the field', async () => {
  const c = await emailContact('Veel bijlagen');
  const page = await open(BO, c);
  const before = (await d.api('GET', `/api/v1/contacts/${c.id}/messages`)).doc.items.length;
  // An empty message.
  await page.getByRole('button', { name: 'Versturen' }).click();
  await page.locator('#reply-body-error').filter({ hasText: 'Vul dit veld in.' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'reply-body');
  // Eleven files: at most ten.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loket-att-'));
  const files = [];
  for (let i = 0; i < 11; i++) {
    files.push(path.join(dir, `bijlage-${i}.txt`));
    fs.writeFileSync(files[i], `bijlage ${i}`);
  }
  await page.getByLabel('Bericht').fill('Beste, in bijlage alles.');
  await page.getByLabel('Bijlagen').setInputFiles(files);
  await page.getByRole('button', { name: 'Versturen' }).click();
  const err = page.locator('#reply-files-error');
  await err.filter({ hasText: 'U koos 11 bestanden; ten hoogste 10 kunnen mee.' }).waitFor();
  const field = page.getByLabel('Bijlagen');
  assert.equal(await field.getAttribute('aria-invalid'), 'true');
  assert.match(await field.getAttribute('aria-describedby'), /reply-files-error/);
  await screenshot(page, 'contact-te-veel-bijlagen');
  // Too large together.
  const big = path.join(dir, 'groot.bin');
  fs.writeFileSync(big, Buffer.alloc(800 * 1024, 7));
  await page.getByLabel('Bijlagen').setInputFiles([big]);
  await page.getByRole('button', { name: 'Versturen' }).click();
  await err.filter({ hasText: /De bijlagen zijn samen 800\.0 kB; ten hoogste 700\.0 kB kan mee\./ }).waitFor();
  assert.deepEqual(await axeViolations(page, async (copy) => {
    await settled(copy);
    await copy.getByRole('button', { name: 'Versturen' }).click();
    await copy.locator('#reply-body-error').waitFor();
  }), []);
  assert.equal((await d.api('GET', `/api/v1/contacts/${c.id}/messages`)).doc.items.length, before, 'nothing was sent');
  // Within the limits it goes, base64 read in the browser, byte for byte.
  await page.getByLabel('Bijlagen').setInputFiles(files.slice(0, 2));
  await page.getByRole('button', { name: 'Versturen' }).click();
  await page.getByText('Bericht staat klaar om te versturen.').waitFor();
  const msgs = (await d.api('GET', `/api/v1/contacts/${c.id}/messages`)).doc.items;
  const out = msgs.find((m) => m.direction === 'out' && m.actor === BO.name);
  assert.deepEqual(out.attachments.map((a) => [a.name, a.size]), [['bijlage-0.txt', 9], ['bijlage-1.txt', 9]]);
  assert.equal(out.body, 'Beste, in bijlage alles.');
  await page.context().close();
});

test('marking done updates the status, also live on a colleague\'s page', async () => {
  const c = await emailContact('Afhandelen');
  assert.equal((await d.api('POST', `/api/v1/contacts/${c.id}/escalate`, { department: 'burgerzaken', reason: 'r' })).status, 200);
  const bo = await open(BO, c);
  const agent = await open(AGENT, c);
  // The agent has no task of its own: the contact is closed as a whole.
  assert.match(await agent.locator('#done').textContent(), /Sluit het contact af\./);
  assert.match(await bo.locator('#done').textContent(), /Rondt de taak van burgerzaken af/);
  await bo.getByLabel('Antwoord (wat de burger te horen kreeg)').fill('Uw adres is gewijzigd.');
  await bo.getByRole('button', { name: 'Afhandelen' }).click();
  await bo.locator('#contact-status').filter({ hasText: 'afgesloten' }).waitFor();
  await agent.locator('#contact-status').filter({ hasText: 'afgesloten' }).waitFor({ timeout: 10000 });
  await agent.locator('#contact-answer').filter({ hasText: 'Uw adres is gewijzigd.' }).waitFor();
  assert.equal(await agent.locator('#done').count(), 0, 'nothing left to mark done');
  await screenshot(agent, 'contact-afgesloten-live');
  const full = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.equal(full.doc.status, 'closed');
  assert.equal(full.doc.answer, 'Uw adres is gewijzigd.');
  assert.equal(full.doc.tasks[0].done_by, BO.name);
  // An agent resolves an open contact from the same place.
  const open1 = await emailContact('Meteen oplossen');
  await agent.goto(d.url(`/contact.html?id=${open1.id}`));
  await settled(agent);
  await agent.getByRole('button', { name: 'Afhandelen' }).click();
  await agent.locator('#contact-status').filter({ hasText: 'opgelost' }).waitFor();
  assert.equal((await d.api('GET', `/api/v1/contacts/${open1.id}`)).doc.status, 'resolved');
  assert.deepEqual(bo.pageErrors, []);
  assert.deepEqual(agent.pageErrors, []);
  await bo.context().close();
  await agent.context().close();
});
