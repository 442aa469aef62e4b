// agent.test.mjs: the agent's page (contactcenter) and the search page end to end, with a
// real user and session against a real loketd: a contact logged and resolved with the
// keyboard alone (citizen found by a phone typed in another layout, product found by a
// keyword with its standard answer inserted), a referral with the due time shown and stored,
// an internal note, my recent contacts kept live, an invalid RRN named beside its field with
// the input kept, and the search box finding a contact and a citizen ("Peetërs" finds
// "Peeters"). axe-core runs on every state; each state is kept as a screenshot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Loketd, launch, newPage, screenshot, signIn } from './fixture.mjs';

const require = createRequire(import.meta.url);
let d;
let browser;
const AGENT = { name: 'agent-an', password: 'lang genoeg wachtwoord 1' };
const AGENT2 = { name: 'agent-bert', password: 'lang genoeg wachtwoord 2' };

before(async () => {
  d = await new Loketd({ ownAnswers: true }).start();
  browser = await launch();
  d.user(AGENT.name, 'agent', AGENT.password);
  d.user(AGENT2.name, 'agent', AGENT2.password);
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

// axe-core on the page as it is now (after the workflow), under its real policy: the script
// is evaluated through the DevTools protocol, which the page's CSP does not govern.
async function axe(page) {
  if (!(await page.evaluate(() => !!window.axe))) {
    await page.evaluate(fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));
  }
  const result = await page.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag',
    values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

// Presses Tab until the focused element matches; keyboard only, as a person would.
async function tabTo(page, matches, max = 60) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(matches)) return;
  }
  throw new Error(`Tab never reached ${matches}`);
}

const dueText = (iso) => new Date(iso).toLocaleString('nl-BE',
  { timeZone: 'Europe/Brussels', dateStyle: 'full', timeStyle: 'short' });

