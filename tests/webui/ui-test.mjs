// Drives Conclave's web UI in Debian's headless Chromium the way a user would: log in with the
// token, open a group, send a message and see it arrive live from the event stream, see a
// message sent by another path (the CLI) arrive live too, reply from the ledger and from an
// actor's inbox, acknowledge, survive a gateway restart, fit a 360 px wide phone, log out.
//
// Usage: node ui-test.mjs --url http://127.0.0.1:PORT --token-file FILE --group G --actor A
//                         [--artifacts DIR]
// Environment:
//   CONCLAVE_UI_SEND_CMD     shell command that sends "$1" to actor A of group G with
//                            attention set, by another path than the browser (e.g. `conclave send`)
//   CONCLAVE_UI_RESTART_CMD  optional: shell command that kills the gateway (it is restarted by
//                            the supervisor); the stream must resume with nothing missed or doubled
//   CHROMIUM                 the browser (default /usr/bin/chromium)
// Writes screenshots and result.json (the event ids it saw) to the artifacts directory.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    'token-file': { type: 'string' },
    group: { type: 'string' },
    actor: { type: 'string' },
    artifacts: { type: 'string', default: 'artifacts' },
  },
});
for (const k of ['url', 'token-file', 'group', 'actor'])
  if (!opt[k]) {
    console.error(`ui-test: --${k} is required`);
    process.exit(2);
  }
const token = readFileSync(opt['token-file'], 'utf8').trim();
const group = opt.group;
const actor = opt.actor;
const artifacts = opt.artifacts;
mkdirSync(artifacts, { recursive: true });
const sendCmd = process.env.CONCLAVE_UI_SEND_CMD;
const restartCmd = process.env.CONCLAVE_UI_RESTART_CMD;
const TIMEOUT = 15000;
const stamp = Date.now().toString(36);
const result = { group, actor };

function ok(what) {
  console.log(`ok: ${what}`);
}

function shell(cmd, arg) {
  return execFileSync('bash', ['-c', cmd, 'ui-test', arg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(TIMEOUT);

// Anything the page's script throws, and anything the Content-Security-Policy refused, fails
// the test: the page must work under the policy the gateway sends.
const problems = [];
page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
page.on('console', (msg) => {
  const text = msg.text();
  if (/Content Security Policy|Refused to/i.test(text)) problems.push(`console: ${text}`);
});

let step = 'start';
async function shot(name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

function checkProblems() {
  if (problems.length) throw new Error(problems.join('\n'));
}

// The ledger's chat messages whose text is exactly t.
const ledgerMessage = (t) => page.locator('#ledger li.msg').filter({ has: page.locator('p.msg-text', { hasText: t }) });

async function waitForLedger(t) {
  await ledgerMessage(t).first().waitFor({ state: 'visible' });
  const n = await ledgerMessage(t).count();
  if (n !== 1) throw new Error(`"${t}" is in the ledger ${n} times`);
  return ledgerMessage(t).first();
}

// Seqs in the ledger strictly increase by one: nothing missed, nothing doubled.
async function checkLedgerOrder() {
  const seqs = await page.locator('#ledger li').evaluateAll((lis) => lis.map((li) => Number(li.dataset.seq)));
  for (let i = 1; i < seqs.length; i++)
    if (seqs[i] !== seqs[i - 1] + 1) throw new Error(`ledger seqs not contiguous: ${seqs[i - 1]} then ${seqs[i]}`);
  return seqs;
}

async function noHorizontalOverflow(where) {
  const o = await page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = [...document.querySelectorAll('body *')]
      .filter((e) => e.getClientRects().length && e.getBoundingClientRect().right > width + 1)
      .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).replace(/ /g, '.') : ''));
    return { width, scroll: document.documentElement.scrollWidth, wide: wide.slice(0, 5) };
  });
  if (o.scroll > o.width || o.wide.length)
    throw new Error(`${where} overflows ${o.width} px: scrollWidth ${o.scroll}, ${o.wide.join(' ')}`);
}

