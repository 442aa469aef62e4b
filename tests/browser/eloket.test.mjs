// eloket.test.mjs: the e-loket (plugins/chan_web, docs/eloket.md; issue 16) in Chromium
// against a real loketd with the shipped catalogue: a citizen asks a question with
// JavaScript on (the keyword search) and off (the plain list) and reads the reference; an
// error shows beside its field with the input kept; attachments arrive byte for byte on the
// contact; the themes group the products, digital ones first; the status page shows the
// answer once a staff member sent it from the staff UI (chan_email sends it to a small SMTP
// sink in this file); the form by keyboard alone; no horizontal scrolling at 320 px; and
// axe-core on every page at 320 px and at 1280 px, each page kept as a screenshot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import { Loketd, SRCDIR, launch, newPage, screenshot, axeViolations, signIn, settled, until,
  freePort } from './fixture.mjs';

const AGENT = { name: 'el-agent', password: 'lang genoeg wachtwoord el' };
const PHONE = { width: 320, height: 640 };
const DESKTOP = { width: 1280, height: 900 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A mail server that keeps what it is given: enough SMTP for chan_email (libesmtp) to hand
// over a message and mark it sent, which is when the status page shows the answer.
function smtpSink() {
  const mails = [];
  const server = net.createServer((sock) => {
    let buf = '';
    let data = null;
    let rcpt = [];
    sock.setEncoding('latin1');
    sock.on('error', () => {});
    sock.write('220 sink.test ESMTP\r\n');
    sock.on('data', (chunk) => {
      buf += chunk;
      for (let i; (i = buf.indexOf('\r\n')) >= 0;) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (data !== null) {
          if (line === '.') {
            mails.push({ to: rcpt, text: Buffer.from(data.join('\r\n'), 'latin1').toString('utf8') });
            data = null;
            rcpt = [];
            sock.write('250 2.0.0 kept\r\n');
          } else {
            data.push(line.startsWith('.') ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') sock.write('250-sink.test\r\n250 8BITMIME\r\n');
        else if (verb === 'HELO') sock.write('250 sink.test\r\n');
        else if (verb === 'RCPT') {
          rcpt.push(/<([^>]*)>/.exec(line)?.[1]);
          sock.write('250 2.1.5 ok\r\n');
        } else if (verb === 'DATA') {
          data = [];
          sock.write('354 end with .\r\n');
        } else if (verb === 'QUIT') sock.end('221 2.0.0 bye\r\n');
        else sock.write('250 2.0.0 ok\r\n');
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, mails, port: server.address().port })));
}

// A small but well-formed PDF (header, one empty page, a cross-reference table with the
// right offsets) and a real 2x2 PNG, made here so the bytes compared are known.
function pdfBytes() {
  const objs = ['<< /Type /Catalog /Pages 2 0 R >>', '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>'];
  let out = '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n';
  const offsets = [];
  objs.forEach((o, i) => {
    offsets.push(Buffer.byteLength(out, 'latin1'));
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = Buffer.byteLength(out, 'latin1');
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

function crc32(buf) {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function pngBytes() {
  const chunk = (type, body) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(2, 0);
  ihdr.writeUInt32BE(2, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = Buffer.from([0, 255, 0, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 255]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

let d;
let browser;
let sink;

before(async () => {
  sink = await smtpSink();
  d = await new Loketd({
    plugins: ['chan_web', 'chan_email'],
    pluginConf: {
      // The whole file posts from 127.0.0.1: the limits must not trip between tests.
      chan_web: { post_limit: '500', status_limit: '500', organisation: 'Gemeente Voorbeeld' },
      // A mailbox to send from (its IMAP side is a closed port: nothing is read here) and
      // the sink above to send to.
      chan_email: {
        mailbox1: `info imap://127.0.0.1:${await freePort()}/INBOX user=info@gemeente.test ` +
          'password=x organisation=gemeente address=info@gemeente.test',
        smtp_host: '127.0.0.1', smtp_port: String(sink.port), starttls: 'no', insecure_auth: 'yes',
        templates: path.join(SRCDIR, 'etc', 'templates'), retry_min: '1s', retry_max: '2s',
      },
    },
  }).start();
  browser = await launch();
  d.user(AGENT.name, 'agent', AGENT.password);
});

after(async () => {
  if (browser) await browser.close();
  if (d) await d.stop();
  if (sink) sink.server.close();
});

let n = 0;
function citizen() {
  n += 1;
  return { name: `Mira Claes ${n}`, email: `mira.${n}.${Date.now()}@example.be` };
}

// The contact a reference names, through the staff API (admin token).
async function contactOf(reference) {
  const r = await d.api('GET', `/api/v1/search?type=contacts&q=${encodeURIComponent(reference)}`);
  assert.equal(r.status, 200, JSON.stringify(r.doc));
  const found = r.doc.contacts.filter((c) => c.reference === reference);
  assert.equal(found.length, 1, `one contact ${reference}: ${JSON.stringify(r.doc)}`);
  const full = await d.api('GET', `/api/v1/contacts/${found[0].id}`);
  assert.equal(full.status, 200);
  return full.doc;
}

async function openForm(options = {}) {
  const page = await newPage(browser, { viewport: DESKTOP, ...options });
  const r = await page.goto(d.url('/loket'));
  assert.equal(r.status(), 200);
  await page.locator('main h1').waitFor();
  return page;
}

// Fills in everything but the product (chosen by the caller) and sends the form.
// (By id, so that it serves the English pages too; the tests above find fields by label.)
async function fillAndSend(page, who, question) {
  await page.locator('#question').fill(question);
  await page.locator('#name').fill(who.name);
  await page.locator('#email').fill(who.email);
  await page.locator('#privacy').check();
  await Promise.all([page.waitForNavigation(), page.locator('form[action="/loket"] button[type=submit]').click()]);
}

async function readReference(page) {
  await page.getByRole('heading', { name: 'Uw vraag is ontvangen', level: 1 }).waitFor();
  const ref = (await page.locator('#reference').textContent()).trim();
  assert.match(ref, /^\d{4}-\d{6}$/);
  assert.match(await page.locator('#expected').getAttribute('datetime'), /^\d{4}-\d\d-\d\d$/);
  return ref;
}

test('with JavaScript on, a citizen finds a product by keyword, asks, and reads the reference', async () => {
  const page = await openForm();
  const who = citizen();
  const search = page.getByLabel('Zoek een onderwerp');
  assert.ok(await search.isVisible(), 'the search box shows with JavaScript');
  const all = await page.locator('.product-option').count();
  await search.fill('woonst');
  await page.locator('#product-search-count').filter({ hasText: /gevonden/ }).waitFor();
  const shown = await page.locator('.product-option:visible').count();
  assert.ok(shown >= 1 && shown < all, `the search narrows the list (${shown} of ${all})`);
  const option = page.getByRole('radio', { name: /Attest van woonst/ });
  assert.ok(await option.isVisible());
  await option.check();
  await page.getByLabel('Uw vraag').fill('Ik verhuis volgende maand. Welk attest heb ik nodig?');
  await page.getByLabel('Uw naam').fill(who.name);
  await page.getByLabel('E-mailadres').fill(who.email);
  await page.getByLabel(/Ik heb gelezen wat er met mijn gegevens gebeurt/).check();
  await screenshot(page, 'eloket-form-zoeken');
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Vraag versturen' }).click()]);
  const ref = await readReference(page);
  await screenshot(page, 'eloket-bevestiging-js');
  const c = await contactOf(ref);
  assert.equal(c.channel, 'web');
  assert.equal(c.product, 'attest-woonst');
  assert.equal(c.body, 'Ik verhuis volgende maand. Welk attest heb ik nodig?');
  assert.deepEqual(page.pageErrors, []);
  assert.deepEqual(page.consoleLines.filter((l) => l.startsWith('error')), []);
  await page.context().close();
});

test('with JavaScript off, the whole list shows, the post works and the reference is read', async () => {
  const page = await openForm({ javaScriptEnabled: false });
  const who = citizen();
  assert.equal(await page.locator('#product-search').isVisible(), false, 'no search box without JavaScript');
  const cat = (await d.api('GET', '/api/v1/catalogue')).doc.items;
  assert.equal(await page.locator('.product-option:visible').count(), cat.length, 'every product listed');
  await page.getByRole('radio', { name: /Afvalkalender/ }).check();
  await fillAndSend(page, who, 'Wanneer wordt het glas opgehaald?');
  const ref = await readReference(page);
  await screenshot(page, 'eloket-bevestiging-zonder-js');
  const c = await contactOf(ref);
  assert.equal(c.channel, 'web');
  assert.equal(c.product, 'afvalkalender');
  assert.equal(c.reference, ref);
  await page.context().close();
});

test('the language link gives the form in English, and the question is registered in English', async () => {
  const page = await openForm();
  assert.equal(await page.locator('html').getAttribute('lang'), 'nl-BE');
  await Promise.all([page.waitForNavigation(), page.getByRole('link', { name: 'English' }).click()]);
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  await page.getByRole('heading', { name: 'Ask your question', level: 1 }).waitFor();
  const who = citizen();
  await page.getByRole('radio', { name: /Afvalkalender/ }).check();
  await page.getByLabel('Your question').fill('When is the glass collected?');
  await page.getByLabel('Your name').fill(who.name);
  await page.getByLabel('Email address').fill(who.email);
  await page.getByLabel(/I have read what happens to my data/).check();
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Send my question' }).click()]);
  await page.getByRole('heading', { name: 'We received your question', level: 1 }).waitFor();
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  const c = await contactOf((await page.locator('#reference').textContent()).trim());
  assert.equal(c.language, 'en');
  assert.equal(c.channel, 'web');
  await page.context().close();
});

test('an invalid email shows beside its field, linked from the summary, with the input kept', async () => {
  for (const js of [true, false]) {
    const page = await openForm({ javaScriptEnabled: js });
    await page.getByRole('radio', { name: /Afvalkalender/ }).check();
    await page.getByLabel('Uw vraag').fill('Mijn vraag over de ophaling <b>"glas"</b>');
    await page.getByLabel('Uw naam').fill('Jef Janssens');
    await page.getByLabel('E-mailadres').fill('jef-at-example');
    await page.getByLabel(/Ik heb gelezen/).check();
    const [resp] = await Promise.all([page.waitForNavigation(),
      page.getByRole('button', { name: 'Vraag versturen' }).click()]);
    assert.equal(resp.status(), 422);
    const summary = page.locator('#error-summary');
    assert.equal(await summary.getAttribute('role'), 'alert');
    const link = summary.locator('a[href="#email"]');
    assert.equal(await link.count(), 1, 'the summary links to the email field');
    const email = page.locator('#email');
    assert.equal(await email.getAttribute('aria-invalid'), 'true');
    assert.match(await email.getAttribute('aria-describedby'), /\bemail-error\b/);
    const msg = (await page.locator('#email-error').textContent()).trim();
    assert.ok(msg.length > 6, 'the field says what is wrong');
    assert.equal((await link.textContent()).trim(), msg.replace(/^Fout:\s*/, ''));
    // Everything typed is still there, the choice too.
    assert.equal(await page.getByLabel('Uw vraag').inputValue(), 'Mijn vraag over de ophaling <b>"glas"</b>');
    assert.equal(await page.getByLabel('Uw naam').inputValue(), 'Jef Janssens');
    assert.equal(await email.inputValue(), 'jef-at-example');
    assert.ok(await page.getByRole('radio', { name: /Afvalkalender/ }).isChecked());
    assert.ok(await page.getByLabel(/Ik heb gelezen/).isChecked());
    if (js) assert.equal(await page.evaluate(() => document.activeElement.id), 'error-summary');
    await screenshot(page, `eloket-fout-email-${js ? 'js' : 'zonder-js'}`);
    // The summary's link takes the citizen to the field.
    await link.click();
    assert.equal(new URL(page.url()).hash, '#email');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'email');
    // In sight: the field with its label and its message above it.
    await until(page, () => ['label[for=email]', '#email-error', '#email'].every((sel) => {
      const r = document.querySelector(sel).getBoundingClientRect();
      return r.top >= 0 && r.bottom <= window.innerHeight;
    }));
    await page.context().close();
  }
});

test('a PDF and a PNG arrive byte for byte on the contact', async () => {
  const pdf = pdfBytes();
  const png = pngBytes();
  const page = await openForm();
  const who = citizen();
  await page.getByRole('radio', { name: /Attest van gezinssamenstelling/ }).check();
  await page.getByLabel(/Bijlagen/).setInputFiles([
    { name: 'trouwboekje.pdf', mimeType: 'application/pdf', buffer: pdf },
    { name: 'foto.png', mimeType: 'image/png', buffer: png },
  ]);
  await fillAndSend(page, who, 'In bijlage mijn trouwboekje en een foto.');
  const ref = await readReference(page);
  const c = await contactOf(ref);
  const msgs = (await d.api('GET', `/api/v1/contacts/${c.id}/messages`)).doc.items;
  const atts = msgs.filter((m) => m.direction === 'in').flatMap((m) => m.attachments);
  assert.deepEqual(atts.map((a) => [a.name, a.content_type, a.size]).sort(),
    [['foto.png', 'image/png', png.length], ['trouwboekje.pdf', 'application/pdf', pdf.length]]);
  for (const [name, bytes] of [['trouwboekje.pdf', pdf], ['foto.png', png]]) {
    const a = atts.find((x) => x.name === name);
    assert.equal(a.sha256, crypto.createHash('sha256').update(bytes).digest('hex'));
    const r = await fetch(d.url(`/api/v1/contacts/${c.id}/attachments/${a.sha256}`),
      { headers: { Authorization: `Bearer ${d.adminToken}` } });
    assert.equal(r.status, 200);
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(bytes), `${name} is byte-identical`);
  }
  await page.context().close();
});

test('the products are grouped by theme in fieldsets with legends, digital ones first', async () => {
  const cat = (await d.api('GET', '/api/v1/catalogue')).doc.items;
  const themes = [];
  for (const p of cat) if (p.theme && !themes.includes(p.theme)) themes.push(p.theme);
  assert.ok(themes.length >= 2, 'the shipped catalogue has themes');
  const page = await openForm({ javaScriptEnabled: false });
  const groups = page.locator('fieldset.product-group');
  const legends = (await groups.locator('legend').allTextContents()).map((s) => s.trim());
  const expected = cat.some((p) => !p.theme) ? [...themes, 'Andere vragen'] : themes;
  assert.deepEqual(legends, expected);
  for (let i = 0; i < legends.length; i++) {
    const codes = await groups.nth(i).locator('input[type=radio]').evaluateAll((els) => els.map((e) => e.value));
    const want = cat.filter((p) => (p.theme || 'Andere vragen') === legends[i]);
    // Digital ones first, each half in the catalogue's order.
    assert.deepEqual(codes, [...want.filter((p) => p.digital), ...want.filter((p) => !p.digital)].map((p) => p.code),
      `the products under ${legends[i]}`);
    const tags = await groups.nth(i).locator('.product-option').evaluateAll((els) =>
      els.map((e) => /volledig digitaal/.test(e.textContent)));
    assert.deepEqual(tags, [...tags].sort((a, b) => b - a), `digital first under ${legends[i]}`);
  }
  await page.context().close();
});

test('the status page shows the answer once a staff member sent it from the staff UI', async () => {
  const who = citizen();
  const page = await openForm();
  await page.getByRole('radio', { name: /Attest van nationaliteit/ }).check();
  await fillAndSend(page, who, 'Hoe lang is een attest van nationaliteit geldig?');
  const ref = await readReference(page);
  const c = await contactOf(ref);
  // The acknowledgement the confirmation page promised reaches the citizen, with the reference.
  const ackDeadline = Date.now() + 20000;
  while (!sink.mails.some((m) => m.to.includes(who.email) && m.text.includes(ref))) {
    assert.ok(Date.now() < ackDeadline, `no acknowledgement mail for ${ref}\n${d.log().slice(-3000)}`);
    await sleep(200);
  }

  const lookUp = async (p) => {
    await p.goto(d.url('/loket/status'));
    await p.getByLabel('Referentienummer').fill(ref);
    await p.getByLabel('E-mailadres of telefoonnummer').fill(who.email);
    await Promise.all([p.waitForNavigation(), p.getByRole('button', { name: 'Bekijk de stand' }).click()]);
    await p.getByRole('heading', { name: `Uw vraag ${ref}`, level: 1 }).waitFor();
  };
  // Before any answer: received, the date expected, no answer.
  await lookUp(page);
  assert.equal((await page.locator('#status').textContent()).trim(), 'Ontvangen, in behandeling');
  assert.equal(await page.locator('#answer').count(), 0);

  // A staff member answers in the staff UI's contact page.
  const answer = 'Beste,\n\nEen attest van nationaliteit is drie maanden geldig.\n\nMet vriendelijke groeten';
  const staff = await newPage(browser, { viewport: DESKTOP });
  await signIn(staff, d, AGENT);
  await staff.goto(d.url(`/contact.html?id=${c.id}`));
  await staff.getByRole('heading', { name: `Contact ${ref}`, level: 1 }).waitFor();
  await settled(staff);
  await staff.getByLabel('Bericht').fill(answer);
  await staff.getByRole('button', { name: 'Versturen' }).click();
  await staff.getByText('Bericht staat klaar om te versturen.').waitFor();
  await screenshot(staff, 'eloket-staff-antwoord');
  await staff.context().close();

  // chan_email sends it (to the sink); then, and only then, the status page shows it.
  const deadline = Date.now() + 20000;
  let out;
  for (;;) {
    const msgs = (await d.api('GET', `/api/v1/contacts/${c.id}/messages`)).doc.items;
    out = msgs.find((m) => m.direction === 'out' && m.actor === AGENT.name);
    if (out && out.status === 'sent') break;
    assert.ok(Date.now() < deadline, `the answer was not sent: ${JSON.stringify(out)}\n${d.log().slice(-3000)}`);
    await sleep(200);
  }
  assert.deepEqual(out.recipients, [who.email]);
  const mailed = sink.mails.filter((m) => m.to.includes(who.email) && m.text.includes('drie maanden geldig'));
  assert.equal(mailed.length, 1, 'the citizen got the answer by mail');

  const citizenPage = await newPage(browser, { viewport: DESKTOP });
  await lookUp(citizenPage);
  assert.equal((await citizenPage.locator('#answer').textContent()), answer);
  assert.equal((await citizenPage.locator('#status').textContent()).trim(), 'Beantwoord');
  assert.match(await citizenPage.locator('#expected').getAttribute('datetime'), /^\d{4}-\d\d-\d\d$/);
  await screenshot(citizenPage, 'eloket-status-antwoord');
  await citizenPage.context().close();
  await page.context().close();
});

test('the form can be completed and sent with Tab, Space and Enter alone', async () => {
  const who = citizen();
  const page = await openForm();
  const focused = () => page.evaluate(() => {
    const e = document.activeElement;
    return { id: e.id, tag: e.tagName, type: e.type || '', name: e.name || '', value: e.value || '' };
  });
  let product = null;
  let sent = false;
  for (let i = 0; i < 60 && !sent; i++) {
    await page.keyboard.press('Tab');
    const f = await focused();
    assert.notEqual(f.id, 'website', 'the honeypot is out of the tab order');
    if (f.name === 'product' && !product) {
      await page.keyboard.press('Space');
      product = f.value;
      assert.ok(await page.locator(`input[name=product][value="${product}"]`).isChecked(), 'Space selects the product');
    } else if (f.id === 'question') {
      await page.keyboard.type('Kan ik mijn attest per post krijgen?');
    } else if (f.id === 'name') {
      await page.keyboard.type(who.name);
    } else if (f.id === 'email') {
      await page.keyboard.type(who.email);
    } else if (f.id === 'privacy') {
      await page.keyboard.press('Space');
      assert.ok(await page.locator('#privacy').isChecked(), 'Space ticks the privacy box');
    } else if (f.tag === 'BUTTON' && f.type === 'submit') {
      assert.ok(product, 'a product radio is reached by Tab before the button');
      await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
      sent = true;
    }
  }
  assert.ok(sent, 'Tab reaches the submit button');
  const ref = await readReference(page);
  const c = await contactOf(ref);
  assert.equal(c.product, product);
  assert.equal(c.body, 'Kan ik mijn attest per post krijgen?');
  await page.context().close();
});

test('at 320 px CSS width the form needs no horizontal scrolling', async () => {
  for (const js of [true, false]) {
    const page = await openForm({ viewport: PHONE, javaScriptEnabled: js });
    const [sw, cw] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok(sw <= cw, `scrollWidth ${sw} <= clientWidth ${cw}`);
    // And with every error shown.
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Vraag versturen' }).click()]);
    await page.locator('#error-summary').waitFor();
    const [sw2, cw2] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert.ok(sw2 <= cw2, `with errors: scrollWidth ${sw2} <= clientWidth ${cw2}`);
    await page.context().close();
  }
});

// axe on each page at each width; a POST's page is brought about again in axe's copy.
test('axe-core finds no serious or critical violation on the form, errors, confirmation and status pages', async () => {
  const who = citizen();
  const pages = {
    form: { path: '/loket' },
    'form-errors': {
      path: '/loket',
      prepare: async (p) => {
        await p.locator('#email').fill('niet-een-adres');
        await Promise.all([p.waitForNavigation(), p.locator('button[type=submit]').click()]);
        await p.locator('#error-summary').waitFor();
      },
    },
    confirmation: {
      path: '/loket',
      prepare: async (p) => {
        await p.locator('input[value=afvalkalender]').check();
        await fillAndSend(p, who, 'Een vraag voor axe.');
        await p.locator('#reference').waitFor();
      },
    },
    status: { path: '/loket/status' },
    'status-result': {
      path: '/loket/status',
      prepare: async (p) => {
        const ref = await referenceFor(who);
        await p.locator('#reference').fill(ref);
        await p.locator('#contact').fill(who.email);
        await Promise.all([p.waitForNavigation(), p.locator('button[type=submit]').click()]);
        await p.locator('#status').waitFor();
      },
    },
    'status-not-found': {
      path: '/loket/status',
      prepare: async (p) => {
        await p.locator('#reference').fill('2020-999999');
        await p.locator('#contact').fill('niemand@example.be');
        const [r] = await Promise.all([p.waitForNavigation(), p.locator('button[type=submit]').click()]);
        assert.equal(r.status(), 404);
      },
    },
  };
  const problems = [];
  for (const [name, { path: p, prepare }] of Object.entries(pages)) {
    for (const [size, viewport] of [['320', PHONE], ['1280', DESKTOP]]) {
      for (const lang of ['', '?lang=en']) {
        const page = await newPage(browser, { viewport });
        await page.goto(d.url(p + lang));
        await settled(page);
        if (prepare) await prepare(page);
        await screenshot(page, `eloket-axe-${name}-${size}${lang ? '-en' : ''}`);
        // axe's copy opens the same URL at the same size and repeats what led here.
        const v = await axeViolations(page, async (copy) => {
          await copy.setViewportSize(viewport);
          if (prepare) {
            await copy.goto(d.url(p + lang));
            await settled(copy);
            await prepare(copy);
          }
        });
        if (v.length) problems.push(`${name} at ${size}${lang}: ${v.join('; ')}`);
        await page.context().close();
      }
    }
  }
  assert.deepEqual(problems, []);
});

let axeRef = null;
// One question made for the status result's axe runs (made once, through the form).
async function referenceFor(who) {
  if (axeRef) return axeRef;
  const page = await openForm();
  await page.getByRole('radio', { name: /Afvalkalender/ }).check();
  await fillAndSend(page, who, 'Een vraag om de stand van op te zoeken.');
  axeRef = await readReference(page);
  await page.context().close();
  return axeRef;
}
