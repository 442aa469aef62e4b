// beheer.test.mjs: the admin's page (Beheer, issue 17 point 1) in Chromium against a real
// loketd: a user added in the page signs in with the password shown once; a token revoked in
// the page is refused by the API; a standard answer edited in the page is served by the
// catalogue; the audit log filtered by a staff member lists their contact reads, with "Meer"
// paging on the cursor; other roles are refused and see no data; the add-user dialog works
// with the keyboard alone; axe-core at 1280 and 320 px; a screenshot of each state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loketd, launch, newPage, screenshot, axeViolations, signIn, settled, until } from './fixture.mjs';

let d;
let browser;
const ADMIN = { name: 'beheerder-els', password: 'lang genoeg wachtwoord e' };
const AGENT = { name: 'agent-jan', password: 'lang genoeg wachtwoord j' };

before(async () => {
  d = await new Loketd({ ownAnswers: true }).start();
  browser = await launch();
  d.user(ADMIN.name, 'admin', ADMIN.password);
  d.user(AGENT.name, 'agent', AGENT.password);
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

// The admin signed in on beheer.html, everything loaded.
async function openBeheer(viewport) {
  const page = await newPage(browser, viewport ? { viewport } : {});
  await signIn(page, d, ADMIN);
  await page.goto(d.url('/beheer.html'));
  await settled(page);
  await page.locator('#users-table').waitFor();
  return page;
}

// Closes the pages' contexts, after checking that none of them threw or broke the policy.
async function done(...pages) {
  for (const p of pages) {
    assert.deepEqual(p.pageErrors, [], 'no script error');
    assert.deepEqual(p.consoleLines.filter((l) => /Content Security Policy|Refused to/.test(l)), [], 'no policy violation');
  }
  await Promise.all(pages.map((p) => p.context().close()));
}

test('an agent opening beheer.html sees the refusal and no data, and no link to it', async () => {
  const page = await newPage(browser);
  const asked = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/api/v1/')) asked.push(new URL(r.url()).pathname); });
  await signIn(page, d, AGENT);
  assert.equal(await page.getByRole('link', { name: 'Beheer' }).count(), 0, 'the nav hides Beheer from an agent');
  asked.length = 0;
  await page.goto(d.url('/beheer.html'));
  await settled(page);
  await page.getByRole('heading', { name: 'Beheer', level: 1 }).waitFor();
  assert.match(await page.locator('#admin-only').textContent(), /alleen voor beheerders/);
  assert.equal(await page.locator('table').count(), 0, 'no list is shown');
  assert.equal(await page.getByText(ADMIN.name).count(), 0, 'no user name from the register');
  assert.deepEqual(asked.filter((p) => p !== '/api/v1/session' && p !== '/api/v1/events'), [],
    'the page asks the API for nothing it would refuse');
  await screenshot(page, 'beheer-agent-geweigerd');
  assert.deepEqual(await axeViolations(page), []);
  await done(page);
});

test('the admin adds a user in the page, sees the password once, and that user signs in', async () => {
  const page = await openBeheer();
  assert.equal(await page.getByRole('link', { name: 'Beheer' }).getAttribute('aria-current'), 'page');
  await page.getByRole('button', { name: 'Gebruiker toevoegen' }).click();
  const dialog = page.getByRole('dialog', { name: 'Gebruiker toevoegen' });
  await dialog.waitFor();
  // An error from the API lands beside its field.
  await dialog.getByLabel('Gebruikersnaam').fill('bo-nieuw');
  await dialog.getByLabel('Rol').selectOption('backoffice');
  await dialog.getByLabel('Diensten').fill('geen-dienst');
  await dialog.getByRole('button', { name: 'Toevoegen' }).click();
  await page.locator('#au-departments-error').waitFor();
  assert.match(await page.locator('#au-departments-error').textContent(), /geen-dienst: no such department/);
  assert.equal(await dialog.getByLabel('Diensten').getAttribute('aria-invalid'), 'true');
  await screenshot(page, 'beheer-gebruiker-fout');
  await dialog.getByLabel('Diensten').fill('burgerzaken');
  await dialog.getByRole('button', { name: 'Toevoegen' }).click();
  const shown = page.getByRole('dialog', { name: 'Gebruiker bo-nieuw toegevoegd' });
  await shown.waitFor();
  const password = (await shown.locator('code.secret').textContent()).trim();
  assert.ok(password.length >= 20, `a generated password is shown: ${password.length} characters`);
  await screenshot(page, 'beheer-wachtwoord-eenmalig');
  await shown.getByRole('button', { name: 'Sluiten' }).click();
  await shown.waitFor({ state: 'detached' });
  assert.equal(await page.getByText(password).count(), 0, 'once closed the password is gone from the page');
  const row = page.locator('#user-bo-nieuw');
  await row.waitFor();
  assert.match(await row.textContent(), /backoffice.*burgerzaken.*actief/);
  const listed = await d.api('GET', '/api/v1/users');
  assert.ok(listed.doc.items.some((u) => u.login === 'bo-nieuw' && u.role === 'backoffice'));
  // The new user signs in, in a browser of their own, and lands on their page.
  const other = await newPage(browser);
  await signIn(other, d, { name: 'bo-nieuw', password });
  assert.equal(new URL(other.url()).pathname, '/taken.html');
  await other.getByRole('heading', { name: 'Mijn taken', level: 1 }).waitFor();
  await screenshot(other, 'beheer-nieuwe-gebruiker-aangemeld');
  // Disabled in the page, they are signed out and cannot sign in again.
  await row.getByRole('button', { name: 'bo-nieuw uitschakelen' }).click();
  await until(page, () => /uitgeschakeld/.test(document.querySelector('#user-bo-nieuw .state').textContent));
  const again = await fetch(d.url('/api/v1/session'), { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'bo-nieuw', password }) });
  assert.equal(again.status, 401, 'a disabled user cannot sign in');
  // Enabled again and the password reset: the new one is shown once and works.
  await row.getByRole('button', { name: 'bo-nieuw inschakelen' }).click();
  await until(page, () => /actief/.test(document.querySelector('#user-bo-nieuw .state').textContent));
  await row.getByRole('button', { name: 'Wachtwoord van bo-nieuw resetten' }).click();
  const reset = page.getByRole('dialog', { name: 'Nieuw wachtwoord voor bo-nieuw' });
  await reset.waitFor();
  const fresh = (await reset.locator('code.secret').textContent()).trim();
  assert.notEqual(fresh, password);
  await reset.getByRole('button', { name: 'Sluiten' }).click();
  const third = await newPage(browser);
  await signIn(third, d, { name: 'bo-nieuw', password: fresh });
  assert.equal(new URL(third.url()).pathname, '/taken.html');
  // Role and departments changed in the page.
  await row.getByRole('button', { name: 'Rol en diensten van bo-nieuw wijzigen' }).click();
  await page.locator('#user-bo-nieuw-role').selectOption('agent');
  await page.locator('#user-bo-nieuw-departments').fill('');
  await page.locator('#user-bo-nieuw-form').getByRole('button', { name: 'Opslaan' }).click();
  await until(page, () => /medewerker eerste lijn/.test(document.querySelector('#user-bo-nieuw').textContent));
  const after = await d.api('GET', '/api/v1/users');
  assert.equal(after.doc.items.find((u) => u.login === 'bo-nieuw').role, 'agent');
  await screenshot(page, 'beheer-gebruikers');
  await done(page, other, third);
});