test('the whole log-and-resolve with the keyboard alone: citizen found by phone in another layout, product by keyword with its standard answer', async () => {
  const party = await d.api('POST', '/api/v1/contacts', { channel: 'phone', subject: 'Eerste oproep',
    party: { name: 'Jan Peeters', phone: '+32471123456' } });
  assert.equal(party.status, 201, JSON.stringify(party.doc));
  const answerText = 'De ophaaldagen staan op de afvalkalender: www.voorbeeld.be/afval.';
  const put = await d.api('PUT', '/api/v1/catalogue/afvalkalender/answer', { text: answerText });
  assert.equal(put.status, 200, JSON.stringify(put.doc));

  const page = await newPage(browser);
  await signIn(page, d, AGENT);
  await page.getByRole('heading', { name: 'Contactcenter', level: 1 }).waitFor();
  await page.locator('#recent, #recent-h').first().waitFor();

  await tabTo(page, () => document.activeElement.id === 'channel');
  await page.keyboard.press('b'); // "balie"
  assert.equal(await page.getByLabel('Kanaal').inputValue(), 'counter');
  await tabTo(page, () => document.activeElement.id === 'citizen-q');
  await page.keyboard.type('0471/12.34.56');
  await page.keyboard.press('Enter');
  await page.locator('#citizen-count').filter({ hasText: '1 gevonden' }).waitFor();
  await tabTo(page, () => document.activeElement.getAttribute('aria-label') === 'Kiezen: Jan Peeters');
  await page.keyboard.press('Enter');
  const chosen = page.locator('#chosen-citizen');
  await chosen.waitFor();
  assert.equal(await chosen.getByRole('link', { name: /Jan Peeters/ }).getAttribute('href'),
    `/burger.html?id=${party.doc.party_id}`, 'the picked citizen links to the citizen page');
  // Choosing moves on to the product; a keyword finds it in the combobox.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'product-q');
  await page.keyboard.type('ophaaldag');
  const combo = page.getByRole('combobox', { name: 'Product zoeken (naam of trefwoord)' });
  assert.equal(await combo.getAttribute('aria-expanded'), 'true');
  await page.getByRole('option', { name: /Afvalkalender en ophaaldagen/ }).waitFor();
  await screenshot(page, 'agent-product-combobox');
  assert.deepEqual(await axe(page), [], 'axe with the listbox open');
  await page.keyboard.press('Enter');
  assert.equal(await combo.getAttribute('aria-expanded'), 'false');
  await page.locator('#standard-answer').filter({ hasText: answerText }).waitFor();
  await tabTo(page, () => document.activeElement.textContent.trim() === 'Standaardantwoord invoegen');
  await page.keyboard.press('Enter');
  assert.equal(await page.getByLabel('Antwoord', { exact: true }).inputValue(), answerText);
  await tabTo(page, () => document.activeElement.id === 'subject');
  await page.keyboard.type('Wanneer wordt het afval opgehaald?');
  await page.keyboard.press('Tab');
  await page.keyboard.type('Vraag naar de ophaaldag van het restafval.');
  await screenshot(page, 'agent-ingevuld-toetsenbord');
  assert.deepEqual(await axe(page), [], 'axe on the filled form');
  await tabTo(page, () => document.activeElement.textContent.trim() === 'Oplossen');
  await page.keyboard.press('Enter');

  const notice = page.locator('#done-notice');
  await notice.filter({ hasText: /Contact \d{4}-\d{6} is opgelost\./ }).waitFor();
  const ref = /\d{4}-\d{6}/.exec(await notice.textContent())[0];
  await page.locator('#recent').getByText(ref).waitFor();
  await screenshot(page, 'agent-opgelost');
  assert.deepEqual(await axe(page), [], 'axe after resolving');

  const list = await d.api('GET', '/api/v1/contacts?limit=10');
  const c = list.doc.items.find((x) => x.reference === ref);
  assert.ok(c, `contact ${ref} is in the register`);
  assert.equal(c.status, 'resolved');
  assert.equal(c.line, 1, 'resolved at the first line');
  assert.equal(c.channel, 'counter');
  assert.equal(c.product, 'afvalkalender');
  assert.equal(c.party_id, party.doc.party_id, 'the contact is the found citizen\'s');
  assert.equal(c.created_by, AGENT.name);
  const full = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.equal(full.doc.answer, answerText);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('the agent refers a contact: the due time is shown before confirming and is the task\'s; a note is added; my recent contacts update live', async () => {
  const page = await newPage(browser);
  await signIn(page, d, AGENT2);
  // A second window of the same agent: its list follows the stream, without a reload.
  const other = await newPage(browser);
  await signIn(other, d, AGENT2);
  await other.getByRole('heading', { name: 'Mijn recente contacten' }).waitFor();

  await page.getByLabel('Kanaal').selectOption('phone');
  await page.getByRole('button', { name: 'Nieuwe burger' }).click();
  await page.getByLabel('Naam', { exact: true }).fill('Els Wouters');
  await page.getByLabel('E-mail', { exact: true }).fill('els.wouters@example.be');
  await page.getByLabel('Onderwerp').fill('Bouwaanvraag carport');
  await page.getByLabel('Vraag').fill('Heb ik een vergunning nodig voor een carport?');
  await page.getByRole('button', { name: 'Doorverwijzen' }).click();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'esc-department');
  await page.getByLabel('Dienst').selectOption('omgeving');
  await page.getByLabel('Reden').fill('inplanting nakijken');
  const due = page.locator('#esc-due').filter({ hasText: /Uiterlijk beantwoord op/ });
  await due.waitFor();
  const shownAt = await due.locator('time').getAttribute('datetime');
  const shownText = (await due.locator('time').textContent()).trim();
  assert.equal(shownText, dueText(shownAt), 'the due time is shown in nl-BE, Brussels time');
  await screenshot(page, 'agent-doorverwijzen-termijn');
  assert.deepEqual(await axe(page), [], 'axe with the due time shown');
  await page.getByRole('button', { name: 'Doorverwijzing bevestigen' }).click();
  const notice = page.getByRole('status').filter({ hasText: /doorverwezen naar omgeving/ });
  await notice.waitFor();
  const ref = /\d{4}-\d{6}/.exec(await notice.textContent())[0];

  const list = await d.api('GET', '/api/v1/contacts?limit=10');
  const c = list.doc.items.find((x) => x.reference === ref);
  const full = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.equal(full.doc.status, 'escalated');
  assert.equal(full.doc.department, 'omgeving');
  assert.equal(full.doc.tasks.length, 1);
  assert.equal(Date.parse(full.doc.tasks[0].due_at), Date.parse(shownAt), 'the task is due when the page said');
  assert.equal(dueText(full.doc.tasks[0].due_at), shownText);
  assert.equal(full.doc.tasks[0].reason, 'inplanting nakijken');

  await page.getByLabel('Interne notitie').fill('Burger stuurt nog een plan door.');
  await page.getByRole('button', { name: 'Notitie toevoegen' }).click();
  await page.getByText('Notitie toegevoegd.').waitFor();
  const noted = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.ok(noted.doc.history.some((h) => h.kind === 'note' && h.text === 'Burger stuurt nog een plan door.'
    && h.actor === AGENT2.name), JSON.stringify(noted.doc.history));
  await screenshot(page, 'agent-notitie');
  assert.deepEqual(await axe(page), [], 'axe after the note');

  // Live: the other window lists it; a change by someone else (the back office closes it)
  // shows there too.
  const row = other.locator('#recent li', { hasText: ref });
  await row.waitFor({ timeout: 10000 });
  await row.getByText('doorverwezen').waitFor();
  const closed = await d.api('POST', `/api/v1/contacts/${c.id}/close`, { answer: 'Geen vergunning nodig.' });
  assert.equal(closed.status, 200, JSON.stringify(closed.doc));
  await row.getByText('afgesloten').waitFor({ timeout: 10000 });
  await screenshot(other, 'agent-recent-live');
  assert.deepEqual(page.pageErrors, []);
  assert.deepEqual(other.pageErrors, []);
  await page.context().close();
  await other.context().close();
});

test('an invalid RRN is named beside its field, summarised, and the input is kept', async () => {
  const page = await newPage(browser);
  await signIn(page, d, AGENT);
  await page.getByRole('button', { name: 'Nieuwe burger' }).click();
  await page.getByLabel('Naam', { exact: true }).fill('Karel Fout');
  await page.getByLabel('Rijksregisternummer').fill('12345678901');
  await page.getByLabel('Onderwerp').fill('Vraag met fout rijksregisternummer');
  await page.getByRole('button', { name: 'Oplossen' }).click();
  const field = page.getByLabel('Rijksregisternummer');
  await page.locator('#party-rrn-error').waitFor();
  assert.equal(await field.getAttribute('aria-invalid'), 'true');
  assert.match(await field.getAttribute('aria-describedby'), /\bparty-rrn-error\b/);
  assert.match(await page.locator('#party-rrn-error').textContent(), /party\.rrn/);
  assert.equal(await field.inputValue(), '12345678901', 'the input is kept');
  assert.equal(await page.getByLabel('Naam', { exact: true }).inputValue(), 'Karel Fout');
  assert.equal(await page.getByLabel('Onderwerp').inputValue(), 'Vraag met fout rijksregisternummer');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'party-rrn', 'focus goes to the field');
  const summary = page.getByRole('alert').filter({ hasText: 'Controleer deze velden' });
  await summary.getByRole('link', { name: 'Rijksregisternummer' }).waitFor();
  await screenshot(page, 'agent-fout-rrn');
  assert.deepEqual(await axe(page), [], 'axe with the error shown');
  const list = await d.api('GET', '/api/v1/contacts?limit=50');
  assert.equal(list.doc.items.filter((x) => x.subject === 'Vraag met fout rijksregisternummer').length, 0,
    'nothing was stored');
  // Corrected, it goes through.
  await field.fill('85073003328');
  await page.getByRole('button', { name: 'Oplossen' }).click();
  await page.locator('#done-notice').filter({ hasText: 'is opgelost' }).waitFor();
  assert.equal(await page.locator('#party-rrn-error').count(), 0);
  await page.context().close();
});

