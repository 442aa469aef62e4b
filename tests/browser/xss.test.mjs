// xss.test.mjs: the XSS corpus (issue 15 point 7) against a real loketd: payloads (script
// tags, img onerror, svg onload, javascript: URLs, HTML entities, RTL overrides, very long
// strings without spaces) in a contact's subject and body, the party's name, an email
// contact's HTML body, a note, a task's reason, and a message's subject, body and attachment
// names. Every page that shows them (contactcenter's recent list, Mijn taken, the contact,
// the citizen) shows them as text and runs nothing: the flag the payloads would set stays
// unset, no dialog opens, no markup they carry becomes an element, the browser reports no
// Content-Security-Policy violation, and a long word does not push the page sideways.
//
// The inbound mail is submitted as POST /api/v1/contacts with channel email and an HTML body
// (what chan_email registers from a mail is the same contact row); the hostile attachment
// names go out on a staff message (POST .../messages) through chan_email's outbox.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Loketd, launch, newPage, screenshot, axeViolations, signIn, settled, freePort } from './fixture.mjs';

let d;
let browser;
const AGENT = { name: 'xss-agent', password: 'lang genoeg wachtwoord x' };
const BO = { name: 'xss-bo', password: 'lang genoeg wachtwoord y' };

const RLO = '\u202e';
export const XSS = [
  '<script>window.__xss="script"</script>',
  '<img src=x onerror="window.__xss=\'img\'">',
  '"><svg onload="window.__xss=\'svg\'">',
  'javascript:window.__xss=\'url\'',
  '<a href="javascript:window.__xss=\'a\'">klik hier</a>',
  '&lt;b&gt;vet&lt;/b&gt; &amp; &#60;script&#62;window.__xss=\'entity\'&#60;/script&#62;',
  `Factuur ${RLO}fdp.exe en ${RLO}<b onmouseover="window.__xss='rlo'">x</b>`,
  '<iframe srcdoc="<script>parent.__xss=\'iframe\'</script>"></iframe>',
  '<style>body{display:none}</style><link rel=stylesheet href=//evil.example/x.css>',
  '{{constructor.constructor("window.__xss=\'tpl\'")()}}${window.__xss="tl"}',
  'W'.repeat(190) + '<script>window.__xss="long"</script>',
];
const LONG = 'Lang' + 'x'.repeat(3000); // a word without spaces longer than any screen
const MAIL_HTML = '<html><head><style>p{color:red}</style></head><body><p>Beste,</p>' +
  '<img src="x" onerror="window.__xss=\'mail\'"><script>window.__xss="mailscript"</script>' +
  '<a href="javascript:window.__xss=\'mailurl\'">klik</a><p>Groeten</p></body></html>';
const FILE_NAMES = [
  '<img src=x onerror="window.__xss=\'att\'">.pdf',
  '"><svg onload=window.__xss=1>.txt',
  `rekening${RLO}fdp.exe`,
  '&lt;script&gt;.txt',
  'A'.repeat(200) + '.txt',
];

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

// A page with everything that would tell a payload ran: dialogs and CSP reports recorded.
async function watched(user) {
  const page = await newPage(browser);
  page.dialogs = [];
  page.cspViolations = [];
  page.on('dialog', async (dl) => { page.dialogs.push(dl.message()); await dl.dismiss(); });
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) page.cspViolations.push(m.text()); });
  await signIn(page, d, user);
  return page;
}

