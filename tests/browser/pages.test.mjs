// pages.test.mjs: the agent's page against a real loketd with a real session (a user made
// with loketctl signs in through the sign-in page). The back office's page is in
// taken.test.mjs, the contact page in contact.test.mjs, the XSS corpus in xss.test.mjs, axe on
// every page with a real session in workflow.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loketd, launch, newPage, screenshot, signIn } from './fixture.mjs';

let d;
let browser;
const agentToken = null; // the round-1 stand-in's token; the session is real now
const PASSWORD = 'lang genoeg wachtwoord p';

before(async () => {
  d = await new Loketd().start();
  browser = await launch();
  d.user('browser-agent', 'agent', PASSWORD);
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

// A page signed in as user through the sign-in page (a real session; token is not used).
async function pageAs(user) {
  const page = await newPage(browser);
  await signIn(page, d, { name: user.name, password: PASSWORD });
  return page;
}
const AGENT = { name: 'browser-agent', role: 'agent' };

test('the contactcenter page logs a new citizen\'s question and resolves it at the first line', async () => {
  const page = await pageAs(AGENT, agentToken);
  await page.goto(d.url('/contactcenter.html'));
  await page.getByRole('heading', { name: 'Contactcenter', level: 1 }).waitFor();
  assert.equal(await page.locator('header').getByText('Aangemeld als browser-agent').count(), 1);
  await page.getByLabel('Kanaal').selectOption('counter');
  await page.getByRole('button', { name: 'Nieuwe burger' }).click();
  await page.getByLabel('Naam', { exact: true }).fill('An Janssens');
  await page.getByLabel('E-mail', { exact: true }).fill('an.janssens@example.be');
  await page.getByLabel('Product zoeken (naam of trefwoord)').fill('identiteitskaart');
  await page.getByRole('button', { name: /identiteitskaart/i }).first().click();
  await page.getByRole('heading', { name: 'Standaardantwoord' }).waitFor();
  await page.getByLabel('Onderwerp').fill('Nieuwe identiteitskaart');
  await page.getByLabel('Vraag').fill('Wanneer kan ik mijn kaart afhalen?');
  await page.getByLabel('Antwoord', { exact: true }).fill('Na drie weken, met de brief.');
  await screenshot(page, 'contactcenter-ingevuld');
  await page.getByRole('button', { name: 'Oplossen' }).click();
  const notice = page.getByRole('status').filter({ hasText: /Contact \d{4}-\d{6}/ });
  await notice.waitFor();
  const text = await notice.textContent();
  const ref = /\d{4}-\d{6}/.exec(text)[0];
  await screenshot(page, 'contactcenter-opgelost');
  const list = await d.api('GET', '/api/v1/contacts?limit=5');
  const c = list.doc.items.find((x) => x.reference === ref);
  assert.ok(c, `contact ${ref} is in the register`);
  // The routing rules may send an identity card to burgerzaken; the page says which it was.
  if (/opgelost/.test(text)) assert.equal(c.status, 'resolved');
  else assert.match(text, new RegExp(c.status === 'escalated' ? 'doorverwezen' : c.status));
  assert.equal(c.channel, 'counter');
  assert.equal(c.subject, 'Nieuwe identiteitskaart');
  const full = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.equal(full.doc.party.name, 'An Janssens');
  // My recent contacts lists it.
  await page.locator('#recent').getByText(ref).waitFor();
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('an invalid identifier is named beside its field', async () => {
  const page = await pageAs(AGENT, agentToken);
  await page.goto(d.url('/contactcenter.html'));
  await page.getByRole('button', { name: 'Nieuwe burger' }).click();
  await page.getByLabel('Rijksregisternummer').fill('12345678901');
  await page.getByLabel('Onderwerp').fill('Vraag met fout rijksregisternummer');
  await page.getByRole('button', { name: 'Oplossen' }).click();
  const field = page.getByLabel('Rijksregisternummer');
  await page.locator('#party-rrn-error').waitFor();
  assert.equal(await field.getAttribute('aria-invalid'), 'true');
  assert.equal(await field.getAttribute('aria-describedby'), 'party-rrn-error');
  assert.match(await page.locator('#party-rrn-error').textContent(), /party\.rrn/);
  await screenshot(page, 'contactcenter-fout-rrn');
  await page.context().close();
});
