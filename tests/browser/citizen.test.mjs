// citizen.test.mjs: the citizen page (burger.html?id=N) end to end with real users against a
// real loketd: identifiers changed on purpose (Wijzigen, the form, the confirm step, then
// PATCH), a 422 and a 409 shown beside their field with the input kept; the timeline across
// channels, newest first, each linking to its contact; possible duplicates, which an agent
// sees but may not merge (and is told why) and the back office merges after a confirm, the
// page then showing the merged citizen. axe-core on every state; screenshots kept.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { Loketd, launch, newPage, screenshot, signIn } from './fixture.mjs';

const require = createRequire(import.meta.url);
let d;
let browser;
const AGENT = { name: 'agent-citizen', password: 'lang genoeg wachtwoord 3' };
const BO = { name: 'bo-citizen', password: 'lang genoeg wachtwoord 4' };

before(async () => {
  d = await new Loketd().start();
  browser = await launch();
  d.user(AGENT.name, 'agent', AGENT.password);
  d.user(BO.name, 'backoffice', BO.password, { departments: ['burgerzaken'] });
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

async function axe(page) {
  if (!(await page.evaluate(() => !!window.axe))) {
    await page.evaluate(fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));
  }
  const result = await page.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag',
    values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }));
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

async function contact(body) {
  const r = await d.api('POST', '/api/v1/contacts', body);
  assert.equal(r.status, 201, JSON.stringify(r.doc));
  return r.doc;
}

