// Conclave web UI: log in with the gateway's token, list groups, and per group show the actors,
// the live ledger (Server-Sent Events read with fetch, since EventSource cannot send an
// Authorization header), an actor's inbox and obligations, and a box to send or reply.
// Every piece of data reaches the page through textContent or attributes, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'conclave.token';
  const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const INITIAL_EVENTS = 200;   // how much history the ledger view starts with
  const EARLIER_PAGE = 200;     // "Earlier" loads this many more
  const LEDGER_MAX = 2000;      // events kept on the page; older ones are dropped
  const TEXT_PREVIEW = 140;
  const STREAM_IDLE_MS = 45000; // the gateway sends a heartbeat every 15 s
  const STREAM_BUFFER_MAX = 8 * 1024 * 1024;
  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const enc = encodeURIComponent;

  let token = sessionStorage.getItem(TOKEN_KEY) || '';

  // Everything about the group on screen; replaced whole when another group opens.
  let g = null;
  let groupsTimer = null;

  // --- small helpers -------------------------------------------------------------------

  // el('li', {class: 'x', text: 'y'}, child…): children are nodes or plain strings (text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = String(v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function sleep(ms, wake) {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      if (wake) wake.fn = () => { clearTimeout(t); resolve(); };
    });
  }

  function formatTime(ts) {
    if (!ts) return '';
    const d = new Date(ts);
    if (Number.isNaN(d.getTime())) return String(ts);
    const today = new Date();
    return d.toDateString() === today.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function preview(text, n = TEXT_PREVIEW) {
    const s = String(text ?? '');
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  function stateClass(state) {
    switch (state) {
      case 'active': case 'running': case 'live': return 'badge ok';
      case 'paused': case 'restarting': case 'connecting': case 'reconnecting': return 'badge warn';
      case 'broken': case 'failed': case 'error': return 'badge bad';
      default: return 'badge';
    }
  }

  function showError(message) {
    $('banner-text').textContent = message;
    $('banner').hidden = false;
  }

  function clearError() {
    $('banner').hidden = true;
    $('banner-text').textContent = '';
  }

  // --- the API --------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body, opts = {}) {
    const init = {
      method,
      headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
      cache: 'no-store',
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch('/api/v1' + path, init);
    } catch (err) {
      throw new ApiError(0, 'unreachable', 'the gateway cannot be reached');
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = null;
    }
    if (res.ok) return data;
    const code = data?.error?.code || 'http_' + res.status;
    let message = data?.error?.message || `${res.status} ${res.statusText}`;
    if (res.status === 429 && res.headers.get('Retry-After'))
      message += ` (retry in ${res.headers.get('Retry-After')} s)`;
    if (res.status === 401 && !opts.login) unauthorized();
    throw new ApiError(res.status, code, message);
  }

  // --- log in / log out, and which view is shown ------------------------------------------

  function showView(name) {
    for (const v of ['login-view', 'groups-view', 'group-view']) $(v).hidden = v !== name;
    $('logout').hidden = name === 'login-view';
    if (name !== 'group-view') closeGroup();
    if (name !== 'groups-view' && groupsTimer) {
      clearInterval(groupsTimer);
      groupsTimer = null;
    }
  }

  function showLogin(message) {
    showView('login-view');
    $('daemon-status').textContent = '';
    $('login-error').textContent = message || '';
    $('login-token').focus();
  }

  function logout(message) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    clearError();
    if (location.hash && location.hash !== '#/') history.replaceState(null, '', location.pathname);
    showLogin(message);
  }

  function unauthorized() {
    logout('The gateway refused the token (401). Log in again.');
  }

  async function login(event) {
    event.preventDefault();
    const candidate = $('login-token').value.trim();
    if (!candidate) return;
    $('login-submit').disabled = true;
    $('login-error').textContent = '';
    token = candidate;
    try {
      const status = await api('GET', '/status', undefined, { login: true });
      sessionStorage.setItem(TOKEN_KEY, token);
      $('login-token').value = '';
      renderStatus(status);
      route();
    } catch (err) {
      token = '';
      $('login-error').textContent = err.status === 401 ? 'That token is not valid.' : err.message;
    } finally {
      $('login-submit').disabled = false;
    }
  }

  function renderStatus(status) {
    if (!status || typeof status !== 'object') return;
    const parts = ['conclave ' + (status.version ?? '?'), status.state ?? ''];
    $('daemon-status').textContent = parts.filter(Boolean).join(' · ');
  }

  async function loadStatus() {
    try {
      renderStatus(await api('GET', '/status'));
    } catch (err) {
      if (err.status !== 401) $('daemon-status').textContent = 'status unavailable: ' + err.message;
    }
  }

  function route() {
    if (!token) return showLogin();
    const m = /^#\/g\/([^/?#]+)$/.exec(location.hash);
    if (m) {
      let id = '';
      try {
        id = decodeURIComponent(m[1]);
      } catch (err) {
        id = '';
      }
      if (ID_RE.test(id)) return openGroup(id);
    }
    return openGroups();
  }

  // --- groups -------------------------------------------------------------------------

  function openGroups() {
    showView('groups-view');
    loadGroups();
    if (!groupsTimer)
      groupsTimer = setInterval(() => { if (!document.hidden) loadGroups(); }, 10000);
  }

  async function loadGroups() {
    let groups;
    try {
      groups = await api('GET', '/groups');
    } catch (err) {
      if (err.status !== 401) showError('Groups: ' + err.message);
      return;
    }
    const list = $('group-list');
    list.replaceChildren();
    for (const grp of Array.isArray(groups) ? groups : []) {
      const running = `${grp.running_actors ?? 0}/${grp.actor_count ?? 0} actors running`;
      const events = `${grp.last_seq ?? 0} events`;
      const last = grp.last_event_time ? 'last ' + formatTime(grp.last_event_time) : '';
      list.append(el('li', {},
        el('a', { class: 'card', href: '#/g/' + enc(grp.id), 'data-group': grp.id },
          el('div', { class: 'card-head' },
            el('strong', { text: grp.id }),
            el('span', { class: stateClass(grp.state), text: grp.state })),
          grp.title ? el('p', { text: grp.title }) : null,
          el('p', { class: 'muted', text: [running, events, last].filter(Boolean).join(' · ') }),
          grp.error ? el('p', { class: 'error', text: grp.error }) : null)));
    }
    $('groups-empty').hidden = list.children.length > 0;
  }

  async function createGroup(event) {
    event.preventDefault();
    const id = $('group-create-id').value.trim();
    const title = $('group-create-title').value.trim();
    if (!ID_RE.test(id)) {
      showError('A group id is 1-64 characters: letters, digits, _ and -.');
      return;
    }
    const body = { id };
    if (title) body.title = title;
    try {
      await api('POST', '/groups', body);
      $('group-create-id').value = '';
      $('group-create-title').value = '';
      location.hash = '#/g/' + enc(id);
    } catch (err) {
      if (err.status !== 401) showError('Create group: ' + err.message);
    }
  }

  // --- one group ------------------------------------------------------------------------

  function openGroup(id) {
    if (g && g.id === id && !$('group-view').hidden) return;
    closeGroup();
    showView('group-view');
    clearError();
    g = {
      id,
      info: null,
      messages: new Map(),  // event id → chat.message event, for replies and obligations
      lastSeq: 0,           // newest event on the page (the stream resumes after it)
      firstSeq: 1,          // oldest event on the page
      stream: null,
      replyTo: null,
      inboxActor: 'operator',
      groupTimer: null,
      inboxTimer: null,
      atBottom: true,       // the ledger follows new events while scrolled to its end
      scrollPending: false,
    };
    const mine = g;
    $('group-title').textContent = id;
    $('group-state').textContent = '';
    $('group-state').className = 'badge';
    $('group-error').hidden = true;
    $('ledger').replaceChildren();
    $('actor-list').replaceChildren();
    $('obligations').replaceChildren();
    $('unread').replaceChildren();
    $('unread-count').textContent = '';
    clearReplyTarget();
    setStreamState('connecting');
    loadGroup().then((info) => {
      if (g !== mine || !info) return;
      const after = Math.max(0, (info.last_seq ?? 0) - INITIAL_EVENTS);
      g.lastSeq = after;
      g.firstSeq = after + 1;
      $('load-earlier').hidden = after === 0;
      g.stream = new EventStream(id, after, onStreamEvent, setStreamState);
      loadInbox();
    });
  }

  function closeGroup() {
    if (!g) return;
    if (g.stream) g.stream.stop();
    clearTimeout(g.groupTimer);
    clearTimeout(g.inboxTimer);
    g = null;
  }

  async function loadGroup() {
    const mine = g;
    let info;
    try {
      info = await api('GET', `/groups/${enc(mine.id)}`);
    } catch (err) {
      if (g === mine && err.status !== 401) {
        $('group-error').textContent = err.status === 404 ? `No group "${mine.id}".` : err.message;
        $('group-error').hidden = false;
        setStreamState('error');
      }
      return null;
    }
    if (g !== mine) return null;
    g.info = info;
    renderGroup(info);
    return info;
  }

  function scheduleGroupRefresh() {
    if (!g || g.groupTimer) return;
    g.groupTimer = setTimeout(() => {
      if (!g) return;
      g.groupTimer = null;
      loadGroup();
    }, 400);
  }

  function renderGroup(info) {
    $('group-title').textContent = info.title ? `${info.id} — ${info.title}` : info.id;
    $('group-state').textContent = info.state;
    $('group-state').className = stateClass(info.state);
    $('group-error').textContent = info.error || '';
    $('group-error').hidden = !info.error;
    const allowed = {
      start: ['idle', 'stopped'],
      pause: ['active'],
      resume: ['paused'],
      stop: ['active', 'paused', 'idle'],
    };
    for (const b of document.querySelectorAll('.group-actions button'))
      b.disabled = !(allowed[b.dataset.action] || []).includes(info.state);

    const actors = Array.isArray(info.actors) ? info.actors : [];
    const list = $('actor-list');
    list.replaceChildren();
    for (const a of actors) {
      const details = [];
      if (a.title) details.push(a.title);
      if (a.pid) details.push('pid ' + a.pid);
      if (a.restarts) details.push(a.restarts + ' restarts');
      if (a.last_exit !== null && a.last_exit !== undefined) details.push('last exit ' + a.last_exit);
      if (a.kind === 'command' && a.enabled === false) details.push('not started (conclave actor start)');
      const runtime = a.runtime && a.runtime !== 'n/a' ? a.runtime : null;
      list.append(el('li', { 'data-actor': a.id },
        el('span', { class: 'actor-id', text: a.id }),
        el('span', { class: 'badge', text: a.kind }),
        runtime ? el('span', { class: stateClass(runtime), text: runtime }) : null,
        a.kind === 'command' && a.enabled
          ? el('button', { type: 'button', class: 'small', text: 'Restart', onclick: () => restartActor(a.id) })
          : null,
        details.length ? el('span', { class: 'actor-detail', text: details.join(' · ') }) : null));
    }

    const ids = actors.map((a) => a.id);
    if (!ids.includes('operator')) ids.unshift('operator');
    fillSelect($('compose-by'), ids, 'operator');
    fillSelect($('inbox-actor'), ids, g.inboxActor);
    const datalist = $('actor-ids');
    datalist.replaceChildren(el('option', { value: '@all' }), ...ids.map((id) => el('option', { value: id })));
  }

  // Refills a <select>, keeping what was chosen when it still exists.
  function fillSelect(select, ids, fallback) {
    const keep = select.value || fallback;
    select.replaceChildren(...ids.map((id) => el('option', { value: id, text: id })));
    select.value = ids.includes(keep) ? keep : fallback;
  }

  async function groupAction(action) {
    if (!g) return;
    const mine = g;
    try {
      await api('POST', `/groups/${enc(mine.id)}/${action}`, {});
    } catch (err) {
      if (err.status !== 401) showError(`${action}: ${err.message}`);
    }
    if (g === mine) loadGroup();
  }

  async function restartActor(actor) {
    if (!g) return;
    try {
      await api('POST', `/groups/${enc(g.id)}/actors/${enc(actor)}/restart`, {});
    } catch (err) {
      if (err.status !== 401) showError(`restart ${actor}: ${err.message}`);
    }
    scheduleGroupRefresh();
  }

  // --- the ledger -------------------------------------------------------------------------

  function setStreamState(state, detail) {
    const badge = $('stream-state');
    badge.textContent = detail ? `${state}: ${detail}` : state;
    badge.className = stateClass(state);
  }

  function seqLabel(id) {
    const m = g && g.messages.get(id);
    return m ? '#' + m.seq : preview(id, 12);
  }

  function describe(ev) {
    const d = ev.data && typeof ev.data === 'object' ? ev.data : {};
    const parts = [];
    if (d.actor_id) parts.push(String(d.actor_id));
    switch (ev.kind) {
      case 'group.created':
        if (d.title) parts.push(`"${d.title}"`);
        break;
      case 'chat.ack':
        parts.push('acknowledged ' + seqLabel(d.event_id));
        break;
      case 'chat.read':
        parts.push('read up to #' + d.up_to_seq);
        break;
      case 'actor.added':
        if (d.kind) parts.push(d.kind);
        break;
      default:
        for (const k of ['pid', 'status', 'exit_code', 'signal', 'reason']) if (d[k] !== undefined) parts.push(`${k} ${d[k]}`);
    }
    return parts.join(' · ');
  }

  function renderEvent(ev) {
    const meta = el('div', { class: 'ev-meta' },
      el('span', { class: 'ev-seq', text: '#' + ev.seq }),
      el('time', { datetime: ev.ts, title: ev.ts, text: formatTime(ev.ts) }));
    if (ev.kind !== 'chat.message') {
      return el('li', { class: 'ev-compact', 'data-seq': ev.seq, 'data-kind': ev.kind },
        el('span', { class: 'ev-seq', text: '#' + ev.seq }), ' ',
        el('span', { class: 'ev-kind', text: ev.kind }), ' by ', String(ev.by ?? '?'),
        describe(ev) ? ' · ' + describe(ev) : '', ' · ',
        el('time', { datetime: ev.ts, title: ev.ts, text: formatTime(ev.ts) }));
    }
    const d = ev.data || {};
    const to = Array.isArray(d.to) && d.to.length ? d.to.join(', ') : '@all';
    const attention = d.priority === 'attention';
    const li = el('li', {
      class: 'msg' + (attention ? ' attention' : ''),
      'data-seq': ev.seq, 'data-id': ev.id, 'data-kind': ev.kind, tabindex: 0,
      title: 'Click to reply',
    },
    el('div', { class: 'msg-head' },
      el('span', { class: 'msg-from', text: ev.by ?? '?' }),
      el('span', { class: 'msg-to', text: '→ ' + to }),
      d.reply_required ? el('span', { class: 'flag reply', text: 'reply required' }) : null,
      attention ? el('span', { class: 'flag attention', text: 'attention' }) : null),
    d.reply_to ? el('div', { class: 'msg-ref' }, '↩ reply to ',
      el('button', { type: 'button', class: 'link', text: seqLabel(d.reply_to),
        onclick: (e) => { e.stopPropagation(); flashMessage(d.reply_to); } })) : null,
    el('p', { class: 'msg-text', text: d.text ?? '' }),
    meta);
    const pick = () => {
      if (window.getSelection && String(window.getSelection()).length > 0) return; // selecting text
      if (g && g.replyTo && g.replyTo.id === ev.id) clearReplyTarget();
      else selectReplyTarget(ev);
    };
    li.addEventListener('click', pick);
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter') pick(); });
    return li;
  }

  function flashMessage(id) {
    const li = document.querySelector(`#ledger li[data-id="${CSS.escape(id)}"]`);
    if (!li) return;
    li.scrollIntoView({ block: 'nearest' });
    li.classList.remove('flash');
    void li.offsetWidth; // restart the animation
    li.classList.add('flash');
  }

  function remember(ev) {
    if (ev.kind === 'chat.message' && ev.id) g.messages.set(ev.id, ev);
  }

  function onStreamEvent(ev) {
    if (!g || typeof ev !== 'object' || ev === null || !Number.isSafeInteger(ev.seq)) return;
    if (ev.seq <= g.lastSeq) return; // already shown (a resumed stream may repeat)
    g.lastSeq = ev.seq;
    remember(ev);
    const ledger = $('ledger');
    const atBottom = g.atBottom;
    ledger.append(renderEvent(ev));
    while (ledger.children.length > LEDGER_MAX) {
      ledger.firstElementChild.remove();
      g.firstSeq = Number(ledger.firstElementChild.dataset.seq);
      $('load-earlier').hidden = false;
    }
    if (atBottom && !g.scrollPending) {
      // One scroll per frame, not one layout per event while a catch-up pours in.
      g.scrollPending = true;
      const mine = g;
      requestAnimationFrame(() => {
        mine.scrollPending = false;
        if (g === mine && g.atBottom) ledger.scrollTop = ledger.scrollHeight;
      });
    }
    if (ev.kind.startsWith('chat.')) scheduleInbox();
    if (ev.kind.startsWith('actor.') || ev.kind.startsWith('group.')) scheduleGroupRefresh();
  }

  async function loadEarlier() {
    if (!g || g.firstSeq <= 1) return;
    const mine = g;
    const first = g.firstSeq;
    const after = Math.max(0, first - 1 - EARLIER_PAGE);
    let res;
    $('load-earlier').disabled = true;
    try {
      res = await api('GET', `/groups/${enc(mine.id)}/events?after=${after}&limit=${first - 1 - after}`);
    } catch (err) {
      if (err.status !== 401) showError('Earlier events: ' + err.message);
      return;
    } finally {
      $('load-earlier').disabled = false;
    }
    if (g !== mine) return;
    const events = (Array.isArray(res?.events) ? res.events : []).filter((e) => Number.isSafeInteger(e.seq) && e.seq < first);
    const ledger = $('ledger');
    const fromBottom = ledger.scrollHeight - ledger.scrollTop;
    const frag = document.createDocumentFragment();
    for (const ev of events) {
      remember(ev);
      frag.append(renderEvent(ev));
    }
    ledger.prepend(frag);
    ledger.scrollTop = ledger.scrollHeight - fromBottom; // keep what was on screen in place
    g.firstSeq = events.length ? Math.min(first, events[0].seq) : after + 1;
    $('load-earlier').hidden = g.firstSeq <= 1;
  }

  // --- the event stream: fetch + a Server-Sent Events parser --------------------------------

  // Parses text/event-stream as the HTML standard describes: lines end in CRLF, LF or CR;
  // "field: value"; a blank line dispatches; lines starting with ':' are comments (heartbeats).
  class SseParser {
    constructor(onMessage) {
      this.onMessage = onMessage;
      this.buf = '';
      this.data = [];
      this.type = '';
      this.lastId = '';
    }

    push(text) {
      this.buf += text;
      let start = 0;
      for (;;) {
        const lf = this.buf.indexOf('\n', start);
        const cr = this.buf.indexOf('\r', start);
        if (lf < 0 && cr < 0) break;
        const at = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
        // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
        if (this.buf[at] === '\r' && at === this.buf.length - 1) break;
        const line = this.buf.slice(start, at);
        start = at + (this.buf[at] === '\r' && this.buf[at + 1] === '\n' ? 2 : 1);
        this.line(line);
      }
      this.buf = this.buf.slice(start);
      if (this.buf.length > STREAM_BUFFER_MAX) throw new Error('event stream line too long');
    }

    line(line) {
      if (line === '') return this.dispatch();
      if (line[0] === ':') return;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'data') this.data.push(value);
      else if (field === 'id' && !value.includes('\0')) this.lastId = value;
      else if (field === 'event') this.type = value;
    }

    dispatch() {
      const type = this.type || 'message';
      this.type = '';
      if (this.data.length === 0) return;
      const data = this.data.join('\n');
      this.data = [];
      this.onMessage({ type, data, id: this.lastId });
    }
  }

  // One group's live ledger. Reconnects after any drop with Last-Event-ID (the last seq seen),
  // backing off from 1 s to 30 s; a stream silent for longer than three heartbeats is dropped.
  class EventStream {
    constructor(group, afterSeq, onEvent, onState) {
      this.group = group;
      this.lastSeq = afterSeq;
      this.onEvent = onEvent;
      this.onState = onState;
      this.stopped = false;
      this.controller = null;
      this.wake = {};
      this.onOnline = () => this.wake.fn && this.wake.fn();
      window.addEventListener('online', this.onOnline);
      this.run();
    }

    stop() {
      this.stopped = true;
      window.removeEventListener('online', this.onOnline);
      if (this.controller) this.controller.abort();
      if (this.wake.fn) this.wake.fn();
    }

    async run() {
      let delay = RETRY_MIN_MS;
      while (!this.stopped) {
        let retryAfter = 0;
        const started = Date.now();
        this.onState('connecting');
        try {
          retryAfter = await this.connect();
        } catch (err) {
          if (this.stopped) return;
        }
        if (this.stopped || retryAfter < 0) return;
        if (Date.now() - started > 10000) delay = RETRY_MIN_MS; // it was up for a while
        const wait = Math.max(retryAfter, delay * (0.8 + Math.random() * 0.4));
        this.onState('reconnecting', `in ${Math.round(wait / 1000)} s`);
        await sleep(wait, this.wake);
        this.wake.fn = null;
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }

    // Returns when the stream ends: -1 to give up, else the least ms to wait before retrying.
    async connect() {
      const controller = new AbortController();
      this.controller = controller;
      let idle = null;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => controller.abort(), STREAM_IDLE_MS);
      };
      try {
        arm();
        const res = await fetch(`/api/v1/groups/${enc(this.group)}/events/stream`, {
          headers: {
            Authorization: 'Bearer ' + token,
            Accept: 'text/event-stream',
            'Last-Event-ID': String(this.lastSeq),
          },
          cache: 'no-store',
          signal: controller.signal,
        });
        if (res.status === 401) {
          unauthorized();
          return -1;
        }
        if (res.status === 404) {
          this.onState('error', 'no such group');
          return -1;
        }
        if (res.status === 429 || res.status === 503) {
          const s = Number(res.headers.get('Retry-After'));
          return Number.isFinite(s) && s > 0 ? s * 1000 : 0;
        }
        if (!res.ok || !res.body) return 0;
        this.onState('live');
        const parser = new SseParser((m) => this.message(m));
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done || this.stopped) break;
          arm();
          parser.push(decoder.decode(value, { stream: true }));
        }
        return 0;
      } finally {
        clearTimeout(idle);
        controller.abort();
      }
    }

    message(m) {
      if (m.type !== 'message') return;
      let ev;
      try {
        ev = JSON.parse(m.data);
      } catch (err) {
        return;
      }
      const seq = Number(m.id);
      if (ev && typeof ev === 'object' && !Number.isSafeInteger(ev.seq) && Number.isSafeInteger(seq)) ev.seq = seq;
      if (!ev || !Number.isSafeInteger(ev.seq) || ev.seq <= this.lastSeq) return;
      this.lastSeq = ev.seq;
      this.onEvent(ev);
    }
  }

  // --- inbox and obligations -----------------------------------------------------------------

  function scheduleInbox() {
    if (!g || g.inboxTimer) return;
    g.inboxTimer = setTimeout(() => {
      if (!g) return;
      g.inboxTimer = null;
      loadInbox();
    }, 400);
  }

  async function loadInbox(markRead = false) {
    if (!g) return;
    const mine = g;
    const actor = g.inboxActor;
    const base = `/groups/${enc(mine.id)}/actors/${enc(actor)}/inbox`;
    let inbox;
    try {
      if (markRead) await api('POST', base + '/read', {});
      inbox = await api('GET', base + '?limit=100');
    } catch (err) {
      if (err.status !== 401 && g === mine) showError(`Inbox of ${actor}: ${err.message}`);
      return;
    }
    if (g !== mine || g.inboxActor !== actor) return;
    renderInbox(actor, inbox || {});
  }

  function renderInbox(actor, inbox) {
    const obligations = Array.isArray(inbox.obligations) ? inbox.obligations : [];
    const list = $('obligations');
    list.replaceChildren();
    for (const ob of obligations) {
      const msg = g.messages.get(ob.event_id);
      const target = msg || { id: ob.event_id, seq: ob.seq, by: ob.from, data: { text: '' } };
      const action = ob.kind === 'ack'
        ? el('button', { type: 'button', class: 'small', text: 'Ack', onclick: () => ackMessage(actor, ob.event_id) })
        : el('button', { type: 'button', class: 'small', text: 'Reply', onclick: () => selectReplyTarget(target, actor) });
      list.append(el('li', { class: 'ob', 'data-event': ob.event_id, 'data-kind': ob.kind },
        el('span', { class: ob.kind === 'ack' ? 'badge warn' : 'badge', text: ob.kind === 'ack' ? 'ack' : 'reply' }),
        el('span', { text: `#${ob.seq} from ${ob.from ?? '?'}` }),
        el('time', { class: 'muted', datetime: ob.since, title: ob.since, text: formatTime(ob.since) }),
        action,
        msg ? el('span', { class: 'ob-text', text: preview(msg.data?.text) }) : null));
    }
    $('obligations-empty').hidden = obligations.length > 0;

    const unread = Array.isArray(inbox.unread) ? inbox.unread : [];
    const ul = $('unread');
    ul.replaceChildren();
    for (const ev of unread) {
      if (!ev || typeof ev !== 'object') continue;
      remember(ev);
      const text = ev.kind === 'chat.message' ? preview(ev.data?.text) : ev.kind;
      const li = el('li', { class: 'unread-item', 'data-seq': ev.seq, 'data-id': ev.id, tabindex: 0, title: 'Click to reply' },
        el('span', { class: 'ev-seq muted', text: '#' + ev.seq }), ' ',
        el('strong', { text: ev.by ?? '?' }), ': ', text);
      if (ev.kind === 'chat.message') {
        li.addEventListener('click', () => selectReplyTarget(ev, actor));
        li.addEventListener('keydown', (e) => { if (e.key === 'Enter') selectReplyTarget(ev, actor); });
      }
      ul.append(li);
    }
    $('unread-count').textContent = unread.length ? `(${unread.length}${inbox.unread_more ? '+' : ''})` : '';
    $('unread-empty').hidden = unread.length > 0;
  }

  async function ackMessage(actor, eventId) {
    if (!g) return;
    try {
      await api('POST', `/groups/${enc(g.id)}/actors/${enc(actor)}/ack`, { event: eventId });
    } catch (err) {
      if (err.status !== 401) showError(`Ack as ${actor}: ${err.message}`);
    }
    loadInbox();
  }

  // --- compose: send and reply ------------------------------------------------------------

  function selectReplyTarget(ev, asActor) {
    if (!g || !ev || !ev.id) return;
    g.replyTo = ev;
    const text = ev.data?.text ? ': ' + preview(ev.data.text, 100) : '';
    $('reply-target-text').textContent = `Reply to #${ev.seq} from ${ev.by ?? '?'}${text}`;
    $('reply-target').hidden = false;
    $('compose-to').disabled = true;
    $('compose-to').value = ev.by ?? '';
    if (asActor && [...$('compose-by').options].some((o) => o.value === asActor)) $('compose-by').value = asActor;
    for (const li of document.querySelectorAll('#ledger li.selected')) li.classList.remove('selected');
    const li = document.querySelector(`#ledger li[data-id="${CSS.escape(ev.id)}"]`);
    if (li) li.classList.add('selected');
    $('compose-text').focus();
  }

  function clearReplyTarget() {
    if (g) g.replyTo = null;
    $('reply-target').hidden = true;
    $('reply-target-text').textContent = '';
    $('compose-to').disabled = false;
    $('compose-to').value = '';
    for (const li of document.querySelectorAll('#ledger li.selected')) li.classList.remove('selected');
  }

  // "alice, bob" / "@all" / "" (everyone) → an array of ids, or null when one is not an id.
  function parseRecipients(value) {
    const ids = value.split(/[\s,]+/).filter(Boolean);
    return ids.every((id) => id === '@all' || ID_RE.test(id)) ? ids : null;
  }

  async function send(event) {
    event.preventDefault();
    if (!g) return;
    const mine = g;
    const text = $('compose-text').value;
    if (!text.trim()) return;
    const body = { text, by: $('compose-by').value || 'operator' };
    if ($('compose-reply-required').checked) body.reply_required = true;
    if ($('compose-attention').checked) body.attention = true;
    let path;
    if (g.replyTo) {
      path = `/groups/${enc(g.id)}/messages/${enc(g.replyTo.id)}/reply`;
    } else {
      const to = parseRecipients($('compose-to').value);
      if (!to) {
        $('compose-status').textContent = 'To: actor ids (or @all), separated by commas.';
        return;
      }
      if (to.length) body.to = to;
      path = `/groups/${enc(g.id)}/messages`;
    }
    $('compose-send').disabled = true;
    $('compose-status').textContent = 'Sending…';
    try {
      const res = await api('POST', path, body);
      if (g !== mine) return;
      $('compose-text').value = '';
      $('compose-reply-required').checked = false;
      $('compose-attention').checked = false;
      clearReplyTarget();
      $('compose-status').textContent = res && res.seq ? `Sent #${res.seq}` : 'Sent';
    } catch (err) {
      $('compose-status').textContent = '';
      if (err.status !== 401) showError('Send: ' + err.message);
    } finally {
      $('compose-send').disabled = false;
    }
  }

  // --- wiring -----------------------------------------------------------------------------

  function init() {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', () => logout());
    $('banner-close').addEventListener('click', clearError);
    $('groups-refresh').addEventListener('click', loadGroups);
    $('group-create').addEventListener('submit', createGroup);
    for (const b of document.querySelectorAll('.group-actions button'))
      b.addEventListener('click', () => groupAction(b.dataset.action));
    $('load-earlier').addEventListener('click', loadEarlier);
    const ledger = $('ledger');
    ledger.addEventListener('scroll', () => {
      if (g) g.atBottom = ledger.scrollHeight - ledger.scrollTop - ledger.clientHeight < 48;
    });
    // A rotated phone or a resized window keeps a ledger that was at its end there.
    new ResizeObserver(() => { if (g && g.atBottom) ledger.scrollTop = ledger.scrollHeight; }).observe(ledger);
    $('compose').addEventListener('submit', send);
    $('compose-text').addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        $('compose').requestSubmit();
      }
    });
    $('reply-cancel').addEventListener('click', clearReplyTarget);
    $('inbox-actor').addEventListener('change', () => {
      if (!g) return;
      g.inboxActor = $('inbox-actor').value;
      $('obligations').replaceChildren();
      $('unread').replaceChildren();
      loadInbox();
    });
    $('inbox-refresh').addEventListener('click', () => loadInbox());
    $('inbox-mark-read').addEventListener('click', () => loadInbox(true));
    window.addEventListener('hashchange', route);
    if (token) loadStatus();
    route();
  }

  init();
})();