test('the add-user dialog is completed and closed with the keyboard alone', async () => {
  const page = await openBeheer();
  const focused = () => page.evaluate(() => (document.activeElement.textContent || document.activeElement.id || '').trim());
  for (let i = 0; i < 40 && (await focused()) !== 'Gebruiker toevoegen'; i += 1) await page.keyboard.press('Tab');
  assert.equal(await focused(), 'Gebruiker toevoegen');
  // Escape closes the dialog without adding anyone.
  await page.keyboard.press('Enter');
  await page.getByRole('dialog', { name: 'Gebruiker toevoegen' }).waitFor();
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  assert.equal(await focused(), 'Gebruiker toevoegen', 'the focus returns to the button');
  await page.keyboard.press('Enter');
  await page.getByRole('dialog', { name: 'Gebruiker toevoegen' }).waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'au-login', 'the focus starts in the dialog');
  await page.keyboard.type('agent-toetsen');
  await page.keyboard.press('Tab'); // role: agent, as chosen
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'au-departments');
  await page.keyboard.press('Enter'); // submits the form
  const shown = page.getByRole('dialog', { name: 'Gebruiker agent-toetsen toegevoegd' });
  await shown.waitFor();
  assert.equal(await focused(), 'Sluiten', 'the close button has the focus');
  await screenshot(page, 'beheer-dialoog-toetsenbord');
  await page.keyboard.press('Enter');
  await shown.waitFor({ state: 'detached' });
  assert.equal(await focused(), 'Gebruiker toevoegen');
  await page.locator('#user-agent-toetsen').waitFor();
  const listed = await d.api('GET', '/api/v1/users');
  assert.ok(listed.doc.items.some((u) => u.login === 'agent-toetsen' && u.role === 'agent'));
  await done(page);
});

