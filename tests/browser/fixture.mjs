// fixture.mjs: what the browser tests share: a real loketd from the build tree on a temp
// data_dir (the example config as `make run` rewrites it: the source tree's rules, catalogue,
// calendars and web/; SQLite), users and tokens made with loketctl, Debian's Chromium
// through playwright-core, a screenshot of every page looked at, and axe-core.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
export const SRCDIR = path.resolve(process.env.LOKET_SRCDIR || path.join(here, '..', '..'));
export const BUILDDIR = path.resolve(process.env.LOKET_BUILDDIR || path.join(SRCDIR, 'build', 'default'));
export const CHROMIUM = process.env.LOKET_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.resolve(process.env.LOKET_ARTIFACTS || path.join(BUILDDIR, 'artifacts'));
const LOKETD = path.join(BUILDDIR, 'core', 'loketd');
const LOKETCTL = path.join(BUILDDIR, 'core', 'loketctl');

export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; " +
  "form-action 'self'; frame-ancestors 'none'";

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The example config rewritten for this run, as the Makefile's `run` target does.
function config(dir, port, plugins, pluginConf) {
  const example = fs.readFileSync(path.join(SRCDIR, 'etc', 'loket.conf.example'), 'utf8');
  let sock = path.join(dir, 'data', 'loketd.sock');
  if (sock.length >= 100) sock = path.join(os.tmpdir(), `loket-browser-${process.pid}-${port}.sock`);
  return example
    .replace(/^listen = .*$/m, `listen = 127.0.0.1:${port}`)
    .replace(/^data_dir = .*$/m, `data_dir = ${path.join(dir, 'data')}`)
    .replace(/^plugin_dir = .*$/m, `plugin_dir = ${path.join(BUILDDIR, 'plugins', '.libs')}`)
    .replace(/^;?control_socket =.*$/m, `control_socket = ${sock}`)
    .replace(/^web_dir = .*$/m, `web_dir = ${path.join(SRCDIR, 'web')}`)
    .replace(/^durability = .*$/m, 'durability = relaxed')
    .replace(/^dir = .*rules$/m, `dir = ${path.join(SRCDIR, 'scripts', 'rules')}`)
    .replaceAll('/usr/local/etc/loket/', path.join(SRCDIR, 'etc') + '/')
    // The example's own plugins (chan_web, whose [plugin.chan_web] section it keeps: a
    // section for a plugin not loaded is a config error) and the test's.
    .replace(/^plugins =(.*)$/m, (_, have) => `plugins = ${[...new Set([
      ...have.trim().split(/[\s,]+/).filter(Boolean), ...plugins])].join(' ')}`) +
    Object.entries(pluginConf).map(([name, keys]) => `\n[plugin.${name}]\n` +
      Object.entries(keys).map(([k, v]) => `${k} = ${v}\n`).join('')).join('');
}

export class Loketd {
  // plugins: names in the build's plugins/.libs; pluginConf: {name: {key: value}}.
  // ownAnswers: the catalogue's standard answers are a copy in the temp dir, so that a test
  // may PUT /api/v1/catalogue/{code}/answer without writing into the source tree.
  constructor({ plugins = [], pluginConf = {}, ownAnswers = false } = {}) {
    this.plugins = plugins;
    this.pluginConf = pluginConf;
    this.ownAnswers = ownAnswers;
  }

