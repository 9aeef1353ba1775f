/*
 * ops.js: the ops page (ops.html). See docs/OPERATIONS.md, "The ops page".
 *
 * ES5, XMLHttpRequest, no library. It signs in as an admin (dev login or a
 * pasted token), polls GET /v1/admin/status and GET /v1/admin/flags every
 * couple of seconds, and draws the connection and latency charts (with
 * OpsChart, ops-chart.js, on <canvas>) from a rolling window of those
 * answers. Everything the server
 * says is set with textContent, never as HTML, and the page's CSP forbids
 * inline script and style, so styling goes through classes only.
 */
(function (root) {
  'use strict';

  var doc = root.document;
  var OpsChart = root.OpsChart;
  var SESSION = 'chatd.ops.session';
  var LEVELS = ['full service', 'no receipts or typing', 'no WebSocket', 'polling only'];
  var USER_RE = /^[A-Za-z0-9._-]{1,64}$/;
  // A Go duration, as PUT /v1/admin/level reads "for".
  var DURATION_RE = /^(\d+(\.\d+)?(ns|us|\u00b5s|ms|s|m|h))+$/;

  // Tests and deployments may tune these from a script file of their own
  // loaded first (the CSP allows no inline script): window.chatdOpsOptions.
  var OPTS = extend({ intervalMs: 2000, windowMs: 5 * 60000, maxSamples: 300 }, root.chatdOpsOptions);

  // ---- small helpers ---------------------------------------------------------

  function extend(dst) {
    for (var i = 1; i < arguments.length; i++) {
      var src = arguments[i];
      if (!src) { continue; }
      for (var k in src) { if (has(src, k)) { dst[k] = src[k]; } }
    }
    return dst;
  }

  function has(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }

  function isArray(v) { return Object.prototype.toString.call(v) === '[object Array]'; }

  function now() { return new Date().getTime(); }

  function $(id) { return doc.getElementById(id); }

  function on(n, ev, fn) { n.addEventListener(ev, fn, false); }

  function el(tag, cls, text) {
    var n = doc.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined && text !== null) { n.textContent = String(text); }
    return n;
  }

  function setText(n, text) {
    text = String(text);
    if (n.textContent !== text) { n.textContent = text; }
  }

  function clear(n) { while (n.firstChild) { n.removeChild(n.firstChild); } }

  function trim(s) { return String(s).replace(/^\s+|\s+$/g, ''); }

  function parseJSON(s) {
    if (typeof s !== 'string' || s === '') { return null; }
    try { return JSON.parse(s); } catch (e) { return null; }
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  // parseTime reads an RFC 3339 time (Go's, with up to 9 decimals) into
  // milliseconds. Old browsers' Date.parse knows neither nanoseconds nor,
  // in ES5, much else, so this does not depend on it.
  function parseTime(s) {
    var m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|([+-])(\d\d):(\d\d))$/.exec(s || '');
    if (!m) { return null; }
    var t = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
    if (m[7]) { t += Math.floor(parseFloat(m[7]) * 1000); }
    if (m[9]) { t -= (m[9] === '-' ? -1 : 1) * (+m[10] * 60 + +m[11]) * 60000; }
    return t;
  }

  function clock(ms) {
    var d = new Date(ms);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  // when is a time for the tables: the clock today, the date before.
  function when(ms) {
    if (ms === null) { return '?'; }
    var d = new Date(ms);
    var today = new Date();
    if (d.toDateString() === today.toDateString()) { return clock(ms); }
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + clock(ms);
  }

  // span says how long ms is, roughly: 45 s, 12 min, 3 h 5 min, 2 d 4 h.
  function span(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) { return s + ' s'; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + ' min'; }
    var h = Math.floor(m / 60);
    if (h < 48) { return h + ' h' + (m % 60 ? ' ' + (m % 60) + ' min' : ''); }
    return Math.floor(h / 24) + ' d' + (h % 24 ? ' ' + (h % 24) + ' h' : '');
  }

  // num prints a reading with at most `digits` decimals and no trailing zeros.
  function num(v, digits) {
    if (typeof v !== 'number' || isNaN(v)) { return '–'; }
    var p = Math.pow(10, digits === undefined ? 1 : digits);
    return String(Math.round(v * p) / p);
  }

  function toggleClass(n, cls, onOff) {
    var list = (' ' + n.className + ' ').replace(' ' + cls + ' ', ' ');
    n.className = trim(onOff ? list + cls : list).replace(/\s+/g, ' ');
  }

  var storage = (function () {
    try {
      var s = root.sessionStorage;
      s.setItem('chatd.probe', '1');
      s.removeItem('chatd.probe');
      return s;
    } catch (e) { return null; }
  })();

  function load(key) {
    try { return storage ? parseJSON(storage.getItem(key)) : null; } catch (e) { return null; }
  }

  function save(key, v) {
    try { if (storage) { storage.setItem(key, JSON.stringify(v)); } } catch (e) { /* quota */ }
  }

  function forget(key) {
    try { if (storage) { storage.removeItem(key); } } catch (e) { /* ignore */ }
  }

  // ---- HTTP --------------------------------------------------------------------

  // request makes one XHR with a JSON body and answer. cb(err, data); err
  // has status (0: no answer), code and message from the error envelope.
  function request(method, path, token, body, cb) {
    var x = new root.XMLHttpRequest();
    var done = false;
    function finish(err, data) {
      if (done) { return; }
      done = true;
      clearTimeout(timer);
      cb(err, data);
    }
    var timer = setTimeout(function () {
      finish({ status: 0, code: 'network', message: 'timed out' });
      try { x.abort(); } catch (e) { /* ignore */ }
    }, 10000);
    x.open(method, path, true);
    if (token) { x.setRequestHeader('Authorization', 'Bearer ' + token); }
    if (body !== undefined) { x.setRequestHeader('Content-Type', 'application/json'); }
    x.onreadystatechange = function () {
      if (x.readyState !== 4) { return; }
      var data = parseJSON(x.responseText);
      if (x.status >= 200 && x.status < 300) {
        finish(null, data);
        return;
      }
      finish({
        status: x.status, code: (data && data.code) || (x.status ? 'http_' + x.status : 'network'),
        message: (data && data.message) || (x.status ? 'HTTP ' + x.status : 'the server cannot be reached')
      });
    };
    try {
      x.send(body === undefined ? null : JSON.stringify(body));
    } catch (e) {
      setTimeout(function () { finish({ status: 0, code: 'network', message: 'request failed' }); }, 0);
    }
  }

  // ---- the page state ------------------------------------------------------------

  var page = {
    session: null,   // {name} (dev login) or {token}
    token: null,
    user: null,
    status: null,    // the last GET /v1/admin/status answer
    flags: null,     // the last GET /v1/admin/flags answer
    samples: [],     // [{t, v: {websocket, sse, poll, delivery, fanout, store, mem}}]
    okAt: null,      // when the last poll succeeded
    error: null,     // the last poll's error
    gen: 0,          // bumped on sign-in and sign-out; stale answers check it
    timer: null,
    busy: false,
    again: false,    // poll again as soon as the current one ends
    levelTouched: false,
    levelSaid: null, // {level, mode} the level message describes, until the server reports another
    flagRows: {},    // name → row
    charts: {}
  };
  root.opsPage = page; // for debugging and the browser tests

  // ---- signing in ------------------------------------------------------------------

  function showLogin(message) {
    page.gen++;
    stopPolling();
    $('ops').hidden = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    setText($('who'), '');
    setLive('idle', 'signed out');
    setText($('login-error'), message || '');
  }

  // devLogin gets an admin token by name (dev mode only).
  function devLogin(name, cb) {
    request('POST', '/v1/dev/login', null, { name: name, admin: true }, function (err, data) {
      if (!err && (!data || typeof data.token !== 'string')) {
        err = { status: 500, code: 'internal', message: 'login answered without a token' };
      }
      cb(err, err ? null : data.token);
    });
  }

  function loginError(err) {
    if (err.status === 404) { return 'This server is not in dev mode: paste an admin token.'; }
    if (err.status === 0) { return 'The server cannot be reached. Try again in a moment.'; }
    return 'Sign-in failed: ' + (err.message || err.code);
  }

  function claims(tok) {
    var parts = String(tok).split('.');
    if (parts.length !== 3 || typeof root.atob !== 'function') { return {}; }
    var b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) { b64 += '='; }
    try { return JSON.parse(root.atob(b64)) || {}; } catch (e) { return {}; }
  }

  function signIn(sess) {
    var gen = ++page.gen;
    $('login-go').disabled = true;
    $('token-go').disabled = true;
    function use(err, tok) {
      $('login-go').disabled = false;
      $('token-go').disabled = false;
      if (gen !== page.gen) { return; }
      if (err) { showLogin(loginError(err)); return; }
      // Check the token before showing anything: one status call.
      request('GET', '/v1/admin/status', tok, undefined, function (serr, st) {
        if (gen !== page.gen) { return; }
        if (serr) {
          showLogin(serr.status === 403 ? 'That token has no admin rights (it needs admin: true).' :
            serr.status === 401 ? 'The token was refused: ' + serr.message : loginError(serr));
          return;
        }
        start(sess, tok, st);
      });
    }
    if (sess.token) { use(null, sess.token); } else { devLogin(sess.name, use); }
  }

  function start(sess, tok, st) {
    var c = claims(tok);
    page.session = sess;
    page.token = tok;
    page.user = c.sub || sess.name || 'admin';
    page.samples = [];
    page.levelTouched = false;
    page.busy = false;
    page.again = false;
    $('pin-go').disabled = false;
    $('auto-go').disabled = false;
    save(SESSION, sess);
    $('login').hidden = true;
    $('ops').hidden = false;
    $('logout').hidden = false;
    setText($('who'), c.name || page.user);
    $('login-token').value = '';
    gotStatus(st, true);
    startPolling();
  }

  function signOut(message) {
    forget(SESSION);
    page.session = null;
    page.token = null;
    page.status = null;
    page.flags = null;
    showLogin(message);
  }

  // api calls the admin API with the token. A 401 on a dev session logs in
  // again and retries once (a dev server that restarted has a new secret);
  // callers pass other errors to fatal, which signs out on 401 and 403.
  function api(method, path, body, cb) {
    var gen = page.gen;
    request(method, path, page.token, body, function (err, data) {
      if (gen !== page.gen) { return; }
      if (err && err.status === 401 && page.session && page.session.name) {
        devLogin(page.session.name, function (lerr, tok) {
          if (gen !== page.gen) { return; }
          if (lerr) { cb(err); return; }
          page.token = tok;
          request(method, path, tok, body, function (err2, data2) {
            if (gen === page.gen) { cb(err2, data2); }
          });
        });
        return;
      }
      cb(err, data);
    });
  }

  // fatal handles an answer that polling cannot fix; true when it did.
  function fatal(err) {
    if (!err) { return false; }
    if (err.status === 401) { signOut('Signed out: the token was refused (' + err.message + ').'); return true; }
    if (err.status === 403) { signOut('Signed out: the token has no admin rights.'); return true; }
    return false;
  }

  // ---- polling -------------------------------------------------------------------

  function startPolling() {
    stopPolling();
    schedule(OPTS.intervalMs);
  }

  function stopPolling() {
    if (page.timer) { clearTimeout(page.timer); }
    page.timer = null;
  }

  function schedule(ms) {
    stopPolling();
    page.timer = setTimeout(poll, ms);
  }

  // pollNow polls at once, or right after the poll in flight.
  function pollNow() {
    if (page.busy) { page.again = true; return; }
    schedule(0);
  }

  // poll reads the status and the flags, records a sample, and schedules
  // the next poll an interval after this one started.
  function poll() {
    page.timer = null;
    if (!page.token) { return; }
    var gen = page.gen;
    var started = now();
    page.busy = true;
    page.again = false;
    api('GET', '/v1/admin/status', undefined, function (err, st) {
      if (gen !== page.gen) { return; }
      if (fatal(err)) { return; }
      if (err) {
        page.error = err;
        page.samples.push({ t: now() }); // a gap in the charts
        trimSamples();
        renderLive();
        drawCharts();
        done();
        return;
      }
      gotStatus(st, true);
      api('GET', '/v1/admin/flags', undefined, function (ferr, fl) {
        if (gen !== page.gen) { return; }
        if (fatal(ferr)) { return; }
        if (!ferr) { gotFlags(fl); }
        done();
      });
    });
    function done() {
      page.busy = false;
      if (gen !== page.gen) { return; }
      schedule(page.again ? 0 : Math.max(0, OPTS.intervalMs - (now() - started)));
    }
  }

  function trimSamples() {
    var cut = now() - OPTS.windowMs - OPTS.intervalMs;
    while (page.samples.length > OPTS.maxSamples || (page.samples.length && page.samples[0].t < cut)) {
      page.samples.shift();
    }
  }

  // gotStatus renders a status answer; sample says to add it to the charts.
  function gotStatus(st, sample) {
    if (!st || typeof st !== 'object') { return; }
    page.status = st;
    page.error = null;
    page.okAt = now();
    if (sample) {
      var conns = st.connections || {};
      var ld = st.load || {};
      page.samples.push({
        t: page.okAt,
        v: {
          websocket: conns.websocket || 0, sse: conns.sse || 0, poll: conns.poll || 0,
          delivery: ld.delivery_ms || 0, fanout: ld.fanout_ms || 0, store: ld.store_ms || 0,
          mem: memBytes(ld)
        }
      });
      trimSamples();
    }
    renderLive();
    renderLevel(st);
    renderBreakers(st.breakers || []);
    renderLoad(st);
    renderAlerts(st.load || {});
    renderFlags(st.flags || []);
    renderRollouts(st.rollouts || [], st.flags || []);
    renderHistory(st.history || []);
    renderNodes(st.nodes || []);
    drawCharts();
  }

  function gotFlags(fl) {
    if (!fl || typeof fl !== 'object') { return; }
    page.flags = fl;
    if (isArray(fl.flags)) { renderFlags(fl.flags); }
    renderAudit(isArray(fl.audit) ? fl.audit : []);
  }

  // ---- rendering -----------------------------------------------------------------

  function setLive(state, text) {
    var n = $('live');
    n.setAttribute('data-state', state);
    setText($('live-text'), text);
  }

  function renderLive() {
    if (!page.token) { return; }
    var age = page.okAt ? now() - page.okAt : null;
    if (page.error) {
      setLive('error', (page.error.status === 0 ? 'unreachable' : page.error.message) +
        (page.okAt ? ' \u00b7 last update ' + span(age) + ' ago' : '') + ' \u00b7 retrying');
    } else if (age !== null && age > 3 * OPTS.intervalMs + 2000) {
      setLive('stale', 'stale \u00b7 last update ' + span(age) + ' ago');
    } else {
      setLive('ok', 'live \u00b7 ' + (page.okAt ? clock(page.okAt) : ''));
    }
  }

  function renderLevel(st) {
    var lv = $('level');
    var level = typeof st.level === 'number' ? st.level : null;
    setText(lv, level === null ? '?' : level);
    lv.setAttribute('data-level', level === null ? '' : String(level));
    lv.setAttribute('data-mode', st.mode || '');
    setText($('level-desc'), level === null ? '' : 'Level ' + level + ': ' + (LEVELS[level] || ''));
    var mode = $('mode');
    setText(mode, st.mode || '?');
    mode.className = 'mode-pill mode-' + (st.mode || 'unknown');
    var until = $('until');
    if (st.mode === 'manual') {
      var t = parseTime(st.until);
      setText(until, t === null ? 'pinned with no expiry: until someone sets auto' :
        'pinned until ' + when(t) + ' (' + span(t - now()) + ' left), then auto');
    } else {
      setText(until, 'set by the breakers');
    }
    // The picker follows the level until the operator touches it.
    if (!page.levelTouched && level !== null) {
      var r = $('pin-' + level);
      if (r) { r.checked = true; }
    }
    // The message under the controls says what this page last did. Once
    // the server reports another level or mode (chatctl, another operator,
    // the breakers, a pin's expiry), it says that instead: a page that
    // pinned 2 must not go on saying so at level 3.
    var said = page.levelSaid;
    if (said && level !== null && (said.level !== level || said.mode !== st.mode)) {
      page.levelSaid = null;
      var last = lastChange(st.history);
      levelMsg('Now level ' + level + ' (' + (st.mode || '?') + ')' +
        (last && last.to === level ? ', set by ' + last.by + ' at ' + when(parseTime(last.at)) : '') + '.', '');
    }
  }

  function lastChange(history) {
    return isArray(history) && history.length ? history[history.length - 1] || null : null;
  }

  // ---- the alert figures ------------------------------------------------------

  // memBytes is the memory the growth alert reads: anonymous RSS, or the
  // Go heap in use where the system does not report it.
  function memBytes(ld) {
    return ld.anon_rss_bytes || ld.heap_inuse_bytes || 0;
  }

  // memGrowth is the memory's growth in bytes an hour over the samples
  // (a least-squares slope, as deriv() computes it), or null with less
  // than a minute of them.
  function memGrowth() {
    var pts = [];
    for (var i = 0; i < page.samples.length; i++) {
      var p = page.samples[i];
      if (p.v && p.v.mem) { pts.push(p); }
    }
    if (pts.length < 3 || pts[pts.length - 1].t - pts[0].t < 60000) { return null; }
    var t0 = pts[0].t, n = pts.length, st = 0, sv = 0, stt = 0, stv = 0;
    for (var j = 0; j < n; j++) {
      var t = (pts[j].t - t0) / 3600000, v = pts[j].v.mem;
      st += t; sv += v; stt += t * t; stv += t * v;
    }
    var den = n * stt - st * st;
    return den > 0 ? (n * stv - st * sv) / den : null;
  }

  function mb(bytes) { return num(bytes / (1 << 20), 1) + ' MB'; }

  function alertRow(id, name, value, state, rule) {
    var li = el('li', 'alert');
    li.setAttribute('data-alert', id);
    li.setAttribute('data-state', state);
    li.appendChild(el('span', 'alert-name', name));
    li.appendChild(el('span', 'alert-value', value));
    li.appendChild(el('span', 'alert-rule', rule));
    return li;
  }

  // renderAlerts shows the readings the seed's alerts watch, against their
  // thresholds (docs/OPERATIONS.md, "Metrics").
  function renderAlerts(ld) {
    var ul = $('alerts');
    clear(ul);
    var abn = ld.abnormal_disconnects_per_min || {};
    var rate = typeof ld.ws_abnormal_rate === 'number' ? ld.ws_abnormal_rate : 0;
    ul.appendChild(alertRow('disconnects', 'WebSocket abnormal disconnects',
      num(rate * 100, 2) + '% a minute (' + num(abn.websocket || 0, 1) + '/min)', rate > 0.01 ? 'over' : 'ok',
      'of open WebSocket sessions; alert above 1% for 5 min. Abnormal: every close code but 1000, 1001, 4001, 4012' +
      (abn.sse || abn.poll ? '. SSE ' + num(abn.sse || 0, 1) + '/min, poll ' + num(abn.poll || 0, 1) + '/min' : '')));
    var reports = ld.client_rtt_reports || 0;
    var p99 = ld.client_rtt_p99_ms || 0;
    ul.appendChild(alertRow('rtt', 'Client round trip p99', reports ? num(p99, 0) + ' ms' : 'no reports',
      !reports ? 'none' : p99 > 300 ? 'over' : 'ok',
      'what clients measure, send to ack; alert above 300 ms for 5 min' + (reports ? ' \u00b7 ' + reports + ' reports' : '')));
    var mem = memBytes(ld);
    var growth = memGrowth();
    ul.appendChild(alertRow('memory', 'Memory growth', growth === null ? 'measuring\u2026' : mb(growth) + '/h',
      growth === null ? 'none' : growth > 5e6 ? 'over' : 'ok',
      (ld.anon_rss_bytes ? 'anonymous RSS ' : 'Go heap in use ') + mb(mem) +
      ' now; alert above 5 MB/h for 30 min (this page: over its last ' + span(OPTS.windowMs) + ')'));
    renderErrors(ld.errors_per_min || {});
  }

  function renderErrors(perMin) {
    var ul = $('errors');
    clear(ul);
    var codes = [];
    for (var k in perMin) { if (has(perMin, k)) { codes.push(k); } }
    codes.sort(function (a, b) { return perMin[b] - perMin[a] || (a < b ? -1 : 1); });
    for (var i = 0; i < codes.length; i++) {
      var li = el('li');
      li.setAttribute('data-code', codes[i]);
      li.appendChild(el('span', 'code', codes[i]));
      li.appendChild(doc.createTextNode(' ' + num(perMin[codes[i]], 1)));
      ul.appendChild(li);
    }
    if (!codes.length) { ul.appendChild(el('li', 'empty', 'none')); }
  }

  // unit gives a breaker's reading in the units people read it in.
  function breakerReading(b) {
    if (/_latency$/.test(b.name)) { return { value: b.value * 1000, threshold: b.threshold * 1000, unit: ' ms' }; }
    if (/_drops$|_failures$/.test(b.name)) { return { value: b.value, threshold: b.threshold, unit: '/s' }; }
    return { value: b.value, threshold: b.threshold, unit: '' };
  }

  function renderBreakers(list) {
    var ul = $('breakers');
    clear(ul);
    var latency = null;
    for (var i = 0; i < list.length; i++) {
      var b = list[i] || {};
      var r = breakerReading(b);
      if (b.name === 'delivery_latency') { latency = r.threshold; }
      var state = String(b.state);
      var li = el('li', 'breaker');
      li.setAttribute('data-breaker', String(b.name));
      li.setAttribute('data-state', state);
      var head = el('div', 'breaker-head');
      head.appendChild(el('span', 'name', b.name));
      head.appendChild(el('span', 'pill state-' + state.replace(/[^a-z-]/g, ''), state));
      li.appendChild(head);
      var meter = el('meter');
      meter.min = 0;
      meter.max = r.threshold > 0 ? r.threshold : 1;
      meter.low = meter.max * 0.6;
      meter.high = meter.max * 0.9;
      meter.optimum = 0;
      meter.value = Math.min(Math.max(r.value, 0), meter.max);
      meter.setAttribute('aria-label', b.name + ' against its threshold');
      li.appendChild(meter);
      li.appendChild(el('div', 'breaker-read', num(r.value, 2) + r.unit + ' of ' + num(r.threshold, 2) + r.unit +
        ' \u00b7 relief: level ' + b.relief +
        (b.trips_at_once ? ' \u00b7 trips at once at ' + num(breakerReading({ name: b.name, value: b.trips_at_once, threshold: 0 }).value, 2) + r.unit : '') +
        (b.probe_busy ? ' \u00b7 probe waits while CPU \u2265 ' + num(b.probe_busy * 100, 0) + '%' : '') +
        (b.held ? ' \u00b7 probe held: the node is busy or still over' : '')));
      ul.appendChild(li);
    }
    if (!list.length) { ul.appendChild(el('li', 'empty', 'no breakers')); }
    page.charts.latency.marker = latency === null ? null : { value: latency, color: '#d64545' };
    setText($('lat-threshold'), latency === null ? '–' : num(latency, 1) + ' ms');
  }

  function emptyRow(cols, text) {
    var tr = el('tr', 'empty');
    var td = el('td', '', text);
    td.colSpan = cols;
    tr.appendChild(td);
    return tr;
  }

  function renderLoad(st) {
    var ld = st.load || {};
    var conns = st.connections || {};
    // Connections, load and breakers are the answering node's own.
    var nodes = isArray(st.nodes) ? st.nodes : [];
    setText($('load-node'), nodes.length === 1 && nodes[0] && nodes[0].id ? nodes[0].id : '');
    var rows = [
      ['sessions', num(ld.sessions, 0)],
      ['delivery', num(ld.delivery_ms, 2) + ' ms'],
      ['fan-out', num(ld.fanout_ms, 2) + ' ms'],
      ['store', num(ld.store_ms, 2) + ' ms'],
      ['slow closed', num(ld.slow_closed, 0)],
      ['write failed', num(ld.write_failed, 0)],
      ['dropped', num(ld.dropped, 0)]
    ];
    var dl = $('load');
    clear(dl);
    for (var i = 0; i < rows.length; i++) {
      var d = el('div');
      d.appendChild(el('dt', '', rows[i][0]));
      d.appendChild(el('dd', '', rows[i][1]));
      dl.appendChild(d);
    }
    setText($('conn-websocket'), num(conns.websocket || 0, 0));
    setText($('conn-sse'), num(conns.sse || 0, 0));
    setText($('conn-poll'), num(conns.poll || 0, 0));
    setText($('lat-delivery'), num(ld.delivery_ms || 0, 2) + ' ms');
    setText($('lat-fanout'), num(ld.fanout_ms || 0, 2) + ' ms');
    setText($('lat-store'), num(ld.store_ms || 0, 2) + ' ms');
  }

  function flagState(f) {
    if (!f) { return '–'; }
    return (f.enabled ? 'on' : 'off') + ' \u00b7 ' + f.rollout + '%';
  }

  // flagRow makes a flag's row once; renders update it in place, and never
  // overwrite what the operator is editing.
  function flagRow(name) {
    var row = page.flagRows[name];
    if (row) { return row; }
    var id = 'flag-' + name.replace(/[^A-Za-z0-9_-]/g, '-');
    var li = el('li', 'flag');
    li.setAttribute('data-flag', name);
    var head = el('div', 'flag-head');
    head.appendChild(el('span', 'flag-name', name));
    var cur = el('span', 'flag-now');
    head.appendChild(cur);
    li.appendChild(head);
    var controls = el('div', 'flag-controls');
    var enLabel = el('label', 'flag-enabled-label');
    var enabled = el('input', 'flag-enabled');
    enabled.type = 'checkbox';
    enabled.id = id + '-enabled';
    enLabel.appendChild(enabled);
    enLabel.appendChild(doc.createTextNode(' enabled'));
    controls.appendChild(enLabel);
    var range = el('input', 'flag-range');
    range.type = 'range';
    range.min = '0';
    range.max = '100';
    range.step = '1';
    range.setAttribute('aria-label', name + ' rollout');
    controls.appendChild(range);
    var pct = el('span', 'flag-pct');
    var rollout = el('input', 'flag-rollout');
    rollout.type = 'number';
    rollout.min = '0';
    rollout.max = '100';
    rollout.step = '1';
    rollout.id = id + '-rollout';
    rollout.setAttribute('aria-label', name + ' rollout percent');
    pct.appendChild(rollout);
    pct.appendChild(doc.createTextNode('%'));
    controls.appendChild(pct);
    var apply = el('button', 'flag-apply', 'Apply');
    apply.type = 'button';
    apply.disabled = true;
    controls.appendChild(apply);
    li.appendChild(controls);
    var msg = el('p', 'msg flag-msg');
    li.appendChild(msg);

    row = { name: name, li: li, now: cur, enabled: enabled, range: range, rollout: rollout, apply: apply, msg: msg, dirty: false, flag: null };
    function touched() {
      row.dirty = true;
      apply.disabled = false;
      toggleClass(li, 'dirty', true);
      setText(msg, '');
    }
    on(range, 'input', function () { rollout.value = range.value; touched(); });
    on(rollout, 'input', function () { range.value = rollout.value; touched(); });
    on(enabled, 'change', touched);
    on(apply, 'click', function () { applyFlag(row); });
    on(rollout, 'keydown', function (ev) {
      if (ev.key === 'Enter' || ev.keyCode === 13) { ev.preventDefault(); applyFlag(row); }
    });
    page.flagRows[name] = row;
    return row;
  }

  function renderFlags(list) {
    var ul = $('flags');
    for (var i = 0; i < list.length; i++) {
      var f = list[i];
      if (!f || typeof f.name !== 'string') { continue; }
      var row = flagRow(f.name);
      var at = ul.childNodes[i] || null;
      if (at !== row.li) { ul.insertBefore(row.li, at); }
      row.flag = f;
      setText(row.now, flagState(f));
      row.li.setAttribute('data-enabled', f.enabled ? 'true' : 'false');
      row.li.setAttribute('data-rollout', String(f.rollout));
      if (!row.dirty) {
        row.enabled.checked = !!f.enabled;
        row.range.value = String(f.rollout);
        row.rollout.value = String(f.rollout);
      }
    }
  }

  function applyFlag(row) {
    var n = trim(row.rollout.value);
    if (!/^\d{1,3}$/.test(n) || +n > 100) {
      setText(row.msg, 'Rollout is a whole percentage, 0 to 100.');
      row.msg.className = 'msg flag-msg bad';
      return;
    }
    var body = { enabled: row.enabled.checked, rollout: +n };
    row.apply.disabled = true;
    setText(row.msg, 'applying…');
    row.msg.className = 'msg flag-msg';
    api('PUT', '/v1/admin/flags/' + encodeURIComponent(row.name), body, function (err, f) {
      if (err) {
        if (fatal(err)) { return; }
        row.apply.disabled = false;
        setText(row.msg, 'Not applied: ' + err.message);
        row.msg.className = 'msg flag-msg bad';
        return;
      }
      row.dirty = false;
      toggleClass(row.li, 'dirty', false);
      setText(row.msg, 'Applied: ' + flagState(f || body) + '.');
      row.msg.className = 'msg flag-msg ok';
      if (f && f.name) { renderFlags(mergeFlag(f)); }
      pollNow(); // the audit, and the flag as the status sees it
    });
  }

  // mergeFlag is the flags list of the last status with f replaced.
  function mergeFlag(f) {
    var list = (page.status && page.status.flags) || [];
    var out = [];
    for (var i = 0; i < list.length; i++) { out.push(list[i].name === f.name ? f : list[i]); }
    return out;
  }

  function renderAudit(list) {
    var body = $('audit');
    clear(body);
    for (var i = list.length - 1; i >= 0 && i >= list.length - 50; i--) {
      var a = list[i] || {};
      var tr = el('tr');
      tr.appendChild(el('td', 'nowrap', when(parseTime(a.time))));
      tr.appendChild(el('td', 'name', a.name));
      tr.appendChild(el('td', '', flagState(a.old) + ' \u2192 ' + flagState(a['new'])));
      tr.appendChild(el('td', 'actor', a.actor));
      body.appendChild(tr);
    }
    if (!list.length) { body.appendChild(emptyRow(4, 'no changes since the server started')); }
  }

  // ---- guarded rollouts ----

  var GUARD_WORDS = { errors: 'errors per session', disconnects: 'abnormal disconnects', delivery: 'delivery p99' };

  function guardValue(c, v) {
    if (c.guard === 'delivery') { return num(v * 1000, 0) + ' ms'; }
    if (c.guard === 'disconnects') { return num(v * 100, 1) + '%'; }
    return num(v, 3);
  }

  function renderRollouts(list, flags) {
    var ul = $('rollouts');
    clear(ul);
    for (var i = 0; i < list.length; i++) {
      var p = list[i] || {};
      var li = el('li', 'rollout');
      li.setAttribute('data-flag', String(p.flag));
      li.setAttribute('data-state', String(p.state));
      var head = el('div', 'rollout-head');
      head.appendChild(el('span', 'name', p.flag));
      head.appendChild(el('span', 'pill state-' + String(p.state).replace(/[^a-z-]/g, ''), p.state));
      head.appendChild(el('span', 'rollout-pct', (p.percent || 0) + '% of users'));
      li.appendChild(head);
      var steps = (p.steps || []).join(' \u2192 ') + ' %, hold ' + p.hold + ', guard window ' + p.window;
      if (p.state === 'running' && p.next_step_at) { steps += '; next step ' + when(parseTime(p.next_step_at)); }
      li.appendChild(el('div', 'rollout-steps', steps));
      if (p.reason) { li.appendChild(el('div', 'rollout-reason', p.reason)); }
      var checks = p.checks || [];
      if (checks.length) {
        var cl = el('ul', 'checks');
        for (var j = 0; j < checks.length; j++) {
          var c = checks[j] || {};
          var row = el('li', 'check verdict-' + String(c.verdict).replace(/[^a-z-]/g, ''));
          row.setAttribute('data-guard', String(c.guard));
          row.appendChild(doc.createTextNode((GUARD_WORDS[c.guard] || c.guard) + ': inside ' + guardValue(c, c.inside) +
            ' (' + c.inside_samples + '), outside ' + guardValue(c, c.outside) + ' (' + c.outside_samples + ') \u00b7 ' + c.verdict));
          cl.appendChild(row);
        }
        li.appendChild(cl);
      }
      var acts = el('div', 'rollout-actions');
      var ops = p.state === 'running' ? ['pause', 'abort'] : (p.state === 'paused' || p.state === 'halted') ? ['resume', 'abort'] : [];
      for (var k = 0; k < ops.length; k++) {
        var b = el('button', ops[k] === 'abort' ? 'secondary' : '', ops[k]);
        b.type = 'button';
        b.setAttribute('data-op', ops[k]);
        b.setAttribute('data-flag', String(p.flag));
        acts.appendChild(b);
      }
      li.appendChild(acts);
      ul.appendChild(li);
    }
    if (!list.length) { ul.appendChild(el('li', 'empty', 'no rollouts')); }
    var sel = $('ro-flag');
    if (!sel.options.length || sel.options.length !== flags.length) {
      var keep = sel.value;
      clear(sel);
      for (var f = 0; f < flags.length; f++) {
        if (/^transport\./.test(flags[f].name)) { continue; }
        var o = el('option', '', flags[f].name);
        o.value = flags[f].name;
        sel.appendChild(o);
      }
      if (keep) { sel.value = keep; }
    }
  }

  function rolloutMsg(text, ok) {
    setText($('ro-msg'), text);
    $('ro-msg').className = 'msg ' + (ok ? 'ok' : 'bad');
  }

  function startRollout() {
    var steps = trim($('ro-steps').value).split(/\s*,\s*/);
    var nums = [];
    for (var i = 0; i < steps.length; i++) {
      if (!/^\d{1,3}$/.test(steps[i])) { rolloutMsg('Steps are percentages, e.g. 10,50,100.', false); return; }
      nums.push(+steps[i]);
    }
    var body = { flag: $('ro-flag').value, steps: nums, hold: trim($('ro-hold').value) };
    var win = trim($('ro-window').value);
    if (win) { body.window = win; }
    $('ro-go').disabled = true;
    api('POST', '/v1/admin/rollouts', body, function (err, p) {
      $('ro-go').disabled = false;
      if (err) {
        if (fatal(err)) { return; }
        rolloutMsg('Not started: ' + err.message, false);
        return;
      }
      rolloutMsg('Started: ' + p.flag + ' at ' + p.percent + '%.', true);
      pollNow();
    });
  }

  function rolloutOp(op, flag) {
    api('POST', '/v1/admin/rollouts/' + encodeURIComponent(flag) + '/' + op, {}, function (err, p) {
      if (err) {
        if (fatal(err)) { return; }
        rolloutMsg(op + ' ' + flag + ': ' + err.message, false);
        return;
      }
      rolloutMsg(flag + ': ' + p.state + ' at ' + p.percent + '%.', true);
      pollNow();
    });
  }

  function renderHistory(list) {
    var body = $('history');
    clear(body);
    for (var i = list.length - 1; i >= 0 && i >= list.length - 50; i--) {
      var h = list[i] || {};
      var tr = el('tr');
      tr.appendChild(el('td', 'nowrap', when(parseTime(h.at))));
      tr.appendChild(el('td', 'nowrap', h.from + ' \u2192 ' + h.to));
      tr.appendChild(el('td', '', h.mode));
      tr.appendChild(el('td', 'actor', h.by));
      body.appendChild(tr);
    }
    if (!list.length) { body.appendChild(emptyRow(4, 'no changes since the server started')); }
  }

  function renderNodes(list) {
    var body = $('nodes');
    clear(body);
    for (var i = 0; i < list.length; i++) {
      var n = list[i] || {};
      var started = parseTime(n.started);
      var tr = el('tr');
      tr.appendChild(el('td', 'name nowrap', n.id));
      tr.appendChild(el('td', '', n.addr));
      tr.appendChild(el('td', '', n.engine));
      tr.appendChild(el('td', '', started === null ? '?' : when(started) + ' (' + span(now() - started) + ')'));
      body.appendChild(tr);
    }
    if (!list.length) { body.appendChild(emptyRow(4, 'no nodes reported')); }
  }

  function drawCharts() {
    page.charts.conn.draw(page.samples);
    page.charts.latency.draw(page.samples);
  }

  // ---- the level controls -----------------------------------------------------

  function pickedLevel() {
    for (var i = 0; i <= 3; i++) {
      if ($('pin-' + i).checked) { return i; }
    }
    return null;
  }

  function levelMsg(text, cls) {
    var m = $('level-msg');
    setText(m, text);
    m.className = 'msg' + (cls ? ' ' + cls : '');
  }

  function pinLevel() {
    var level = pickedLevel();
    var dur = trim($('pin-for').value);
    if (level === null) { levelMsg('Pick a level to pin.', 'bad'); return; }
    if (dur && !DURATION_RE.test(dur)) { levelMsg('The duration is like 30m, 2h or 90s.', 'bad'); return; }
    var body = { level: level, mode: 'manual' };
    if (dur) { body['for'] = dur; }
    setLevel(body, 'Pinned level ' + level + (dur ? ' for ' + dur : ' with no expiry') + '.');
  }

  function setLevel(body, okText) {
    $('pin-go').disabled = true;
    $('auto-go').disabled = true;
    levelMsg('applying…');
    api('PUT', '/v1/admin/level', body, function (err, st) {
      $('pin-go').disabled = false;
      $('auto-go').disabled = false;
      if (err) {
        if (fatal(err)) { return; }
        levelMsg('Not applied: ' + err.message, 'bad');
        return;
      }
      page.levelTouched = false;
      levelMsg(okText, 'ok');
      page.levelSaid = st && typeof st.level === 'number' ? { level: st.level, mode: st.mode } : null;
      gotStatus(st, false);
      pollNow();
    });
  }

  // ---- wiring ----------------------------------------------------------------------

  function wire() {
    page.charts.conn = new OpsChart($('chart-conn'), [
      { key: 'websocket', color: '#3b63d9' },
      { key: 'sse', color: '#1f9d63' },
      { key: 'poll', color: '#e07b24' }
    ], { floor: 4, integer: true, windowMs: OPTS.windowMs });
    page.charts.latency = new OpsChart($('chart-latency'), [
      { key: 'delivery', color: '#7b3fd1', width: 2 },
      { key: 'fanout', color: '#2a9bb5', width: 1.5 },
      { key: 'store', color: '#9a7b14', width: 1.5 }
    ], { floor: 1, windowMs: OPTS.windowMs });

    on($('login-form'), 'submit', function (ev) {
      ev.preventDefault();
      var name = trim($('login-name').value);
      if (!USER_RE.test(name)) {
        setText($('login-error'), 'Use 1 to 64 letters, digits, dots, dashes or underscores.');
        return;
      }
      setText($('login-error'), '');
      signIn({ name: name });
    });
    on($('token-go'), 'click', function () {
      var tok = $('login-token').value.replace(/\s+/g, '');
      if (!tok) { setText($('login-error'), 'Paste a token first.'); return; }
      setText($('login-error'), '');
      signIn({ token: tok });
    });
    on($('logout'), 'click', function () { signOut(''); });
    on($('level-form'), 'submit', function (ev) {
      ev.preventDefault();
      pinLevel();
    });
    for (var i = 0; i <= 3; i++) {
      on($('pin-' + i), 'change', function () { page.levelTouched = true; });
    }
    on($('auto-go'), 'click', function () { setLevel({ mode: 'auto' }, 'Back to auto: the breakers set the level.'); });
    on($('rollout-form'), 'submit', function (ev) {
      ev.preventDefault();
      startRollout();
    });
    on($('rollouts'), 'click', function (ev) {
      var t = ev.target;
      var op = t.getAttribute && t.getAttribute('data-op');
      if (op) { rolloutOp(op, t.getAttribute('data-flag')); }
    });

    var resizeTimer = null;
    on(root, 'resize', function () {
      if (resizeTimer) { clearTimeout(resizeTimer); }
      resizeTimer = setTimeout(drawCharts, 100);
    });
    // The live indicator ages while nothing comes (a hung request).
    setInterval(function () { if (page.token) { renderLive(); } }, 1000);
  }

  function boot() {
    if (!OpsChart || !root.XMLHttpRequest) { return; }
    wire();
    var sess = load(SESSION);
    if (sess && (sess.name || sess.token)) {
      showLogin('');
      signIn(sess);
    } else {
      showLogin('');
    }
  }

  boot();
})(this);