test('a token made in the page is shown once; revoked in the page it gets 401 from the API', async () => {
  const page = await openBeheer();
  await page.getByLabel('Naam van het token').fill('koppeling-test');
  await page.locator('#tk-role').selectOption('agent');
  await page.getByRole('button', { name: 'Token aanmaken' }).last().click();
  const shown = page.getByRole('dialog', { name: 'Token koppeling-test aangemaakt' });
  await shown.waitFor();
  const token = (await shown.locator('code.secret').textContent()).trim();
  assert.match(token, /^lkt_/);
  assert.equal((await d.api('GET', '/api/v1/catalogue', undefined, token)).status, 200, 'the new token works');
  await shown.getByRole('button', { name: 'Sluiten' }).click();
  const made = d.token('te-intrekken', 'agent');
  assert.equal((await d.api('GET', '/api/v1/catalogue', undefined, made)).status, 200);
  await page.reload();
  await settled(page);
  await page.locator('#tokens-table').waitFor();
  await page.getByRole('button', { name: 'Token te-intrekken intrekken' }).click();
  const confirm = page.getByRole('dialog', { name: 'Token te-intrekken intrekken?' });
  await confirm.waitFor();
  await screenshot(page, 'beheer-token-intrekken');
  // Cancel first: nothing happens.
  await confirm.getByRole('button', { name: 'Annuleren' }).click();
  await confirm.waitFor({ state: 'detached' });
  assert.equal((await d.api('GET', '/api/v1/catalogue', undefined, made)).status, 200, 'cancelled: still valid');
  await page.getByRole('button', { name: 'Token te-intrekken intrekken' }).click();
  await confirm.getByRole('button', { name: 'Intrekken' }).click();
  await confirm.waitFor({ state: 'detached' });
  await page.getByText('Token te-intrekken ingetrokken.').waitFor();
  assert.equal((await d.api('GET', '/api/v1/catalogue', undefined, made)).status, 401, 'the revoked token is refused');
  assert.equal(await page.getByRole('button', { name: 'Token te-intrekken intrekken' }).count(), 0);
  await screenshot(page, 'beheer-tokens');
  await done(page);
});

test('the admin edits a standard answer and the catalogue serves it; removing it too', async () => {
  const page = await openBeheer();
  const before = (await d.api('GET', '/api/v1/catalogue')).doc.items;
  const product = before.find((p) => p.code === 'eid') || before[0];
  await page.getByLabel('Product', { exact: true }).selectOption(product.code);
  const box = page.getByLabel(`Standaardantwoord voor ${product.name}`);
  await box.waitFor();
  assert.equal(await box.inputValue(), product.standard_answer || '');
  const text = 'Kom met uw oude kaart en een pasfoto <b>naar de balie</b>.\nOpen op maandag.';
  await box.fill(text);
  await page.locator('#catalogue').getByRole('button', { name: 'Opslaan' }).click();
  await page.getByText(`Standaardantwoord voor ${product.name} opgeslagen.`).waitFor();
  const served = (await d.api('GET', '/api/v1/catalogue')).doc.items.find((p) => p.code === product.code);
  assert.equal(served.standard_answer, text);
  await screenshot(page, 'beheer-catalogus');
  await page.getByRole('button', { name: 'Standaardantwoord verwijderen' }).click();
  await page.getByText(`Standaardantwoord voor ${product.name} verwijderd.`).waitFor();
  const gone = (await d.api('GET', '/api/v1/catalogue')).doc.items.find((p) => p.code === product.code);
  assert.equal(gone.standard_answer, null);
  assert.equal(await box.inputValue(), '');
  await done(page);
});