  async start() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loket-browser-'));
    fs.mkdirSync(path.join(this.dir, 'data'));
    this.port = await freePort();
    this.base = `http://127.0.0.1:${this.port}`;
    this.conf = path.join(this.dir, 'loket.conf');
    let conf = config(this.dir, this.port, this.plugins, this.pluginConf);
    if (this.ownAnswers) {
      const answers = path.join(this.dir, 'answers');
      fs.cpSync(path.join(SRCDIR, 'etc', 'answers'), answers, { recursive: true });
      conf = conf.replace(/^;?answers = .*$/m, `answers = ${answers}`);
    }
    fs.writeFileSync(this.conf, conf);
    this.logPath = path.join(this.dir, 'loketd.log');
    const log = fs.openSync(this.logPath, 'a');
    this.proc = spawn(LOKETD, ['-c', this.conf], { stdio: ['ignore', log, log], cwd: this.dir });
    fs.closeSync(log);
    this.exited = new Promise((r) => this.proc.on('exit', (code, sig) => r(code ?? sig)));
    const deadline = Date.now() + 15000;
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`loketd exited:\n${this.log()}`);
      try {
        const r = await fetch(this.url('/healthz'));
        if (r.status === 200) break;
      } catch (e) {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`loketd did not answer /healthz:\n${this.log()}`);
      await sleep(50);
    }
    this.adminToken = this.token('browser-admin', 'admin');
    return this;
  }

  url(p) {
    return this.base + p;
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch (e) {
      return '';
    }
  }

  // loketctl -c CONF ARGS; input goes to its standard input.
  ctl(args, input) {
    return spawnSync(LOKETCTL, ['-c', this.conf, ...args], {
      input: input ?? '', encoding: 'utf8', timeout: 20000,
    });
  }

  // `loketctl token add NAME ROLE [--department D]... [--organisation O]`: the bearer token.
  token(name, role, { departments = [], organisation } = {}) {
    const args = ['token', 'add', name, role];
    for (const d of departments) args.push('--department', d);
    if (organisation) args.push('--organisation', organisation);
    const r = this.ctl(args);
    const m = /lkt_[A-Za-z0-9_-]+/.exec(r.stdout || '');
    if (r.status !== 0 || !m) throw new Error(`loketctl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return m[0];
  }

  // `loketctl user add NAME ROLE ...` with the password on standard input (the auth helper's
  // command; docs/api.md). Throws with loketctl's words when it fails.
  user(name, role, password, { departments = [], organisation, extension } = {}) {
    const args = ['user', 'add', name, role];
    for (const d of departments) args.push('--department', d);
    if (organisation) args.push('--organisation', organisation);
    if (extension) args.push('--extension', extension);
    const r = this.ctl(args, password + '\n');
    if (r.status !== 0) throw new Error(`loketctl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return { name, role, password };
  }

  // An API call with the admin token (or another); answers {status, headers, doc}.
  async api(method, p, body, token) {
    const headers = { Authorization: `Bearer ${token || this.adminToken}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(this.url(p), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let doc = null;
    try {
      doc = text ? JSON.parse(text) : null;
    } catch (e) {
      doc = text;
    }
    return { status: r.status, headers: r.headers, doc };
  }

  // Whether the daemon routes method path (a route not built yet answers the router's 404).
  async routed(method, p) {
    const r = await this.api(method, p, method === 'GET' || method === 'HEAD' ? undefined : {});
    return !(r.status === 404 && r.doc && r.doc.detail === 'no such resource');
  }

  async stop() {
    if (!this.proc) return;
    if (this.proc.exitCode === null) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
      this.code = await this.exited;
      clearTimeout(t);
    }
    if (process.env.LOKET_KEEP_TMP !== '1') fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Skips the test t (with a message naming what is missing) unless every route answers;
// answers whether the test may go on. Routes the other helpers of issue 15 build land on
// merge; until then the workflow tests wait for them instead of failing main.
export async function needRoutes(t, d, routes) {
  const missing = [];
  for (const [method, p] of routes) if (!(await d.routed(method, p))) missing.push(`${method} ${p}`);
  if (missing.length) {
    t.skip(`backend not built yet: ${missing.join(', ')} answers 404`);
    return false;
  }
  return true;
}

// The user add command too (the auth helper's loketctl side).
export function needUserCommand(t, d) {
  const r = d.ctl(['user', 'list']);
  if (r.status !== 0 && /unknown|usage|not a command/i.test(r.stdout + r.stderr)) {
    t.skip(`loketctl user is not built yet: ${(r.stderr || r.stdout).trim().split('\n')[0]}`);
    return false;
  }
  return true;
}

let chromium = null;
export async function launch() {
  if (!chromium) ({ chromium } = require('playwright-core'));
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
    headless: true,
  });
}

// A context under the page's real CSP (bypassCSP only in axe's own context, below).
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ locale: 'nl-BE', ...options });
  const page = await context.newPage();
  page.consoleLines = [];
  page.pageErrors = [];
  page.on('console', (m) => page.consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.pageErrors.push(String(e)));
  return page;
}

// Keeps a full-page screenshot as ARTIFACTS/screenshots/NAME.png.
export async function screenshot(page, name) {
  const dir = path.join(ARTIFACTS, 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name.replace(/[^A-Za-z0-9_.-]+/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// Waits until a page shows what it loaded: its title heading and nothing still "Laden…"
// (never 'networkidle': the pages hold the event stream open, so the network is never idle).
export async function settled(page) {
  await page.locator('main h1').first().waitFor();
  await until(page, () => !/Laden…|Loading…/.test(document.querySelector('main').textContent));
}

// Waits until fn(arg), run in the page, answers something true (polled from here: the pages'
// policy forbids the eval that page.waitForFunction polls with).
export async function until(page, fn, arg, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${fn}`);
    await sleep(50);
  }
}

const AXE = () => fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// Runs axe-core (WCAG 2.1 A and AA) on what page shows now, in a second context that shares
// its cookies and bypasses the CSP for the injection only; answers the serious and critical
// violations as readable lines (empty: none). prepare(page2) brings the copy to the same
// state when showing the URL is not enough.
export async function axeViolations(page, prepare) {
  const browser = page.context().browser();
  const state = await page.context().storageState();
  const context = await browser.newContext({ locale: 'nl-BE', bypassCSP: true, storageState: state });
  try {
    const copy = await context.newPage();
    await copy.goto(page.url());
    await settled(copy);
    if (prepare) await prepare(copy);
    await copy.addScriptTag({ content: AXE() });
    const result = await copy.evaluate(() => window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
    }));
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  } finally {
    await context.close();
  }
}

// Signs in through the page as a person would; waits for the page the role lands on.
export async function signIn(page, d, user) {
  await page.goto(d.url('/'));
  await page.getByLabel('Gebruikersnaam').fill(user.name);
  await page.getByLabel('Wachtwoord').fill(user.password);
  await page.getByRole('button', { name: 'Aanmelden' }).click();
  await page.waitForURL((u) => u.pathname !== '/' && u.pathname !== '/index.html');
}