async function sendFromBrowser(text, { to, replyRequired, attention } = {}) {
  await page.fill('#compose-text', text);
  if (to !== undefined) await page.fill('#compose-to', to);
  await page.setChecked('#compose-reply-required', !!replyRequired);
  await page.setChecked('#compose-attention', !!attention);
  await page.click('#compose-send');
  await page.locator('#compose-status', { hasText: /^Sent #\d+$/ }).waitFor();
  return Number((await page.textContent('#compose-status')).replace('Sent #', ''));
}

try {
  step = 'login';
  const response = await page.goto(opt.url);
  const csp = response.headers()['content-security-policy'] || '';
  if (!/script-src 'self'/.test(csp) || !/style-src 'self'/.test(csp))
    throw new Error(`the page is served without a strict Content-Security-Policy: "${csp}"`);
  await page.locator('#login-view').waitFor({ state: 'visible' });
  await page.fill('#login-token', 'not-the-token');
  await page.click('#login-submit');
  await page.locator('#login-error', { hasText: 'not valid' }).waitFor();
  await shot('01-login-refused');
  await page.fill('#login-token', token);
  await page.click('#login-submit');
  await page.locator('#groups-view').waitFor({ state: 'visible' });
  if ((await page.evaluate(() => sessionStorage.getItem('conclave.token'))) !== token)
    throw new Error('the token is not kept in sessionStorage');
  const card = page.locator(`#group-list a.card[data-group="${group}"]`);
  await card.waitFor();
  const cardState = await card.locator('.badge').textContent();
  ok(`logged in (a wrong token was refused); group ${group} listed as ${cardState}`);
  await shot('02-groups');

  step = 'open group';
  await card.click();
  await page.locator('#group-view').waitFor({ state: 'visible' });
  await page.locator('#stream-state', { hasText: /^live$/ }).waitFor();
  await page.locator(`#actor-list li[data-actor="${actor}"]`).waitFor();
  await page.locator('#actor-list li[data-actor="operator"]').waitFor();
  // A marker that a reload would lose: everything below must arrive without one.
  await page.evaluate(() => { window.uiTestMarker = 1; });
  ok('group view: actors listed, event stream live');

  step = 'send from the browser';
  const browserText = `hello <b>${actor}</b> from the browser ${stamp}`;
  const sentSeq = await sendFromBrowser(browserText, { to: actor, replyRequired: true });
  const sent = await waitForLedger(browserText);
  if (Number(await sent.getAttribute('data-seq')) !== sentSeq) throw new Error('the ledger shows another seq than the send answered');
  if ((await sent.locator('p.msg-text b').count()) !== 0) throw new Error('message text was rendered as HTML');
  if (!(await sent.locator('.msg-to').textContent()).includes(actor)) throw new Error('recipient not shown');
  await sent.locator('.flag.reply').waitFor();
  result.browser_message = await sent.getAttribute('data-id');
  ok(`sent #${sentSeq} from the browser; it arrived live in the ledger, escaped, flagged reply required`);

  step = 'message from another path';
  if (!sendCmd) throw new Error('CONCLAVE_UI_SEND_CMD is not set');
  const cliText = `from the CLI ${stamp}: please acknowledge`;
  const cliOut = shell(sendCmd, cliText);
  const cli = await waitForLedger(cliText);
  await cli.locator('.flag.attention').waitFor();
  result.cli_message = await cli.getAttribute('data-id');
  if (cliOut.includes(result.cli_message) === false) throw new Error(`the CLI's event id is not the one shown: ${cliOut}`);
  ok('a message sent with the CLI appeared live, marked attention');
  await shot('03-ledger');

  step = 'reply from the ledger';
  await sent.click();
  await page.locator('#reply-target', { hasText: `Reply to #${sentSeq}` }).waitFor();
  const ledgerReplyText = `operator answers itself ${stamp}`;
  await sendFromBrowser(ledgerReplyText);
  const ledgerReply = await waitForLedger(ledgerReplyText);
  await ledgerReply.locator('.msg-ref', { hasText: `#${sentSeq}` }).waitFor();
  result.ledger_reply = await ledgerReply.getAttribute('data-id');
  ok('clicked a message in the ledger and replied to it');

  step = 'inbox';
  await page.selectOption('#inbox-actor', actor);
  const replyOb = page.locator(`#obligations li[data-event="${result.browser_message}"][data-kind="reply"]`);
  const ackOb = page.locator(`#obligations li[data-event="${result.cli_message}"][data-kind="ack"]`);
  await replyOb.waitFor();
  await ackOb.waitFor();
  await page.locator('#unread li', { hasText: cliText }).waitFor();
  await shot('04-inbox');
  ok(`${actor}'s inbox: owes a reply and an ack, both messages unread`);

  await replyOb.locator('button', { hasText: 'Reply' }).click();
  if ((await page.inputValue('#compose-by')) !== actor) throw new Error(`replying from ${actor}'s inbox does not reply as ${actor}`);
  const inboxReplyText = `${actor} replies from the inbox ${stamp}`;
  await sendFromBrowser(inboxReplyText);
  const inboxReply = await waitForLedger(inboxReplyText);
  if ((await inboxReply.locator('.msg-from').textContent()) !== actor) throw new Error('the reply is not by the actor');
  result.inbox_reply = await inboxReply.getAttribute('data-id');
  await replyOb.waitFor({ state: 'detached' });
  await ackOb.locator('button', { hasText: 'Ack' }).click();
  await ackOb.waitFor({ state: 'detached' });
  await page.locator(`#ledger li[data-kind="chat.ack"]`, { hasText: `${actor}` }).last().waitFor();
  await page.click('#inbox-mark-read');
  await page.locator('#unread-empty').waitFor({ state: 'visible' });
  ok(`replied as ${actor} from its inbox and acked: its obligations closed; mark read emptied the inbox`);

  if (restartCmd) {
    step = 'gateway restart';
    // Every state the stream badge goes through from now on (a short outage is quick to see).
    await page.evaluate(() => {
      window.streamStates = [];
      const badge = document.getElementById('stream-state');
      new MutationObserver(() => window.streamStates.push(badge.textContent))
        .observe(badge, { childList: true, characterData: true, subtree: true });
    });
    shell(restartCmd, '');
    await page.waitForFunction(() => window.streamStates.some((s) => s !== 'live'));
    const duringText = `sent while the gateway was down ${stamp}`;
    shell(sendCmd, duringText);
    await page.locator('#stream-state', { hasText: /^live$/ }).waitFor({ timeout: 40000 });
    await waitForLedger(duringText);
    ok('the event stream resumed after a gateway restart; the message sent meanwhile is there once');
  }

  step = 'ledger order';
  const seqs = await checkLedgerOrder();
  if ((await page.evaluate(() => window.uiTestMarker)) !== 1) throw new Error('the page reloaded');
  result.last_seq = seqs[seqs.length - 1];
  ok(`ledger seqs ${seqs[0]}..${result.last_seq}, contiguous, no duplicates, no reload`);
  await shot('05-group-desktop');

  step = 'phone width';
  await page.setViewportSize({ width: 360, height: 740 });
  await page.locator('#ledger li').first().waitFor();
  await noHorizontalOverflow('group view');
  await shot('06-group-phone');
  await sent.click();
  await page.locator('#reply-target').waitFor({ state: 'visible' });
  await noHorizontalOverflow('group view while replying');
  await page.click('#reply-cancel');
  await page.click('a.back');
  await page.locator('#groups-view').waitFor({ state: 'visible' });
  await noHorizontalOverflow('groups view');
  await shot('07-groups-phone');
  ok('at 360x740 nothing is wider than the screen');

  step = 'log out';
  await page.click('#logout');
  await page.locator('#login-view').waitFor({ state: 'visible' });
  await noHorizontalOverflow('login view');
  await shot('08-logged-out-phone');
  if ((await page.evaluate(() => sessionStorage.getItem('conclave.token'))) !== null) throw new Error('log out kept the token');
  ok('log out forgets the token');

  checkProblems();
  writeFileSync(join(artifacts, 'result.json'), JSON.stringify(result, null, 2) + '\n');
  console.log(`web UI test passed; screenshots in ${artifacts}`);
  await browser.close();
} catch (err) {
  console.error(`FAIL at step "${step}": ${err.message}`);
  if (problems.length) console.error(problems.join('\n'));
  try {
    await shot('failure');
    writeFileSync(join(artifacts, 'failure.html'), await page.content());
  } catch (e) {
    // the page may be gone
  }
  await browser.close();
  process.exit(1);
}
