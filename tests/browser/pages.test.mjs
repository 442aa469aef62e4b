// pages.test.mjs: every page against a real loketd: it renders the register's data, passes
// axe-core, shows citizens' and mail text as text (the XSS corpus). (The agent's and the
// citizen's workflows are in agent.test.mjs and citizen.test.mjs.) Until the session API lands (issue 15, auth), a page's session is
// a stand-in: GET /api/v1/session is answered in the browser with the user a bearer token
// belongs to, and the token is added to the page's API requests. Everything else the pages
// ask is answered by loketd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loketd, launch, newPage, screenshot, axeViolations } from './fixture.mjs';

let d;
let browser;
let agentToken;
let boToken;

before(async () => {
  d = await new Loketd().start();
  browser = await launch();
  agentToken = d.token('browser-agent', 'agent');
  boToken = d.token('browser-bo', 'backoffice', { departments: ['burgerzaken'] });
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

// A page whose API requests carry token, with GET /api/v1/session answered as user.
async function pageAs(user, token) {
  const page = await newPage(browser);
  await page.route('**/api/v1/**', async (route) => {
    const req = route.request();
    if (new URL(req.url()).pathname === '/api/v1/session' && req.method() === 'GET') {
      await route.fulfill({ status: 200, contentType: 'application/json',
        body: JSON.stringify({ user, csrf: 'stand-in', idle_timeout: 1800 }) });
      return;
    }
    await route.continue({ headers: { ...req.headers(), authorization: `Bearer ${token}` } });
  });
  return page;
}
const AGENT = { name: 'browser-agent', role: 'agent', departments: [], organisation: null, extension: null };
const BO = { name: 'browser-bo', role: 'backoffice', departments: ['burgerzaken'], organisation: null, extension: null };

const XSS = [
  '<script>window.__xss="script"</script>',
  '<img src=x onerror="window.__xss=\'img\'">',
  '"><svg onload="window.__xss=\'svg\'">',
  "javascript:window.__xss='url'",
  '<a href="javascript:window.__xss=\'a\'">klik</a>',
  '{{constructor.constructor("window.__xss=\'tpl\'")()}}',
  '<iframe srcdoc="<script>parent.__xss=\'iframe\'</script>">',
  '<style>body{display:none}</style>',
];

async function assertNothingRan(page) {
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'an injected payload ran');
  assert.equal(await page.locator('iframe, svg[onload], img[onerror]').count(), 0);
}

test('every page passes axe-core and is kept as a screenshot', async () => {
  const made = await d.api('POST', '/api/v1/contacts', { channel: 'phone', subject: 'Vraag over afval',
    body: 'Wanneer komt de container?', department: 'burgerzaken',
    party: { name: 'Piet Peeters', email: 'piet.peeters@example.be' } }, agentToken);
  assert.equal(made.status, 201, JSON.stringify(made.doc));
  const esc = await d.api('POST', `/api/v1/contacts/${made.doc.id}/escalate`,
    { department: 'burgerzaken', reason: 'dossier nodig' });
  assert.equal(esc.status, 200, JSON.stringify(esc.doc));
  const pages = [
    ['contactcenter', '/contactcenter.html', AGENT, agentToken, 'Contactcenter'],
    ['taken', '/taken.html', BO, boToken, 'Mijn taken'],
    ['contact', `/contact.html?id=${made.doc.id}`, AGENT, agentToken, `Contact ${made.doc.reference}`],
    ['burger', `/burger.html?id=${made.doc.party_id}`, AGENT, agentToken, 'Burger: Piet Peeters'],
  ];
  const problems = [];
  for (const [name, path, user, token, heading] of pages) {
    const page = await pageAs(user, token);
    await page.goto(d.url(path));
    await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
    await page.waitForLoadState('networkidle');
    await screenshot(page, name);
    // axe's own context cannot carry the stand-in session: it runs on this page's DOM copy.
    const html = await page.content();
    const copy = await newPage(browser, { bypassCSP: true });
    await copy.route('**/*', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: html }));
    await copy.goto(d.url(path));
    await copy.unroute('**/*');
    await copy.addScriptTag({ path: (await import('node:module')).createRequire(import.meta.url).resolve('axe-core/axe.min.js') });
    const result = await copy.evaluate(() => window.axe.run(document, { runOnly: { type: 'tag',
      values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }));
    for (const v of result.violations) {
      if (v.impact === 'serious' || v.impact === 'critical') {
        problems.push(`${name}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
      }
    }
    assert.deepEqual(page.pageErrors, [], name);
    await copy.context().close();
    await page.context().close();
  }
  assert.deepEqual(problems, []);
});

test('the back office sees its department\'s task, overdue marked in words', async () => {
  const made = await d.api('POST', '/api/v1/contacts', { channel: 'email', subject: 'Attest gezinssamenstelling',
    department: 'burgerzaken', party: { email: 'taak@example.be' } }, agentToken);
  const past = new Date(Date.now() - 3600e3).toISOString();
  const esc = await d.api('POST', `/api/v1/contacts/${made.doc.id}/escalate`,
    { department: 'burgerzaken', reason: 'attest opmaken', due: past });
  assert.equal(esc.status, 200, JSON.stringify(esc.doc));
  const page = await pageAs(BO, boToken);
  await page.goto(d.url('/taken.html'));
  const row = page.locator('tr', { hasText: made.doc.reference });
  await row.waitFor();
  assert.equal(await row.getByText('Te laat', { exact: true }).count(), 1, 'overdue is said in words');
  assert.equal(await row.getByRole('link', { name: made.doc.reference }).getAttribute('href'),
    `/contact.html?id=${made.doc.id}`);
  await screenshot(page, 'taken-te-laat');
  // Mark done: the task leaves the list and the contact is closed.
  await row.getByRole('button', { name: 'Afgehandeld' }).click();
  await row.waitFor({ state: 'detached' });
  const after = await d.api('GET', `/api/v1/contacts/${made.doc.id}`);
  assert.equal(after.doc.status, 'closed');
  await page.context().close();
});

test('XSS corpus: citizens\' text in subject, body and name shows as text and runs nothing', async () => {
  const ids = [];
  for (const [i, payload] of XSS.entries()) {
    const r = await d.api('POST', '/api/v1/contacts', { channel: 'web', subject: payload, body: payload,
      party: { name: payload.slice(0, 190), email: `xss${i}@example.be` } }, agentToken);
    assert.equal(r.status, 201, JSON.stringify(r.doc));
    ids.push(r.doc);
  }
  for (const [i, c] of ids.entries()) {
    const page = await pageAs(AGENT, agentToken);
    await page.goto(d.url(`/contact.html?id=${c.id}`));
    await page.locator('#contact-subject').waitFor();
    assert.equal(await page.locator('#contact-subject').textContent(), XSS[i]);
    assert.equal(await page.locator('#contact-body').textContent(), XSS[i]);
    await assertNothingRan(page);
    await page.goto(d.url(`/burger.html?id=${c.party_id}`));
    await page.locator('#identifiers').waitFor();
    assert.ok((await page.locator('#identifiers').textContent()).includes(XSS[i].slice(0, 190)));
    await assertNothingRan(page);
    if (i === 0) await screenshot(page, 'xss-burger');
    await page.context().close();
  }
  // The agent's list shows every one of them as text too.
  const page = await pageAs(AGENT, agentToken);
  await page.goto(d.url('/contactcenter.html'));
  await page.locator('#recent').waitFor();
  await assertNothingRan(page);
  await page.context().close();
});