test('the audit log filtered by a staff member lists their contact reads; Meer pages on', async () => {
  const made = await d.api('POST', '/api/v1/contacts', { channel: 'phone', subject: 'Vraag over afval',
    party: { name: 'Mia Peeters', email: 'mia@example.be' } });
  assert.equal(made.status, 201, JSON.stringify(made.doc));
  const agent = await newPage(browser);
  await signIn(agent, d, AGENT);
  await agent.goto(d.url(`/contact.html?id=${made.doc.id}`));
  await agent.getByRole('heading', { name: `Contact ${made.doc.reference}`, level: 1 }).waitFor();
  // Enough reads by the admin token for more than one page.
  for (let i = 0; i < 55; i += 1) await d.api('GET', `/api/v1/contacts/${made.doc.id}`);
  const page = await openBeheer();
  await page.getByLabel('Medewerker of token').fill(AGENT.name);
  await page.getByRole('button', { name: 'Filteren' }).click();
  await until(page, (name) => {
    const rows = [...document.querySelectorAll('#audit-table tbody tr')];
    return rows.length > 0 && rows.every((r) => r.children[1].textContent === name);
  }, AGENT.name);
  const rows = await page.locator('#audit-table tbody tr').evaluateAll((trs) => trs.map((tr) =>
    [...tr.children].map((td) => td.textContent)));
  assert.ok(rows.some((r) => r[2] === 'contact.read' && r[3] === `contact:${made.doc.id}`),
    `the agent's read is listed: ${JSON.stringify(rows)}`);
  await screenshot(page, 'beheer-audit-medewerker');
  // By action and person, newest first, and Meer loads the next page.
  await page.getByLabel('Medewerker of token').fill('browser-admin');
  await page.getByLabel('Handeling').fill('contact.read');
  await page.getByLabel('Burger (nummer)').fill(String(made.doc.party_id ?? made.doc.party.id));
  await page.getByRole('button', { name: 'Filteren' }).click();
  await until(page, () => document.querySelectorAll('#audit-table tbody tr').length === 50
    && document.querySelector('#audit-table tbody tr td:nth-child(2)').textContent === 'browser-admin');
  const times = await page.locator('#audit-table tbody tr time').evaluateAll((ts) => ts.map((x) => x.getAttribute('datetime')));
  assert.deepEqual([...times].sort().reverse(), times, 'newest first');
  await page.getByRole('button', { name: 'Meer' }).click();
  await until(page, () => document.querySelectorAll('#audit-table tbody tr').length >= 55);
  assert.match(await page.locator('#audit-count').textContent(), /^5[5-9] regels getoond\.$/);
  // A bad filter is said beside its field.
  await page.getByLabel('Burger (nummer)').fill('abc');
  await page.getByRole('button', { name: 'Filteren' }).click();
  await page.locator('#au-f-party-error').waitFor();
  assert.match(await page.locator('#au-f-party-error').textContent(), /^party: /);
  await screenshot(page, 'beheer-audit-fout');
  await done(page, agent);
});

test('without chan_email the quarantine says so; English through the picker', async () => {
  const page = await openBeheer();
  await page.locator('#quarantine-absent').waitFor();
  assert.match(await page.locator('#quarantine-absent').textContent(), /e-mailkanaal is op deze server niet geladen/);
  await page.getByLabel('Taal').selectOption('en');
  await page.getByRole('heading', { name: 'Administration', level: 1 }).waitFor();
  await page.getByRole('heading', { name: 'Quarantined mail' }).waitFor();
  assert.match(await page.locator('#quarantine-absent').textContent(), /email channel is not loaded/);
  await screenshot(page, 'beheer-english');
  await page.getByLabel('Language').selectOption('nl-BE');
  await done(page);
});

for (const width of [1280, 320]) {
  test(`axe-core finds no serious or critical violation at ${width} px, with and without a dialog`, async () => {
    const page = await openBeheer({ width, height: 900 });
    await screenshot(page, `beheer-${width}`);
    const size = (copy) => copy.setViewportSize({ width, height: 900 });
    assert.deepEqual(await axeViolations(page, async (copy) => {
      await size(copy);
      await copy.locator('#users-table').waitFor();
      await copy.locator('#audit-table, #audit-count').first().waitFor();
    }), []);
    assert.deepEqual(await axeViolations(page, async (copy) => {
      await size(copy);
      await copy.getByRole('button', { name: 'Gebruiker toevoegen' }).click();
      await copy.getByRole('dialog').waitFor();
      await copy.getByRole('dialog').getByRole('button', { name: 'Toevoegen' }).click();
      await copy.locator('#au-login-error').waitFor();
      await screenshot(copy, `beheer-dialoog-${width}`);
    }), []);
    await done(page);
  });
}