test('the header\'s search box finds a contact and a citizen, accent-blind, each linking to its page', async () => {
  const made = await d.api('POST', '/api/v1/contacts', { channel: 'email', subject: 'Parkeerkaart Stationsstraat',
    body: 'Mijn bewonerskaart is verlopen.', party: { name: 'Mia Peeters', email: 'mia.peeters@example.be' } });
  assert.equal(made.status, 201, JSON.stringify(made.doc));
  const page = await newPage(browser);
  await signIn(page, d, AGENT);
  await page.getByLabel('Zoeken in het register').fill('Peetërs');
  await page.getByLabel('Zoeken in het register').press('Enter');
  await page.waitForURL((u) => u.pathname === '/zoeken.html');
  assert.equal(new URL(page.url()).searchParams.get('q'), 'Peetërs');
  await page.getByRole('heading', { name: 'Zoeken', level: 1 }).waitFor();
  const parties = page.locator('#zk-parties');
  await parties.getByRole('link', { name: 'Mia Peeters' }).waitFor();
  assert.equal(await page.getByLabel('Zoekterm').inputValue(), 'Peetërs');
  await screenshot(page, 'zoeken-peeters');
  assert.deepEqual(await axe(page), [], 'axe on the search results');

  // A word of the contact finds it; its reference links to the contact page.
  await page.getByLabel('Zoekterm').fill('bewonerskaart');
  await page.getByLabel('Zoekterm').press('Enter');
  const link = page.locator('#zk-contacts').getByRole('link', { name: made.doc.reference });
  await link.waitFor();
  assert.equal(await link.getAttribute('href'), `/contact.html?id=${made.doc.id}`);
  await screenshot(page, 'zoeken-contact');
  await link.click();
  await page.getByRole('heading', { name: `Contact ${made.doc.reference}`, level: 1 }).waitFor();

  // A citizen from the results opens the citizen page.
  await page.goto(d.url('/zoeken.html?q=mia.peeters%40example.be'));
  await page.locator('#zk-parties').getByRole('link', { name: 'Mia Peeters' }).click();
  await page.getByRole('heading', { name: 'Burger: Mia Peeters', level: 1 }).waitFor();
  assert.equal(new URL(page.url()).searchParams.get('id'), String(made.doc.party_id));

  // An RRN that is no RRN: the 422 is named beside the field.
  await page.goto(d.url('/zoeken.html?q=12345678901'));
  await page.locator('#zk-q-error').waitFor();
  assert.equal(await page.getByLabel('Zoekterm').getAttribute('aria-invalid'), 'true');
  assert.deepEqual(await axe(page), [], 'axe with the search error');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('the agent\'s and the search page speak English through the picker, and keep the choice', async () => {
  const page = await newPage(browser);
  await signIn(page, d, AGENT);
  await page.getByLabel('Taal').selectOption('en');
  await page.getByRole('heading', { name: 'Contact centre', level: 1 }).waitFor();
  await page.getByLabel('Channel').waitFor();
  await page.getByRole('combobox', { name: 'Find a product (name or keyword)' }).waitFor();
  await page.getByRole('button', { name: 'Refer' }).click();
  await page.getByLabel('Department').selectOption('omgeving');
  await page.locator('#esc-due').filter({ hasText: /To be answered by/ }).waitFor();
  await screenshot(page, 'agent-en');
  assert.deepEqual(await axe(page), [], 'axe in English');
  await page.getByLabel('Search the register').fill('peeters');
  await page.getByLabel('Search the register').press('Enter');
  await page.getByRole('heading', { name: 'Search', level: 1 }).waitFor();
  await page.getByRole('heading', { name: 'Citizens' }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  await page.context().close();
});