// The API as the signed-in user of page (its session cookie and CSRF token).
async function asUser(page, method, p, body) {
  const s = await page.request.get(d.url('/api/v1/session'));
  const { csrf } = await s.json();
  const r = await page.request.fetch(d.url(p), { method, data: body,
    headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' } });
  return { status: r.status(), doc: await r.json().catch(() => null) };
}

async function assertNothingRan(page, where) {
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined, `${where}: an injected payload ran`);
  assert.equal(await page.evaluate(() => window.parent.__xss), undefined, `${where}: an iframe payload ran`);
  assert.deepEqual(page.dialogs, [], `${where}: a dialog opened`);
  assert.deepEqual(page.cspViolations, [], `${where}: the policy had to stop something`);
  assert.equal(await page.locator('main iframe, main svg[onload], main img, main script, main style, ' +
    'main link, main [onerror], main [onmouseover], main a[href^="javascript:"], main b').count(), 0,
  `${where}: a payload became markup`);
  assert.deepEqual(page.pageErrors, [], `${where}: page errors`);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(wide <= 1, `${where}: a long word pushes the page ${wide}px sideways`);
}

test('XSS corpus: subject, body, names, mail HTML, notes, reasons and attachment names show as text and run nothing', async () => {
  const agent = await watched(AGENT);
  const made = [];
  for (const [i, payload] of XSS.entries()) {
    const r = await asUser(agent, 'POST', '/api/v1/contacts', { channel: 'email', subject: payload,
      body: i === 0 ? MAIL_HTML : `${payload}\n${LONG}`, department: 'burgerzaken',
      party: { name: payload.slice(0, 200), email: `xss${i}@example.be` } });
    assert.equal(r.status, 201, JSON.stringify(r.doc));
    made.push(r.doc);
  }
  const [mail] = made;
  // A note, a referral reason and a message with hostile attachment names on the first.
  assert.equal((await asUser(agent, 'POST', `/api/v1/contacts/${mail.id}/notes`, { text: XSS[1] })).status, 201);
  for (const c of made.slice(0, 4)) {
    const esc = await d.api('POST', `/api/v1/contacts/${c.id}/escalate`,
      { department: 'burgerzaken', reason: XSS[made.indexOf(c) + 2] });
    assert.equal(esc.status, 200, JSON.stringify(esc.doc));
  }
  const msg = await asUser(agent, 'POST', `/api/v1/contacts/${mail.id}/messages`, {
    subject: XSS[2], body: `${XSS[4]}\n${MAIL_HTML}\n${LONG}`, via: 'email',
    attachments: FILE_NAMES.map((name) => ({ name, content_type: 'text/plain', data: 'aGFsbG8=' })),
  });
  assert.equal(msg.status, 202, JSON.stringify(msg.doc));

  // The contactcenter's recent list.
  await agent.goto(d.url('/contactcenter.html'));
  await agent.locator('#recent').waitFor();
  for (const payload of XSS) {
    assert.ok((await agent.locator('#recent').textContent()).includes(payload.slice(0, 60)), `listed: ${payload}`);
  }
  await screenshot(agent, 'xss-contactcenter');
  await assertNothingRan(agent, 'contactcenter');

  // The contact page: every field as exactly the text that was sent.
  for (const [i, c] of made.entries()) {
    await agent.goto(d.url(`/contact.html?id=${c.id}`));
    await settled(agent);
    assert.equal(await agent.locator('#contact-subject').textContent(), XSS[i]);
    assert.equal(await agent.locator('#contact-body').textContent(), i === 0 ? MAIL_HTML : `${XSS[i]}\n${LONG}`);
    assert.equal(await agent.locator('#contact-party').textContent(), XSS[i].slice(0, 200));
    await assertNothingRan(agent, `contact ${i}`);
  }
  await agent.goto(d.url(`/contact.html?id=${mail.id}`));
  await settled(agent);
  await agent.locator('#messages li').first().waitFor();
  const out = agent.locator('#messages li.out').filter({ has: agent.locator('.att-name') });
  assert.match(await out.locator('.msg-subject').textContent(), new RegExp(XSS[2].replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.equal(await out.locator('.msg-body').textContent(), `${XSS[4]}\n${MAIL_HTML}\n${LONG}`);
  // Names as text; a direction control made visible, so no name can fake its extension.
  assert.deepEqual(await out.locator('.att-name').allTextContents(),
    FILE_NAMES.map((f) => f.replace(RLO, '[U+202E]')));
  assert.equal(await out.locator('.att-name').first().evaluate((el) => getComputedStyle(el).unicodeBidi), 'isolate',
    'a name\'s direction stays inside it');
  assert.equal(await agent.locator('#notes').getByText(XSS[1], { exact: true }).count(), 1);
  assert.ok((await agent.locator('#history').textContent()).includes(XSS[2]), 'the reason in the history');
  await screenshot(agent, 'xss-contact');
  await assertNothingRan(agent, 'contact with messages');
  assert.deepEqual(await axeViolations(agent), []);

  // The citizen page.
  for (const [i, c] of made.entries()) {
    await agent.goto(d.url(`/burger.html?id=${c.party_id}`));
    await agent.locator('#identifiers').waitFor();
    await settled(agent);
    assert.ok((await agent.locator('#identifiers').textContent()).includes(XSS[i].slice(0, 200)));
    if (i === 0) await screenshot(agent, 'xss-burger');
    await assertNothingRan(agent, `burger ${i}`);
  }
  await agent.context().close();

  // Mijn taken: the referral reasons.
  const bo = await watched(BO);
  await settled(bo);
  for (const c of made.slice(0, 4)) {
    const reason = XSS[made.indexOf(c) + 2];
    const cell = bo.locator('#tasks tr', { hasText: c.reference }).locator('td').nth(3);
    assert.equal(await cell.textContent(), reason);
  }
  await screenshot(bo, 'xss-taken');
  await assertNothingRan(bo, 'taken');
  await bo.goto(d.url(`/contact.html?id=${mail.id}`));
  await settled(bo);
  await assertNothingRan(bo, 'contact (back office)');
  await bo.context().close();
});