test('identifiers are changed only through the confirm step; a 422 and a 409 show beside their field', async () => {
  const first = await contact({ channel: 'phone', subject: 'Vraag over kinderopvang', department: 'burgerzaken',
    party: { name: 'Sofie Maes', email: 'sofie.maes@example.be' } });
  const second = await contact({ channel: 'email', subject: 'Antwoord op de brief', department: 'burgerzaken',
    party: { email: 'sofie.maes@example.be' } });
  await contact({ channel: 'web', subject: 'Iemand anders', party: { name: 'Tom Bos', email: 'tom.bos@example.be' } });
  const id = first.party_id;
  const page = await newPage(browser);
  await signIn(page, d, AGENT);
  await page.goto(d.url(`/burger.html?id=${id}`));
  await page.getByRole('heading', { name: 'Burger: Sofie Maes', level: 1 }).waitFor();

  // Timeline: every channel, newest first, channel as text, each a link to its contact.
  const items = page.locator('#timeline li');
  await items.nth(1).waitFor();
  assert.equal(await items.count(), 2);
  assert.equal(await items.nth(0).getByRole('link').textContent(), second.reference);
  assert.equal(await items.nth(0).getByRole('link').getAttribute('href'), `/contact.html?id=${second.id}`);
  await items.nth(0).getByText('e-mail', { exact: true }).waitFor();
  await items.nth(1).getByText('telefoon', { exact: true }).waitFor();
  await screenshot(page, 'burger');
  assert.deepEqual(await axe(page), [], 'axe on the citizen page');

  // A phone that is no phone: 422, named beside its field after the confirm step, input kept.
  await page.getByRole('button', { name: 'Wijzigen', exact: true }).click();
  await page.getByLabel('Telefoon toevoegen').fill('12ab');
  await page.getByRole('button', { name: 'Volgende: nakijken' }).click();
  const save = page.getByRole('button', { name: 'Opslaan' });
  assert.equal(await save.isDisabled(), true, 'nothing is saved before the citizen confirmed');
  await page.getByLabel('De burger heeft dit bevestigd').check();
  await save.click();
  await page.locator('#add-phone-error').waitFor();
  assert.equal(await page.getByLabel('Telefoon toevoegen').inputValue(), '12ab');
  assert.equal(await page.getByLabel('Telefoon toevoegen').getAttribute('aria-invalid'), 'true');
  assert.match(await page.locator('#add-phone-error').textContent(), /add\.phone/);
  await screenshot(page, 'burger-fout-telefoon');
  assert.deepEqual(await axe(page), [], 'axe with the 422 shown');

  // An email another citizen holds: 409 beside the email field.
  await page.getByLabel('Telefoon toevoegen').fill('');
  await page.getByLabel('E-mail toevoegen').fill('tom.bos@example.be');
  await page.getByRole('button', { name: 'Volgende: nakijken' }).click();
  await page.getByLabel('De burger heeft dit bevestigd').check();
  await page.getByRole('button', { name: 'Opslaan' }).click();
  await page.locator('#add-email-error').filter({ hasText: /belongs to party/ }).waitFor();
  assert.equal(await page.getByLabel('E-mail toevoegen').inputValue(), 'tom.bos@example.be');

  // The real change: a phone typed in a local layout, an RRN, the name; reviewed, confirmed.
  await page.getByLabel('E-mail toevoegen').fill('');
  await page.getByLabel('Naam', { exact: true }).fill('Sofie Maes-Peeters');
  await page.getByLabel('Telefoon toevoegen').fill('0478 12 34 56');
  await page.getByLabel('Rijksregisternummer toevoegen').fill('85.07.30-033.28');
  await page.getByRole('button', { name: 'Volgende: nakijken' }).click();
  await page.locator('#review-list').getByText('0478 12 34 56').waitFor();
  await screenshot(page, 'burger-wijziging-nakijken');
  assert.deepEqual(await axe(page), [], 'axe on the confirm step');
  await page.getByLabel('De burger heeft dit bevestigd').check();
  await page.getByRole('button', { name: 'Opslaan' }).click();
  await page.getByRole('status').filter({ hasText: 'De gegevens zijn gewijzigd.' }).waitFor();
  await page.locator('#id-phone').filter({ hasText: '+32478123456' }).waitFor();
  assert.equal(await page.locator('#id-rrn').textContent(), '85073003328');
  await page.getByRole('heading', { name: 'Burger: Sofie Maes-Peeters', level: 1 }).waitFor();
  await screenshot(page, 'burger-gewijzigd');
  const p = await d.api('GET', `/api/v1/parties/${id}`);
  assert.equal(p.doc.name, 'Sofie Maes-Peeters');
  assert.deepEqual(p.doc.phones, ['+32478123456']);
  assert.equal(p.doc.rrn, '85073003328');
  assert.deepEqual(p.doc.emails, ['sofie.maes@example.be']);
  // The audit row (party.update) has no read API; tests/integration checks it.

  // Removing: the email is taken away after the same confirm step.
  await page.getByRole('button', { name: 'Wijzigen', exact: true }).click();
  await page.getByLabel('Telefoon verwijderen').selectOption('+32478123456');
  await page.getByRole('button', { name: 'Volgende: nakijken' }).click();
  await page.getByLabel('De burger heeft dit bevestigd').check();
  await page.getByRole('button', { name: 'Opslaan' }).click();
  await page.locator('#id-phone').filter({ hasText: '—' }).waitFor();
  assert.deepEqual((await d.api('GET', `/api/v1/parties/${id}`)).doc.phones, []);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('duplicates: the agent sees them and is told why it may not merge; the back office merges after a confirm', async () => {
  const older = await contact({ channel: 'counter', subject: 'Afspraak reispas', department: 'burgerzaken',
    party: { name: 'Marie Dubois', email: 'marie.dubois@example.be' } });
  const newer = await contact({ channel: 'phone', subject: 'Vraag over huwelijk', department: 'burgerzaken',
    party: { name: 'MARIE  DUBOIS', phone: '0479 11 22 33' } });
  assert.notEqual(older.party_id, newer.party_id);

  const agent = await newPage(browser);
  await signIn(agent, d, AGENT);
  await agent.goto(d.url(`/burger.html?id=${newer.party_id}`));
  const dups = agent.locator('#duplicates');
  await dups.getByRole('link', { name: 'Marie Dubois' }).waitFor();
  assert.equal(await agent.getByRole('button', { name: /Samenvoegen/ }).count(), 0, 'no merge for an agent');
  await agent.getByText('Samenvoegen kan alleen de backoffice of een beheerder').waitFor();
  await screenshot(agent, 'burger-dubbels-agent');
  assert.deepEqual(await axe(agent), [], 'axe on duplicates for an agent');
  await agent.context().close();

  const bo = await newPage(browser);
  await signIn(bo, d, BO);
  await bo.goto(d.url(`/burger.html?id=${newer.party_id}`));
  await bo.getByRole('heading', { name: 'Burger: MARIE  DUBOIS', level: 1 }).waitFor();
  await bo.getByRole('button', { name: 'Samenvoegen met Marie Dubois' }).click();
  await bo.getByText('Samenvoegen bevestigen: MARIE  DUBOIS en Marie Dubois zijn dezelfde persoon').waitFor();
  await screenshot(bo, 'burger-samenvoegen-bevestigen');
  assert.deepEqual(await axe(bo), [], 'axe on the merge confirm');
  // Nothing merged before the confirm.
  assert.equal((await d.api('GET', `/api/v1/parties/${newer.party_id}`)).status, 200);
  await bo.getByRole('button', { name: 'Ja, samenvoegen' }).click();
  await bo.getByRole('status').filter({ hasText: 'Samengevoegd met Marie Dubois: 1 contact(en) overgenomen.' }).waitFor();
  // The older citizen survives: the page shows it, with both contacts and both identifiers.
  await bo.waitForURL((u) => u.searchParams.get('id') === String(older.party_id));
  await bo.locator('#timeline').getByRole('link', { name: newer.reference }).waitFor();
  await bo.locator('#timeline').getByRole('link', { name: older.reference }).waitFor();
  await bo.locator('#id-phone').filter({ hasText: '+32479112233' }).waitFor();
  await bo.locator('#id-email').filter({ hasText: 'marie.dubois@example.be' }).waitFor();
  await bo.getByText('Geen mogelijke dubbels gevonden.').waitFor();
  await screenshot(bo, 'burger-samengevoegd');
  assert.deepEqual(await axe(bo), [], 'axe after the merge');
  const survivor = await d.api('GET', `/api/v1/parties/${older.party_id}`);
  assert.deepEqual(survivor.doc.phones, ['+32479112233']);
  assert.equal((await d.api('GET', `/api/v1/parties/${newer.party_id}`)).status, 404, 'the other party is merged');
  const moved = await d.api('GET', `/api/v1/contacts/${newer.id}`);
  assert.equal(moved.doc.party_id, older.party_id);
  assert.deepEqual(bo.pageErrors, []);
  await bo.context().close();
});
