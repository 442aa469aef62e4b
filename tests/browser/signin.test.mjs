// signin.test.mjs: the sign-in page as a person sees it, before anyone signs in: its labels,
// keyboard order, languages, axe-core, and the Content-Security-Policy that stops injected
// script. These need no backend beyond the static files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loketd, launch, newPage, screenshot, axeViolations, CSP } from './fixture.mjs';

let d;
let browser;

before(async () => {
  d = await new Loketd().start();
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
});

test('the sign-in page is served with the strict policy and its modules', async () => {
  const r = await fetch(d.url('/'));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-security-policy'), CSP);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  const html = await r.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i, 'no inline script');
  assert.doesNotMatch(html, /<style|\sstyle=/i, 'no inline style');
  const page = await newPage(browser);
  const failed = [];
  page.on('response', (res) => { if (res.status() >= 400 && !res.url().includes('/api/')) failed.push(res.url()); });
  await page.goto(d.url('/'));
  await page.getByRole('button', { name: 'Aanmelden' }).waitFor();
  assert.deepEqual(failed, [], 'every file the page loads is served');
  assert.deepEqual(page.pageErrors, []);
  await page.context().close();
});

test('the sign-in form has the labelled fields and the button, in Dutch', async () => {
  const page = await newPage(browser);
  await page.goto(d.url('/'));
  const user = page.getByLabel('Gebruikersnaam', { exact: true });
  const pass = page.getByLabel('Wachtwoord', { exact: true });
  await user.waitFor();
  assert.equal(await user.getAttribute('autocomplete'), 'username');
  assert.equal(await pass.getAttribute('type'), 'password');
  assert.equal(await page.getByRole('button', { name: 'Aanmelden', exact: true }).count(), 1);
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'nl-BE');
  assert.equal(await page.title(), 'Aanmelden · loket');
  await screenshot(page, 'index-aanmelden');
  await page.context().close();
});

test('an empty sign-in names the empty fields, tied to them', async () => {
  const page = await newPage(browser);
  await page.goto(d.url('/'));
  await page.getByRole('button', { name: 'Aanmelden' }).click();
  const user = page.getByLabel('Gebruikersnaam', { exact: true });
  await page.locator('#username-error').waitFor();
  assert.equal(await user.getAttribute('aria-invalid'), 'true');
  assert.equal(await user.getAttribute('aria-describedby'), 'username-error');
  assert.equal(await page.locator('#username-error').textContent(), 'Vul dit veld in.');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'username', 'focus goes to the first error');
  await screenshot(page, 'index-lege-velden');
  assert.deepEqual(await axeViolations(page, async (copy) => {
    await copy.getByRole('button', { name: 'Aanmelden' }).click();
    await copy.locator('#username-error').waitFor();
  }), []);
  await page.context().close();
});

test('the sign-in form is reached and used by keyboard alone, skip link first', async () => {
  const page = await newPage(browser);
  await page.goto(d.url('/'));
  await page.getByRole('button', { name: 'Aanmelden' }).waitFor();
  const order = [];
  for (let i = 0; i < 5; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => {
      const el = document.activeElement;
      return el.id || el.textContent.trim();
    }));
  }
  assert.equal(order[0], 'Naar de inhoud', 'the skip link comes first');
  const at = (x) => order.indexOf(x);
  assert.ok(at('lang-select') > 0, `language picker reachable: ${order}`);
  assert.ok(at('username') > 0 && at('password') === at('username') + 1, `fields in order: ${order}`);
  assert.equal(order[at('password') + 1], 'Aanmelden', `then the button: ${order}`);
  // The focus ring is visible (not removed by the style sheet).
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none');
  await page.context().close();
});

test('the language picker switches to English and is remembered', async () => {
  const page = await newPage(browser);
  await page.goto(d.url('/'));
  await page.getByLabel('Taal').selectOption('en');
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
  assert.equal(await page.getByLabel('User name', { exact: true }).count(), 1);
  assert.equal(await page.getByLabel('Password', { exact: true }).count(), 1);
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  await screenshot(page, 'index-english');
  await page.reload();
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'en');
  await page.getByLabel('Language').selectOption('nl-BE');
  await page.getByRole('button', { name: 'Aanmelden', exact: true }).waitFor();
  await page.context().close();
});

test('axe-core finds no serious or critical violation on the sign-in page', async () => {
  const page = await newPage(browser);
  await page.goto(d.url('/'));
  await page.getByRole('button', { name: 'Aanmelden' }).waitFor();
  assert.deepEqual(await axeViolations(page), []);
  await page.context().close();
});

test('the policy stops a script injected into the page, and says so', async () => {
  const page = await newPage(browser);
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  await page.goto(d.url('/'));
  await page.getByRole('button', { name: 'Aanmelden' }).waitFor();
  // What an XSS would do: put an inline script, an event handler and inline style in the DOM.
  await page.evaluate(() => {
    window.__ran = [];
    const s = document.createElement('script');
    s.textContent = 'window.__ran.push("inline script")';
    document.body.appendChild(s);
    const img = document.createElement('img');
    img.setAttribute('src', 'data:image/gif;base64,R0lGODlhAQABAAAAACw=');
    img.setAttribute('onload', 'window.__ran.push("onload")');
    document.body.appendChild(img);
    const a = document.createElement('a');
    a.href = 'javascript:window.__ran.push("javascript url")';
    document.body.appendChild(a);
    a.click();
  });
  await page.waitForTimeout(300);
  assert.deepEqual(await page.evaluate(() => window.__ran), [], 'nothing injected ran');
  assert.ok(violations.length >= 1, `the browser reported the violation: ${page.consoleLines.join(' | ')}`);
  await page.context().close();
});

test('a page other than sign-in sends an anonymous visitor to sign in', async () => {
  const page = await newPage(browser);
  await page.goto(d.url('/taken.html'));
  // GET /api/v1/session answers 401: the page goes to sign-in, keeping where it was.
  await page.waitForURL((u) => u.pathname === '/' , { timeout: 5000 });
  assert.match(new URL(page.url()).search, /next=%2Ftaken\.html/);
  await page.getByRole('button', { name: 'Aanmelden' }).waitFor();
  assert.equal(await page.locator('#tasks').count(), 0, 'never the tasks');
  await page.context().close();
});
