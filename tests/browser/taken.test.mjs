// taken.test.mjs: the back office's page (Mijn taken, issue 15 point 6) in Chromium against a
// real loketd with real users: my departments' open tasks by due time with overdue said in
// words, live as tasks come, fall due and are done; claim and the conflict between two
// colleagues; send back to the first line and forward to another department, each with a
// required reason; what the page claims checked in the register through the API; axe-core on
// each state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loketd, launch, newPage, screenshot, axeViolations, signIn, settled } from './fixture.mjs';

let d;
let browser;
const BO = { name: 'bo-anna', password: 'lang genoeg wachtwoord a' };
const BO2 = { name: 'bo-bram', password: 'lang genoeg wachtwoord b' };
const OMG = { name: 'bo-omgeving', password: 'lang genoeg wachtwoord c' };

before(async () => {
  d = await new Loketd().start();
  browser = await launch();
  d.user(BO.name, 'backoffice', BO.password, { departments: ['burgerzaken'] });
  d.user(BO2.name, 'backoffice', BO2.password, { departments: ['burgerzaken'] });
  d.user(OMG.name, 'backoffice', OMG.password, { departments: ['omgeving'] });
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

let n = 0;
// A contact referred to department with its task due at due (a Date), through the API.
async function referred(department, subject, due) {
  n += 1;
  const made = await d.api('POST', '/api/v1/contacts', { channel: 'phone', subject, department,
    party: { name: `Burger ${n}`, email: `burger${n}@example.be` } });
  assert.equal(made.status, 201, JSON.stringify(made.doc));
  const body = { department, reason: `reden ${subject}` };
  if (due) body.due = due.toISOString();
  const esc = await d.api('POST', `/api/v1/contacts/${made.doc.id}/escalate`, body);
  assert.equal(esc.status, 200, JSON.stringify(esc.doc));
  return esc.doc;
}

async function open(user) {
  const page = await newPage(browser);
  await signIn(page, d, user);
  assert.equal(new URL(page.url()).pathname, '/taken.html');
  await settled(page);
  await page.locator('html[data-stream="open"]').waitFor({ state: 'attached' });
  return page;
}

const row = (page, c) => page.locator(`#task-${c.tasks.find((x) => x.status === 'open').id}`);

test('Mijn taken lists my departments\' open tasks by due time, overdue said in words', async () => {
  const hour = 3600e3;
  const later = await referred('burgerzaken', 'Over twee dagen', new Date(Date.now() + 48 * hour));
  const late = await referred('burgerzaken', 'Al te laat', new Date(Date.now() - hour));
  const soon = await referred('burgerzaken', 'Morgen', new Date(Date.now() + 24 * hour));
  const other = await referred('omgeving', 'Andere dienst', new Date(Date.now() + hour));
  const page = await open(BO);
  const refs = await page.locator('#tasks tbody tr td:first-child').allTextContents();
  const mine = refs.filter((r) => [later, late, soon].some((c) => c.reference === r));
  assert.deepEqual(mine, [late.reference, soon.reference, later.reference], 'earliest due first');
  assert.ok(!refs.includes(other.reference), 'another department\'s task is not listed');
  assert.equal(await row(page, late).getByText('Te laat', { exact: true }).count(), 1, 'overdue is said in words');
  assert.equal(await row(page, soon).getByText('Te laat', { exact: true }).count(), 0);
  assert.match(await page.locator('#tasks-count').textContent(), /open taken, waarvan 1 te laat\./);
  assert.equal(await row(page, late).getByRole('link', { name: late.reference }).getAttribute('href'),
    `/contact.html?id=${late.id}`);
  assert.equal(await row(page, late).locator('.assignee').textContent(), 'niemand');
  await screenshot(page, 'taken-lijst-te-laat');
  assert.deepEqual(await axeViolations(page), []);
  // A task opens its contact.
  await row(page, late).getByRole('link', { name: late.reference }).click();
  await page.getByRole('heading', { name: `Contact ${late.reference}`, level: 1 }).waitFor();
  await page.goBack();
  await settled(page);
  // In English too.
  await page.getByLabel('Taal').selectOption('en');
  await row(page, late).getByText('Overdue', { exact: true }).waitFor();
  assert.equal(await row(page, late).getByRole('button', { name: 'Send back to the first line' }).count(), 1);
  await page.getByRole('heading', { name: 'My tasks', level: 1 }).waitFor();
  await screenshot(page, 'taken-english');
  await page.getByLabel('Language').selectOption('nl-BE');
  // Done from the list: the row goes and the contact is closed.
  await row(page, late).getByRole('button', { name: 'Afgehandeld' }).click();
  await page.getByRole('status').filter({ hasText: `${late.reference} is afgehandeld.` }).waitFor();
  await row(page, late).waitFor({ state: 'detached' });
  assert.equal((await d.api('GET', `/api/v1/contacts/${late.id}`)).doc.status, 'closed');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('a new task appears live, and one falling due is marked overdue live (task.due)', async () => {
  const page = await open(BO);
  const navigations = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });
  const due = new Date(Date.now() + 8000);
  const c = await referred('burgerzaken', 'Bijna te laat', due);
  const t0 = Date.now();
  await row(page, c).waitFor({ timeout: 10000 });
  const shown = await row(page, c).getByText('Te laat', { exact: true }).count();
  if (Date.now() < due.getTime() - 500) assert.equal(shown, 0, 'not overdue before its time');
  await row(page, c).getByText('Te laat', { exact: true }).waitFor({ timeout: 30000 });
  assert.deepEqual(navigations, [], 'no reload');
  await screenshot(page, 'taken-live-te-laat');
  await page.context().close();
});

test('send back to the first line needs a reason; then the contact is open at line 1', async () => {
  const c = await referred('burgerzaken', 'Terugsturen', new Date(Date.now() + 86400e3));
  const page = await open(BO);
  const r = row(page, c);
  const tid = c.tasks[0].id;
  await r.getByRole('button', { name: 'Terugsturen naar eerste lijn' }).click();
  assert.equal(await r.getByRole('button', { name: 'Terugsturen naar eerste lijn' }).getAttribute('aria-expanded'), 'true');
  await r.getByRole('button', { name: 'Terugsturen bevestigen' }).click();
  const reason = page.getByLabel('Reden', { exact: true });
  await page.locator(`#task-${tid}-reason-error`).filter({ hasText: 'Geef een reden op.' }).waitFor();
  assert.equal(await reason.getAttribute('aria-invalid'), 'true');
  assert.equal(await reason.getAttribute('aria-describedby'), `task-${tid}-reason-error`);
  assert.equal(await page.evaluate(() => document.activeElement.id), `task-${tid}-reason`);
  await screenshot(page, 'taken-terugsturen-zonder-reden');
  assert.deepEqual(await axeViolations(page, async (copy) => {
    await settled(copy);
    await copy.locator(`#task-${tid}`).getByRole('button', { name: 'Terugsturen naar eerste lijn' }).click();
    await copy.locator(`#task-${tid}`).getByRole('button', { name: 'Terugsturen bevestigen' }).click();
    await copy.locator(`#task-${tid}-reason-error`).waitFor();
  }), []);
  assert.equal((await d.api('GET', `/api/v1/contacts/${c.id}`)).doc.status, 'escalated', 'nothing sent yet');
  await reason.fill('Dit is een vraag voor de eerste lijn.');
  await r.getByRole('button', { name: 'Terugsturen bevestigen' }).click();
  await page.getByRole('status').filter({ hasText: `${c.reference} is teruggestuurd naar de eerste lijn.` }).waitFor();
  await r.waitFor({ state: 'detached' });
  const back = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.equal(back.doc.status, 'open');
  assert.equal(back.doc.line, 1);
  assert.ok(back.doc.tasks.every((x) => x.status === 'done'));
  const h = back.doc.history.find((x) => x.action === 'return');
  assert.equal(h.detail, 'Dit is een vraag voor de eerste lijn.');
  assert.equal(h.actor, BO.name);
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('forward to another department with a reason: the task is theirs, live on their page', async () => {
  const c = await referred('burgerzaken', 'Doorsturen', new Date(Date.now() + 86400e3));
  const page = await open(BO);
  const theirs = await open(OMG);
  const r = row(page, c);
  const tid = c.tasks[0].id;
  await r.getByRole('button', { name: 'Doorsturen', exact: true }).click();
  await r.getByRole('button', { name: 'Doorsturen bevestigen' }).click();
  await page.locator(`#task-${tid}-department-error`).filter({ hasText: 'Kies de dienst waarnaar de taak gaat.' }).waitFor();
  await page.locator(`#task-${tid}-reason-error`).filter({ hasText: 'Geef een reden op.' }).waitFor();
  assert.equal(await page.getByLabel('Naar dienst').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), `task-${tid}-department`);
  await page.getByLabel('Naar dienst').selectOption('omgeving');
  await page.getByLabel('Reden', { exact: true }).fill('gaat over een bouwvergunning');
  await screenshot(page, 'taken-doorsturen');
  await r.getByRole('button', { name: 'Doorsturen bevestigen' }).click();
  await page.getByRole('status').filter({ hasText: `${c.reference} is doorgestuurd naar omgeving.` }).waitFor();
  await r.waitFor({ state: 'detached' });
  const moved = await d.api('GET', `/api/v1/contacts/${c.id}`);
  assert.equal(moved.doc.department, 'omgeving');
  assert.equal(moved.doc.status, 'escalated');
  const open2 = moved.doc.tasks.filter((x) => x.status === 'open');
  assert.equal(open2.length, 1);
  assert.equal(open2[0].department, 'omgeving');
  assert.equal(open2[0].reason, 'gaat over een bouwvergunning');
  assert.equal(moved.doc.history.find((x) => x.action === 'forward').detail, 'gaat over een bouwvergunning');
  // Live on the other department's page.
  await theirs.locator(`#task-${open2[0].id}`).waitFor({ timeout: 10000 });
  assert.match(await theirs.locator(`#task-${open2[0].id}`).textContent(), /gaat over een bouwvergunning/);
  await screenshot(theirs, 'taken-doorgestuurd-andere-dienst');
  await page.context().close();
  await theirs.context().close();
});

test('two colleagues: the one who did not claim sees who did, live, and is told so when trying', async () => {
  const c = await referred('burgerzaken', 'Wie neemt op', new Date(Date.now() + 86400e3));
  const anna = await open(BO);
  const bram = await open(BO2);
  await row(anna, c).getByRole('button', { name: 'Opnemen' }).click();
  await anna.getByRole('status').filter({ hasText: `U hebt ${c.reference} opgenomen.` }).waitFor();
  await row(anna, c).getByRole('button', { name: 'Vrijgeven' }).waitFor();
  // Bram's page follows without a reload.
  await row(bram, c).locator('.assignee', { hasText: BO.name }).waitFor({ timeout: 10000 });
  await row(bram, c).getByRole('button', { name: 'Opnemen' }).click();
  const alert = row(bram, c).getByRole('alert');
  await alert.waitFor();
  assert.equal((await alert.textContent()).trim(),
    `Deze taak is al opgenomen door ${BO.name}. Alleen ${BO.name} of een beheerder kan ze vrijgeven.`);
  await screenshot(bram, 'taken-al-opgenomen');
  assert.deepEqual(await axeViolations(bram, async (copy) => {
    await settled(copy);
    await copy.locator(`#task-${c.tasks[0].id}`).getByRole('button', { name: 'Opnemen' }).click();
    await copy.locator(`#task-${c.tasks[0].id}`).getByRole('alert').waitFor();
  }), []);
  const task = (await d.api('GET', '/api/v1/tasks?status=open')).doc.items.find((x) => x.id === c.tasks[0].id);
  assert.equal(task.assignee, BO.name, 'the register still names the first');
  // Anna gives it back: Bram sees nobody holds it, and may claim it now.
  await row(anna, c).getByRole('button', { name: 'Vrijgeven' }).click();
  await anna.getByRole('status').filter({ hasText: `U hebt ${c.reference} vrijgegeven.` }).waitFor();
  await row(bram, c).locator('.assignee', { hasText: 'niemand' }).waitFor({ timeout: 10000 });
  await row(bram, c).getByRole('button', { name: 'Opnemen' }).click();
  await row(bram, c).getByRole('button', { name: 'Vrijgeven' }).waitFor();
  await row(anna, c).locator('.assignee', { hasText: BO2.name }).waitFor({ timeout: 10000 });
  // Bram finishes it: it leaves Anna's list live (task.done).
  await row(bram, c).getByRole('button', { name: 'Afgehandeld' }).click();
  await row(anna, c).waitFor({ state: 'detached', timeout: 10000 });
  assert.deepEqual(anna.pageErrors, []);
  assert.deepEqual(bram.pageErrors, []);
  await anna.context().close();
  await bram.context().close();
});

test('a task moved out of my departments meanwhile: the refusal is said in words and the row goes', async () => {
  const c = await referred('burgerzaken', 'Intussen verhuisd', new Date(Date.now() + 86400e3));
  const page = await newPage(browser);
  await signIn(page, d, BO);
  // A page whose stream is down shows what it loaded last, as after a lost connection.
  await page.route('**/api/v1/events**', (route) => route.abort());
  await page.reload();
  await settled(page);
  await row(page, c).waitFor();
  const moved = await d.api('PATCH', `/api/v1/contacts/${c.id}`, { department: 'omgeving' });
  assert.equal(moved.status, 200, JSON.stringify(moved.doc));
  await row(page, c).getByRole('button', { name: 'Opnemen' }).click();
  await row(page, c).waitFor({ state: 'detached' });
  const alert = page.getByRole('alert').filter({ hasText: `${c.reference} staat niet meer in uw lijst.` });
  await alert.waitFor();
  assert.match(await alert.textContent(), /Deze taak hoort niet \(meer\) bij uw diensten: u kunt er niets mee doen\./);
  await screenshot(page, 'taken-niet-meer-van-mij');
  const task = (await d.api('GET', '/api/v1/tasks?status=open')).doc.items.find((x) => x.contact_id === c.id);
  assert.equal(task.assignee, null, 'nothing was claimed');
  await page.context().close();
});
