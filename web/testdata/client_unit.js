// Unit tests of static/chat-client.js in Node, with a fake clock, fake
// XMLHttpRequest, WebSocket, EventSource and localStorage. Run by
// web/client_test.go: `node testdata/client_unit.js`. It prints one line per
// case and exits non-zero if any failed.
'use strict';

const fs = require('fs');
const path = require('path');
const vm = require('vm');
const assert = require('assert');

const SOURCE = fs.readFileSync(path.join(__dirname, '..', 'static', 'chat-client.js'), 'utf8');

// ---- the fake world ---------------------------------------------------------

function makeWorld(opts) {
  opts = opts || {};
  const w = { now: 1000000, timers: [], seq: 0, xhrs: [], sockets: [], streams: [], random: 0.5 };

  w.setTimeout = (fn, ms) => { const id = ++w.seq; w.timers.push({ id, at: w.now + Math.max(0, ms || 0), fn }); return id; };
  w.clearTimeout = (id) => { w.timers = w.timers.filter((t) => t.id !== id); };
  w.setInterval = () => 0;
  w.clearInterval = () => {};
  // advance runs every timer due within ms, in order.
  w.advance = (ms) => {
    const end = w.now + ms;
    for (;;) {
      w.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const t = w.timers[0];
      if (!t || t.at > end) break;
      w.timers.shift();
      w.now = t.at;
      t.fn();
    }
    w.now = end;
  };
  w.flush = () => w.advance(0);

  const RealDate = Date;
  function FakeDate() { return new RealDate(w.now); }
  FakeDate.now = () => w.now;

  const store = new Map();
  const localStorage = {
    getItem: (k) => (store.has(k) ? store.get(k) : null),
    setItem: (k, v) => { store.set(k, String(v)); },
    removeItem: (k) => { store.delete(k); },
    key: (i) => Array.from(store.keys())[i] || null,
    get length() { return store.size; },
  };
  w.store = store;

  function XMLHttpRequest() { this.headers = {}; this.readyState = 0; this.status = 0; this.responseText = ''; this.respHeaders = {}; }
  XMLHttpRequest.prototype.open = function (method, url) { this.method = method; this.url = url; };
  XMLHttpRequest.prototype.setRequestHeader = function (k, v) { this.headers[k] = v; };
  XMLHttpRequest.prototype.getResponseHeader = function (k) { return this.respHeaders[k] || null; };
  XMLHttpRequest.prototype.send = function (body) { this.body = body ? JSON.parse(body) : undefined; w.xhrs.push(this); };
  XMLHttpRequest.prototype.abort = function () { this.aborted = true; };
  // respondRaw answers with bytes (a Buffer), for a request that asked
  // for an arraybuffer.
  XMLHttpRequest.prototype.respondRaw = function (status, bytes) {
    this.status = status;
    this.response = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    this.respHeaders = {};
    this.readyState = 4;
    w.xhrs = w.xhrs.filter((x) => x !== this);
    this.onreadystatechange();
  };
  XMLHttpRequest.prototype.respond = function (status, data, headers) {
    this.status = status;
    this.responseText = data === undefined ? '' : JSON.stringify(data);
    this.respHeaders = headers || {};
    this.readyState = 4;
    w.xhrs = w.xhrs.filter((x) => x !== this);
    this.onreadystatechange();
  };

  function WebSocket(url) { this.url = url; this.readyState = 0; this.sent = []; w.sockets.push(this); }
  WebSocket.prototype.send = function (s) { this.sent.push(JSON.parse(s)); };
  WebSocket.prototype.close = function () { this.readyState = 3; this.closedByClient = true; };
  WebSocket.prototype.open = function () { this.readyState = 1; this.onopen && this.onopen(); };
  WebSocket.prototype.frame = function (v) { this.onmessage && this.onmessage({ data: JSON.stringify(v) }); };
  WebSocket.prototype.die = function (code, reason) { this.readyState = 3; this.onclose && this.onclose({ code, reason: reason || '' }); };

  function EventSource(url) { this.url = url; this.readyState = 0; w.streams.push(this); }
  EventSource.prototype.close = function () { this.readyState = 2; this.closedByClient = true; };
  EventSource.prototype.event = function (v) { this.readyState = 1; this.onmessage && this.onmessage({ data: JSON.stringify(v) }); };
  EventSource.prototype.fail = function (state) { this.readyState = state; this.onerror && this.onerror({}); };

  const win = {
    setTimeout: w.setTimeout, clearTimeout: w.clearTimeout, setInterval: w.setInterval, clearInterval: w.clearInterval,
    Date: FakeDate, Math: Object.create(Math), JSON, encodeURIComponent, decodeURIComponent, escape, parseInt, isNaN, Object, Array, String, Error,
    localStorage, XMLHttpRequest, location: { protocol: 'http:', host: 'chat.test' },
    atob: (s) => Buffer.from(s, 'base64').toString('binary'),
    console, addEventListener: () => {}, removeEventListener: () => {},
  };
  win.Math.random = () => w.random;
  // A DecompressionStream whose every operation the world counts until
  // it settles (w.inflight), so that a test waits for the inflater's
  // work itself, not for a number of turns.
  w.inflight = 0;
  const track = (p) => {
    w.inflight++;
    const done = () => { w.inflight--; };
    p.then(done, done);
    return p;
  };
  function TrackedDecompressionStream(format) {
    const ds = new DecompressionStream(format);
    const wr = ds.writable.getWriter();
    const rd = ds.readable.getReader();
    this.writable = { getWriter: () => ({ write: (c) => track(wr.write(c)), abort: (e) => track(wr.abort(e)) }) };
    this.readable = { getReader: () => ({ read: () => track(rd.read()), cancel: (e) => track(rd.cancel(e)) }) };
  }
  if (opts.deflate) Object.assign(win, { DecompressionStream: TrackedDecompressionStream, TextDecoder, Uint8Array, Promise });
  if (!opts.noWebSocket) win.WebSocket = WebSocket;
  if (!opts.noEventSource) win.EventSource = EventSource;
  win.window = win;
  vm.createContext(win);
  vm.runInContext(SOURCE, win, { filename: 'chat-client.js' });
  w.win = win;
  w.ChatClient = win.ChatClient;

  // Helpers to answer the client's requests.
  w.pending = (pathPrefix) => w.xhrs.find((x) => x.url.indexOf(pathPrefix) === 0);
  w.answer = (pathPrefix, status, data, headers) => {
    const x = w.pending(pathPrefix);
    assert.ok(x, 'no pending request to ' + pathPrefix + '; pending: ' + w.xhrs.map((r) => r.url).join(', '));
    x.respond(status, data, headers);
    w.flush();
    return x;
  };
  return w;
}

function jwt(claims) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  return b({ alg: 'HS256' }) + '.' + b(claims) + '.sig';
}

const OFFER = { transports: ['websocket', 'sse', 'poll'], level: 0, features: { read_receipts: true, typing: true, presence: true }, heartbeat_ms: 15000, poll_interval_ms: 5000 };
const CONTROL = { type: 'control', level: 0, transports: ['websocket', 'sse', 'poll'], features: OFFER.features, poll_interval_ms: 5000 };

// tokenSource counts refreshes; each refresh makes a new token.
function tokens(w) {
  const src = { refreshes: 0, token: jwt({ sub: 'alice', name: 'Alice', exp: Math.floor(w.now / 1000) + 86400 }) };
  src.get = (cb) => w.setTimeout(() => cb(null, src.token), 0);
  src.refresh = (cb) => { src.refreshes++; src.token = jwt({ sub: 'alice', name: 'Alice', exp: Math.floor(w.now / 1000) + 86400, n: src.refreshes }); w.setTimeout(() => cb(null, src.token), 0); };
  return src;
}

// connectWS drives a client to a live WebSocket and returns the socket.
function connectWS(w, c) {
  w.flush();
  negotiated(w, 'T' + w.sockets.length);
  const ws = w.sockets[w.sockets.length - 1];
  assert.ok(ws && !ws.closedByClient, 'a websocket was opened');
  assert.ok(/^ws:\/\/chat\.test\/v1\/ws\?ticket=T\d+&heartbeat=app&batch=1$/.test(ws.url), 'ticket in the URL, no token: ' + ws.url);
  ws.open();
  ws.frame(CONTROL);
  w.flush();
  assert.strictEqual(c.getState().connected, true);
  assert.strictEqual(c.getState().tier, 'websocket');
  return ws;
}

function newClient(w, extra) {
  const src = tokens(w);
  const opts = Object.assign({ tokenSource: src }, extra || {});
  const c = new w.ChatClient(opts);
  c.src = src;
  c.got = [];
  c.on('message', (m) => c.got.push(m.room + ':' + m.seq));
  return c;
}

// negotiated answers the pending negotiate with OFFER and then, when a
// ticket is given, the ticket request the first tier makes.
function negotiated(w, ticket) {
  w.answer('/v1/negotiate', 200, OFFER);
  if (ticket) w.answer('/v1/ticket', 200, { ticket, expires_in: 60 });
}

// startInGeneral starts a client that follows general and takes it
// through negotiate (and the ticket, when given) to its first tier.
function startInGeneral(w, ticket, extra) {
  const c = newClient(w, extra);
  c.join('general');
  c.start();
  w.flush();
  negotiated(w, ticket);
  return c;
}

// ---- deflated polls ----------------------------------------------------------

const zlib = require('zlib');

// settled runs due fake timers and waits until the inflater has nothing
// under way (w.inflight), twice in a row; it fails if that never comes.
async function settled(w) {
  let quiet = 0;
  for (let i = 0; i < 100000; i++) {
    await new Promise((r) => setImmediate(r));
    w.flush();
    quiet = w.inflight === 0 ? quiet + 1 : 0;
    if (quiet >= 2) return;
  }
  throw new Error('the inflater never settled: ' + w.inflight + ' operations under way');
}

// NODE_INFLATES: this Node's DecompressionStream takes 'deflate-raw'
// (20.12 and later; Debian 12's Node 18 does not). Without it the
// deflated-poll cases are skipped: the browser tests cover them in
// Chromium.
const NODE_INFLATES = (() => {
  try { return typeof DecompressionStream === 'function' && !!new DecompressionStream('deflate-raw'); } catch (e) { return false; }
})();

// crc32 is the CRC-32 (IEEE) of buf, as a deflated answer carries it
// (zlib.crc32 is Node 20.15 and later).
function crc32(buf) {
  let crc = 0xffffffff;
  for (const b of buf) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// chunk is a deflated poll answer: kind c or n, the JSON's length and
// CRC-32, and json deflated against dict (the stream's window) when given.
function chunk(kind, json, dict) {
  const opts = { finishFlush: zlib.constants.Z_SYNC_FLUSH };
  if (dict) opts.dictionary = dict;
  const crc = crc32(Buffer.from(json)).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(kind + Buffer.byteLength(json) + ' ' + crc + '\n'), zlib.deflateRawSync(Buffer.from(json), opts)]);
}

// ---- the cases --------------------------------------------------------------

const cases = [];
function test(name, fn) { cases.push({ name, fn }); }

test('backoff is full jitter, 1 s base, 30 s cap', () => {
  const w = makeWorld();
  const B = w.ChatClient.backoff;
  w.random = 0.999999;
  const maxes = [0, 1, 2, 3, 4, 5, 6, 10].map((n) => B(n, 1000, 30000));
  assert.deepStrictEqual(maxes, [999, 1999, 3999, 7999, 15999, 29999, 29999, 29999]);
  w.random = 0;
  assert.strictEqual(B(7, 1000, 30000), 0);
});

test('a ticket given with the offer opens the stream without POST /v1/ticket while fresh', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.join('general');
  c.start();
  w.flush();
  w.answer('/v1/negotiate', 200, Object.assign({}, OFFER, { ticket: 'N1', ticket_expires_in: 60 }));
  assert.ok(!w.pending('/v1/ticket'), 'no ticket request');
  const ws = w.sockets[w.sockets.length - 1];
  assert.ok(ws && /[?&]ticket=N1&/.test(ws.url), 'the offer\'s ticket in the URL: ' + (ws && ws.url));
  ws.open();
  ws.frame(CONTROL);
  w.flush();
  assert.strictEqual(c.getState().connected, true);
  // A ticket already past half its life is not used: the tier asks.
  ws.die(1006, '');
  w.advance(1000);
  w.flush();
  w.answer('/v1/negotiate', 200, Object.assign({}, OFFER, { ticket: 'N2', ticket_expires_in: 0 }));
  assert.ok(w.pending('/v1/ticket'), 'a stale ticket is not used');
});

test('negotiate, ticket, websocket; joins resume from the last seq', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.join('general');
  c.start();
  const ws = connectWS(w, c);
  // A socket a ticket opened only receives until the token is proved on
  // it: the first frame.
  assert.deepStrictEqual(ws.sent[0], { type: 'refresh', token: c.src.token }, 'the token proved first');
  assert.deepStrictEqual(ws.sent[1], { type: 'join', room: 'general' }, 'live join when no seq is known');
  ws.frame({ type: 'joined', room: 'general', head: 5, recovered: true });
  w.flush();
  w.answer('/v1/rooms/general/history?before=6', 200, { messages: [], head: 5, first: 1 });
  ws.frame([{ type: 'message', room: 'general', seq: 6, id: 'a', text: 'x' }, { type: 'message', room: 'general', seq: 7, id: 'b', text: 'y' }]);
  assert.deepStrictEqual(c.got, ['general:6', 'general:7']);
  ws.die(1006, '');
  assert.strictEqual(c.getState().connected, false);
  assert.strictEqual(c.getState().status, 'waiting');
  w.advance(1000);
  const ws2 = connectWS(w, c);
  assert.deepStrictEqual(ws2.sent[1], { type: 'join', room: 'general', since: 7 });
  ws2.frame({ type: 'joined', room: 'general', head: 8, recovered: true });
  // A replay that overlaps what was seen is deduplicated by seq.
  ws2.frame([{ type: 'message', room: 'general', seq: 7, id: 'b' }, { type: 'message', room: 'general', seq: 8, id: 'c' }]);
  ws2.frame({ type: 'message', room: 'general', seq: 8, id: 'c' });
  assert.deepStrictEqual(c.got, ['general:6', 'general:7', 'general:8']);
});

test('server pings get a pong', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  ws.frame({ type: 'ping' });
  assert.deepStrictEqual(ws.sent[ws.sent.length - 1], { type: 'pong' });
});

test('close 4003 stops for good, and says why', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  ws.die(4003, 'forbidden');
  const s = c.getState();
  assert.strictEqual(s.status, 'stopped');
  assert.ok(/forbidden/.test(s.reason), s.reason);
  w.advance(10 * 60000);
  assert.strictEqual(w.xhrs.length, 0, 'no request after 4003');
  assert.strictEqual(w.sockets.length, 1);
});

test('close 4012 refreshes the token, then reconnects', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  ws.die(4012, 'token expired');
  w.flush();
  assert.strictEqual(c.src.refreshes, 1);
  const neg = w.pending('/v1/negotiate');
  assert.ok(neg, 'negotiates again at once');
  assert.strictEqual(neg.headers.Authorization, 'Bearer ' + c.src.token, 'with the new token');
});

test('close 4013 (the stream\'s ticket expired) negotiates again at once, with the same token', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  ws.die(4013, 'ticket expired');
  w.flush();
  assert.strictEqual(c.src.refreshes, 0, 'the token is still good');
  const neg = w.pending('/v1/negotiate');
  assert.ok(neg, 'negotiates again at once');
  assert.strictEqual(neg.headers.Authorization, 'Bearer ' + c.src.token);

  // An event stream ends so when its ticket does: its disconnect envelope
  // says 4013, and the client comes back on a new ticket, resuming.
  const w2 = makeWorld({ noWebSocket: true });
  const c2 = startInGeneral(w2, 'S');
  w2.streams[0].event(CONTROL);
  w2.streams[0].event({ type: 'message', room: 'general', seq: 4, id: 'm4', text: 'x' });
  w2.streams[0].event({ type: 'disconnect', close_code: 4013, reason: 'ticket expired' });
  assert.ok(w2.streams[0].closedByClient, 'the browser does not reconnect on the old ticket');
  w2.flush();
  assert.strictEqual(c2.src.refreshes, 0, 'the token is still good');
  negotiated(w2, 'S2');
  assert.strictEqual(w2.streams.length, 2, 'a new stream at once');
  assert.ok(/since=general%3A4&ticket=S2&/.test(w2.streams[1].url), 'on the new ticket, from seq 4: ' + w2.streams[1].url);
});

test('a second 4013 within half a ticket\'s life backs off instead of negotiating at once', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  ws.die(4013, 'ticket expired');
  const ws2 = connectWS(w, c); // the first: negotiated again at once
  ws2.die(4013, 'ticket expired');
  w.flush();
  assert.strictEqual(c.getState().status, 'waiting', 'backs off');
  assert.ok(!w.pending('/v1/negotiate'), 'no negotiate at once');
});

test('close 1001 waits exactly the reconnect hint', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  ws.die(1001, 'server shutting down; reconnect_ms=2500');
  assert.strictEqual(c.getState().retryAt - w.now, 2500);
  w.advance(2499);
  assert.ok(!w.pending('/v1/negotiate'));
  w.advance(1);
  assert.ok(w.pending('/v1/negotiate'));
});

test('close 4001 moves to the best tier of the last control, without negotiating', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.join('general');
  c.start();
  const ws = connectWS(w, c);
  ws.frame({ type: 'joined', room: 'general', head: 3, recovered: true });
  w.answer('/v1/rooms/general/history', 200, { messages: [], head: 3, first: 1 });
  ws.frame({ type: 'control', level: 2, transports: ['sse', 'poll'], features: {}, poll_interval_ms: 5000 });
  ws.die(4001, 'switch transport');
  w.flush();
  assert.ok(!w.pending('/v1/negotiate'), 'no negotiate');
  w.answer('/v1/ticket', 200, { ticket: 'S1' });
  const es = w.streams[0];
  assert.ok(es, 'an event stream');
  assert.strictEqual(es.url, '/v1/sse?rooms=general&since=general%3A3&ticket=S1&batch=1');
  es.event(CONTROL);
  assert.strictEqual(c.getState().tier, 'sse');
  assert.strictEqual(c.getState().connected, true);
});

test('4008 and 4009 reconnect within a second and resume', () => {
  for (const code of [4008, 4009]) {
    const w = makeWorld();
    const c = newClient(w);
    c.start();
    const ws = connectWS(w, c);
    w.random = 0.999;
    ws.die(code, '');
    assert.ok(c.getState().retryAt - w.now < 1000, code + ': ' + (c.getState().retryAt - w.now));
  }
});

test('a refused websocket falls back to sse, then poll', () => {
  const w = makeWorld();
  const c = startInGeneral(w, 'T');
  w.sockets[0].die(1006, ''); // refused before it opened
  w.flush();
  // A browser sees no status: negotiate tells a blocked tier from a busy
  // server. It answers, so the tier is to blame.
  negotiated(w, 'S');
  const es = w.streams[0];
  es.fail(2); // the stream is refused too
  w.flush();
  w.answer('/v1/negotiate', 200, OFFER);
  const poll = w.pending('/v1/poll?rooms=general');
  assert.ok(poll, 'polls');
  assert.ok(!/ticket|token/.test(poll.url), 'no credential in the poll URL');
  assert.ok(/^Bearer /.test(poll.headers.Authorization));
  poll.respond(200, { events: [{ type: 'joined', room: 'general', head: 0, recovered: true }], cursor: 'C1', control: CONTROL });
  w.flush();
  assert.strictEqual(c.getState().tier, 'poll');
  assert.strictEqual(c.getState().connected, true);
  const next = w.pending('/v1/poll?rooms=general');
  assert.ok(next && /cursor=C1/.test(next.url) && !/since=/.test(next.url), 'follows the cursor: ' + (next && next.url));
});

test('a poll passes back the tag of the control it has, and forgets it when a control comes among the events', () => {
  const w = makeWorld();
  const c = startInGeneral(w, 'T');
  w.sockets[0].die(1006, '');
  w.flush();
  negotiated(w, 'S');
  w.streams[0].fail(2);
  w.flush();
  w.answer('/v1/negotiate', 200, OFFER);
  const tagOf = (req) => { const m = /[?&]control_tag=([^&]*)/.exec(req.url); return m ? m[1] : ''; };
  let poll = w.pending('/v1/poll?rooms=general');
  assert.strictEqual(tagOf(poll), '', 'the first poll has no tag');
  poll.respond(200, { events: [{ type: 'joined', room: 'general', head: 0, recovered: true }], cursor: 'C1', control: CONTROL, control_tag: 'a1' });
  w.flush();
  poll = w.pending('/v1/poll?rooms=general');
  assert.strictEqual(tagOf(poll), 'a1', poll.url);
  // The control left out: the tag stands, and so does the offer.
  poll.respond(200, { events: [], cursor: 'C2' });
  w.flush();
  w.advance(5000);
  poll = w.pending('/v1/poll?rooms=general');
  assert.strictEqual(tagOf(poll), 'a1', poll.url);
  assert.strictEqual(c.getState().tier, 'poll');
  // A control among the events is applied after the answer's: the next
  // poll asks for the control again.
  poll.respond(200, { events: [Object.assign({}, CONTROL, { level: 1 })], cursor: 'C3', control: CONTROL, control_tag: 'a1' });
  w.flush();
  poll = w.pending('/v1/poll?rooms=general');
  assert.strictEqual(tagOf(poll), '', poll.url);
  // A control without a tag (an older server) clears it too.
  poll.respond(200, { events: [], cursor: 'C4', control: CONTROL, control_tag: 'b2' });
  w.flush();
  w.advance(5000);
  poll = w.pending('/v1/poll?rooms=general');
  assert.strictEqual(tagOf(poll), 'b2', poll.url);
  poll.respond(200, { events: [], cursor: 'C5', control: CONTROL });
  w.flush();
  w.advance(5000);
  poll = w.pending('/v1/poll?rooms=general');
  assert.strictEqual(tagOf(poll), '', poll.url);
});

test('a busy server keeps the client on websocket: it backs off instead of falling', () => {
  const w = makeWorld();
  const c = startInGeneral(w, 'T');
  w.sockets[0].die(1006, ''); // the upgrade got 503 unavailable: the page cannot tell
  w.flush();
  // The probe fails too: the server is busy. Retry-After is a floor, and
  // the backoff's jitter (500 ms at attempt 0 with random 0.5) comes on top.
  w.answer('/v1/negotiate', 503, { type: 'error', code: 'unavailable', message: 'draining' }, { 'Retry-After': '1' });
  let s = c.getState();
  assert.strictEqual(s.status, 'waiting');
  assert.ok(/did not open, nor did negotiate/.test(s.reason), s.reason);
  assert.strictEqual(s.retryAt - w.now, 1500);
  assert.ok(!w.pending('/v1/ticket'), 'no ticket for a lower tier');
  w.advance(1499);
  assert.ok(!w.pending('/v1/negotiate'), 'waits at least Retry-After');
  w.advance(1);
  w.answer('/v1/negotiate', 429, { type: 'error', code: 'too_many_connections', message: 'cap' }, { 'Retry-After': '1' });
  s = c.getState();
  assert.strictEqual(s.retryAt - w.now, 2000, 'attempt 1: 1 s + jitter up to 2 s');
  w.advance(2000);
  w.answer('/v1/negotiate', 0, undefined); // refused or reset: down
  assert.strictEqual(c.getState().reason, 'server unreachable');
  w.advance(c.getState().retryAt - w.now);
  negotiated(w, 'T2');
  assert.strictEqual(w.sockets.length, 2, 'websocket again, first');
  w.sockets[1].open();
  w.sockets[1].frame(CONTROL);
  assert.strictEqual(c.getState().tier, 'websocket');
  assert.strictEqual(c.getState().connected, true);
  assert.strictEqual(w.streams.length, 0, 'never opened an event stream');
  assert.deepStrictEqual(Object.keys(c._penalty), [], 'websocket was not marked as failed');
});

test('a busy server keeps an sse client on sse; a busy poll waits Retry-After', () => {
  const w = makeWorld({ noWebSocket: true });
  const c = startInGeneral(w, 'S');
  w.streams[0].fail(2); // refused before it opened
  w.flush();
  w.answer('/v1/negotiate', 0, undefined);
  assert.strictEqual(c.getState().status, 'waiting');
  assert.ok(!w.pending('/v1/poll'), 'no poll');
  w.advance(c.getState().retryAt - w.now);
  negotiated(w, 'S2');
  assert.strictEqual(w.streams.length, 2, 'sse again');
  w.streams[1].event(CONTROL);
  assert.strictEqual(c.getState().tier, 'sse');

  // Poll can read its answer: a connection cap is the server, not the tier.
  const w2 = makeWorld({ noWebSocket: true, noEventSource: true });
  const p = startInGeneral(w2);
  w2.answer('/v1/poll', 429, { type: 'error', code: 'too_many_connections', message: 'cap' }, { 'Retry-After': '1' });
  assert.strictEqual(p.getState().status, 'waiting');
  assert.strictEqual(p.getState().retryAt - w2.now, 1500);
  assert.deepStrictEqual(Object.keys(p._penalty), []);
});

test('a websocket closed with 1001 before its first envelope waits the hint, on websocket', () => {
  const w = makeWorld();
  const c = startInGeneral(w, 'T');
  w.sockets[0].open();
  w.sockets[0].die(1001, 'server shutting down; reconnect_ms=700');
  w.flush();
  assert.strictEqual(c.getState().retryAt - w.now, 700);
  assert.ok(!w.pending('/v1/ticket') && !w.pending('/v1/negotiate'));
  w.advance(700);
  negotiated(w, 'T2');
  assert.strictEqual(w.sockets.length, 2);
});

test('the probe\'s offer decides where to fall', () => {
  const w = makeWorld();
  const c = startInGeneral(w, 'T');
  w.sockets[0].die(1006, ''); // 503 overloaded: the level moved on
  w.flush();
  w.answer('/v1/negotiate', 200, Object.assign({}, OFFER, { level: 3, transports: ['poll'] }));
  assert.strictEqual(c.getState().level, 3);
  assert.ok(!w.pending('/v1/ticket'), 'sse is not offered: not tried');
  assert.ok(w.pending('/v1/poll?rooms=general'), 'polls');
  assert.deepStrictEqual(Object.keys(c._penalty), [], 'a tier that is not offered did not fail');
});

test('a tier that never answers times out and the next is tried', () => {
  const w = makeWorld();
  const c = startInGeneral(w, 'T', { connectTimeoutMs: 5000 });
  w.sockets[0].open(); // opens, but no envelope ever comes
  w.advance(4999);
  assert.strictEqual(w.streams.length, 0);
  w.advance(1);
  assert.ok(w.sockets[0].closedByClient);
  assert.ok(w.pending('/v1/ticket'), 'asks a ticket for sse');
});

test('three silent heartbeats mean a dead link', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  connectWS(w, c);
  w.advance(44999);
  assert.strictEqual(c.getState().connected, true);
  w.advance(1);
  assert.strictEqual(c.getState().connected, false);
  assert.ok(/heartbeat/.test(c.getState().reason), c.getState().reason);
});

test('backoff grows while the server is down, and the state says so', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  w.random = 0.999;
  w.flush();
  const delays = [];
  for (let i = 0; i < 7; i++) {
    w.answer('/v1/negotiate', 0, undefined);
    const s = c.getState();
    assert.strictEqual(s.status, 'waiting');
    assert.strictEqual(s.reason, 'server unreachable');
    delays.push(s.retryAt - w.now);
    w.advance(s.retryAt - w.now);
  }
  assert.deepStrictEqual(delays, [999, 1998, 3996, 7992, 15984, 29970, 29970]);
});

test('the outbox keeps sends in localStorage and retries with the same id', () => {
  const w = makeWorld();
  const c = newClient(w, { resendMs: 10000 });
  c.join('general');
  const acks = [];
  c.on('ack', (a) => acks.push(a.ack.seq));
  c.start();
  w.flush();
  w.answer('/v1/negotiate', 0, undefined); // server down
  const e = c.send('general', 'hello');
  const key = 'chatd.ob.alice.' + e.id;
  assert.ok(w.store.has(key), 'stored');
  assert.strictEqual(c.pending('general').length, 1);
  w.advance(c.getState().retryAt - w.now);
  const ws = connectWS(w, c);
  const sends = () => ws.sent.filter((f) => f.type === 'send');
  assert.deepStrictEqual(sends(), [{ type: 'send', room: 'general', id: e.id, text: 'hello' }]);
  ws.die(1006, ''); // lost before the ack
  w.advance(c.getState().retryAt - w.now);
  const ws2 = connectWS(w, c);
  const again = ws2.sent.filter((f) => f.type === 'send');
  assert.deepStrictEqual(again, [{ type: 'send', room: 'general', id: e.id, text: 'hello' }], 'same id');
  ws2.frame({ type: 'ack', id: e.id, room: 'general', seq: 1, ts: 5, ref: e.id });
  assert.ok(!w.store.has(key), 'removed once acked');
  assert.deepStrictEqual(acks, [1]);
  assert.strictEqual(c.pending('general').length, 0);
});

test('a permanent send error marks the entry failed and stops retrying', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  const e = c.send('general', 'x'.repeat(5000));
  ws.frame({ type: 'error', code: 'too_large', message: 'text too long', ref: e.id });
  const p = c.pending('general');
  assert.strictEqual(p.length, 1);
  assert.strictEqual(p[0].state, 'failed');
  const sendCount = () => ws.sent.filter((f) => f.type === 'send').length;
  assert.strictEqual(sendCount(), 1);
  w.advance(30000); // (under three heartbeats, so the link stays up)
  assert.strictEqual(sendCount(), 1, 'a failed entry is not retried by itself');
  c.retry(e.id);
  assert.strictEqual(c.pending('general')[0].state, 'pending');
  assert.strictEqual(sendCount(), 2, 'retry() sends it again, same id');
  assert.strictEqual(ws.sent.filter((f) => f.type === 'send')[1].id, e.id);
});

test('sse and poll send through POST /v1/send', () => {
  const w = makeWorld({ noWebSocket: true });
  const c = startInGeneral(w, 'S');
  w.streams[0].event(CONTROL);
  assert.strictEqual(c.getState().tier, 'sse');
  const e = c.send('general', 'hi');
  const post = w.pending('/v1/send');
  assert.deepStrictEqual(post.body, { room: 'general', id: e.id, text: 'hi' });
  post.respond(200, { type: 'ack', id: e.id, room: 'general', seq: 4, ts: 1 });
  assert.strictEqual(c.pending().length, 0);
});

test('off a websocket, room-list changes go one request at a time, in order, retried past the rate', () => {
  const w = makeWorld({ noWebSocket: true });
  const c = startInGeneral(w, 'S');
  w.streams[0].event(CONTROL);
  assert.strictEqual(c.getState().tier, 'sse');
  const lists = () => w.xhrs.filter((x) => /^\/v1\/(join|leave)$/.test(x.url.replace(/^https?:\/\/[^/]+/, '')) || /\/v1\/(join|leave)$/.test(x.url));
  const one = (path, room) => {
    const q = lists();
    assert.strictEqual(q.length, 1, 'one room-list request at a time: ' + q.map((x) => x.url + JSON.stringify(x.body)).join(', '));
    assert.ok(q[0].url.endsWith(path), q[0].url + ', want ' + path);
    assert.deepStrictEqual(q[0].body, { room });
    return q[0];
  };
  c.join('a', { remember: true });
  c.join('b', { remember: true });
  w.flush();
  // Past the user's rate: the same join again after Retry-After, not before.
  one('/v1/join', 'a').respond(429, { code: 'rate_limited', message: 'slow down' }, { 'Retry-After': '2' });
  w.advance(1999);
  assert.strictEqual(lists().length, 0, 'nothing sent before Retry-After');
  w.advance(1);
  one('/v1/join', 'a').respond(200, { ok: true });
  w.flush();
  const b = one('/v1/join', 'b');
  // While b's join is on its way: a leave of a waits behind it; c's join,
  // not yet sent, gives way to c's leave.
  c.leave('a');
  c.join('c', { remember: true });
  c.leave('c');
  b.respond(0); // lost on the way: tried again after a backoff
  w.advance(1499);
  assert.strictEqual(lists().length, 0, 'nothing sent before the backoff');
  w.advance(1); // 500 ms and a full jitter of 2 s at Math.random() = 0.5
  one('/v1/join', 'b').respond(200, { ok: true });
  w.flush();
  one('/v1/leave', 'a').respond(403, { code: 'forbidden', message: 'no' }); // refused for good: dropped
  w.flush();
  one('/v1/leave', 'c').respond(200, { ok: true });
  w.flush();
  assert.strictEqual(lists().length, 0);
  // A leave the server or another tab made (listed: false) stops
  // following and sends nothing; the user's own is reported while queued.
  c.join('gone');
  c.leave('gone', { listed: false });
  w.flush();
  assert.strictEqual(lists().length, 0, 'no POST for a leave the server made');
  c.join('d', { remember: true });
  c.leave('e');
  c.join('e');
  c.leave('e');
  assert.strictEqual(c.leaving('e'), true, 'a leave on its way');
  assert.strictEqual(c.leaving('d'), false);
  one('/v1/join', 'd').respond(200, { ok: true });
  w.flush();
  one('/v1/leave', 'e').respond(200, { ok: true });
  w.flush();
  assert.strictEqual(c.leaving('e'), false, 'the leave has landed');
  // A retry keeps its Retry-After across stop and start.
  c.join('f', { remember: true });
  one('/v1/join', 'f').respond(429, { code: 'rate_limited', message: 'slow down' }, { 'Retry-After': '30' });
  c.stop();
  c.start();
  w.advance(29000);
  assert.strictEqual(lists().length, 0, 'nothing sent before Retry-After, across stop and start');
  w.advance(1000);
  one('/v1/join', 'f').respond(200, { ok: true });
  w.flush();
  // remember asks for a room the client follows, and only for one.
  c.remember('nope');
  c.remember('general');
  w.flush();
  one('/v1/join', 'general').respond(200, { ok: true });
  w.flush();
  assert.strictEqual(lists().length, 0);
});

test('a room-list change lost while the client has no link spends no try and goes once a link is up', () => {
  const w = makeWorld({ noWebSocket: true });
  const c = startInGeneral(w, 'S');
  w.streams[0].event(CONTROL);
  assert.strictEqual(c.getState().connected, true);
  const leaves = () => w.xhrs.filter((x) => /\/v1\/leave$/.test(x.url));
  c.join('z');
  c.leave('z');
  w.flush();
  assert.strictEqual(leaves().length, 1);
  // The stream goes, then the leave's answer is lost: the network is down.
  w.streams[0].fail(2);
  w.flush();
  assert.strictEqual(c.getState().connected, false);
  leaves()[0].respond(0);
  // Ten minutes offline: every request is lost, and the leave is tried
  // again at most once, before the client has failed to reconnect (six
  // tries would have been spent within two minutes, and the leave
  // dropped).
  let tries = 1;
  for (let i = 0; i < 600; i++) {
    for (const x of w.xhrs.slice()) {
      if (/\/v1\/leave$/.test(x.url)) { tries++; }
      x.respond(0);
    }
    w.advance(1000);
  }
  assert.ok(tries <= 2, tries + ' leave requests while offline, want at most 2');
  // Back: the link comes up, and the leave goes.
  for (let i = 0; i < 120 && !c.getState().connected; i++) {
    if (w.pending('/v1/negotiate')) { w.answer('/v1/negotiate', 200, OFFER); }
    if (w.pending('/v1/ticket')) { w.answer('/v1/ticket', 200, { ticket: 'S2', expires_in: 60 }); }
    const es = w.streams[w.streams.length - 1];
    if (es && es.readyState === 0 && !es.closedByClient) { es.event(CONTROL); w.flush(); }
    const p = w.pending('/v1/poll');
    if (p && !c.getState().connected) { p.respond(200, { events: [], cursor: 'C', control: CONTROL }); w.flush(); }
    if (!c.getState().connected) { w.advance(1000); }
  }
  assert.strictEqual(c.getState().connected, true, 'the client is back');
  w.flush();
  const q = leaves();
  assert.strictEqual(q.length, 1, 'the leave lost offline is sent once the link is up');
  assert.deepStrictEqual(q[0].body, { room: 'z' });
  q[0].respond(200, { ok: true });
  w.flush();
  assert.strictEqual(c.leaving('z'), false, 'the leave has landed');
});

test('a room-list change lost while an event stream reconnects by itself goes once the stream is back', () => {
  const w = makeWorld({ noWebSocket: true });
  const c = newClient(w);
  c.join('general');
  c.start();
  w.flush();
  w.answer('/v1/negotiate', 0); // a failed attempt: the client counts as having been offline
  for (let i = 0; i < 60 && !w.pending('/v1/negotiate'); i++) w.advance(1000);
  negotiated(w, 'S');
  w.streams[w.streams.length - 1].event(CONTROL);
  w.flush();
  assert.strictEqual(c.getState().connected, true);
  const leaves = () => w.xhrs.filter((x) => /\/v1\/leave$/.test(x.url));
  c.join('z'); // the stream opens again for the new room
  c.leave('z');
  w.flush();
  assert.strictEqual(leaves().length, 1);
  if (w.pending('/v1/ticket')) w.answer('/v1/ticket', 200, { ticket: 'S2', expires_in: 60 });
  const es = w.streams[w.streams.length - 1];
  es.event(CONTROL);
  w.flush();
  assert.strictEqual(c.getState().connected, true, 'connected again after the new room');
  es.fail(0); // the browser reconnects the stream by itself: degraded
  w.flush();
  assert.strictEqual(c.getState().connected, false, 'degraded');
  leaves()[0].respond(0); // lost meanwhile: waits for the link
  w.flush();
  es.event(CONTROL); // back by itself, the same link
  w.flush();
  assert.strictEqual(c.getState().connected, true, 'back');
  const q = leaves();
  assert.strictEqual(q.length, 1, 'the leave is sent once the stream is back');
  q[0].respond(200, { ok: true });
  w.flush();
  assert.strictEqual(c.leaving('z'), false);
});

test('on a websocket the join frame lists a chosen room, and a queued request for it goes', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.join('general');
  // Chosen before the client runs: queued, sent once it starts.
  c.join('early', { remember: true });
  c.start();
  const ws = connectWS(w, c);
  const post = w.pending('/v1/join');
  assert.ok(post, 'the join chosen before start is sent');
  assert.deepStrictEqual(post.body, { room: 'early' });
  post.respond(200, { ok: true });
  w.flush();
  ws.sent.length = 0;
  c.join('x', { remember: true });
  w.flush();
  assert.ok(!w.pending('/v1/join'), 'no POST /v1/join on a live websocket');
  assert.ok(ws.sent.some((e) => e.type === 'join' && e.room === 'x'), 'a join frame');
  c.leave('x');
  w.flush();
  assert.ok(!w.pending('/v1/leave'), 'no POST /v1/leave on a live websocket');
  assert.ok(ws.sent.some((e) => e.type === 'leave' && e.room === 'x'), 'a leave frame');
});

test('where the browser inflates, polls ask for deflated answers and follow the stream', async () => {
  if (!NODE_INFLATES) return 'skip';
  const w = makeWorld({ noWebSocket: true, noEventSource: true, deflate: true });
  const settle = () => settled(w);
  const param = (req, k) => { const m = new RegExp('[?&]' + k + '=([^&]*)').exec(req.url); return m ? decodeURIComponent(m[1]) : null; };
  const c = startInGeneral(w);
  let poll = w.pending('/v1/poll?');
  assert.strictEqual(param(poll, 'deflate'), 'new', poll.url);
  const a1 = JSON.stringify({ events: [{ type: 'joined', room: 'general', head: 0, recovered: true }], cursor: 'C1', control: CONTROL });
  poll.respondRaw(200, chunk('n', a1));
  await settle();
  assert.strictEqual(c.getState().tier, 'poll');
  poll = w.pending('/v1/poll?');
  assert.strictEqual(param(poll, 'deflate'), '1', 'the stream goes on: ' + poll.url);
  assert.strictEqual(param(poll, 'cursor'), 'C1');
  // The next answer refers back to the first one's text.
  const a2 = JSON.stringify({ events: [{ type: 'message', room: 'general', id: 'm1', text: 'hello', seq: 1, from: 'bob', name: 'Bob', ts: 5 }], cursor: 'C2' });
  const z2 = chunk('c', a2, Buffer.from(a1));
  assert.ok(z2.length < a2.length, 'the chunk is smaller than its JSON');
  poll.respondRaw(200, z2);
  await settle();
  assert.deepStrictEqual(c.got, ['general:1']);
  // An answer that does not inflate is dropped unread: the same cursor
  // again, on a new stream.
  poll = w.pending('/v1/poll?');
  assert.strictEqual(param(poll, 'deflate'), '1');
  poll.respondRaw(200, Buffer.concat([Buffer.from('c40 00000000\n'), Buffer.from([0xff, 0xfe, 0xfd, 0, 0, 0, 0xff, 0xff])]));
  await settle();
  poll = w.pending('/v1/poll?');
  assert.ok(poll, 'polls again at once');
  assert.strictEqual(param(poll, 'cursor'), 'C2', 'from the same cursor');
  assert.strictEqual(param(poll, 'deflate'), 'new', 'on a new stream');
  const a3 = JSON.stringify({ events: [{ type: 'message', room: 'general', id: 'm2', text: 'again', seq: 2, from: 'bob', name: 'Bob', ts: 6 }], cursor: 'C3' });
  poll.respondRaw(200, chunk('n', a3));
  await settle();
  assert.deepStrictEqual(c.got, ['general:1', 'general:2']);
  // One that inflates, but not to the JSON its checksum names (a window
  // that is not the server's), is dropped the same way.
  poll = w.pending('/v1/poll?');
  assert.strictEqual(param(poll, 'deflate'), '1');
  const bad = chunk('c', a3.replace('again', 'AGAIN'), Buffer.from(a3));
  const good = chunk('c', a3, Buffer.from(a3));
  const at = bad.indexOf(0x20) + 1; // the checksum of the answer as sent, the text of another
  good.copy(bad, at, good.indexOf(0x20) + 1, good.indexOf(0x0a));
  poll.respondRaw(200, bad);
  await settle();
  assert.deepStrictEqual(c.got, ['general:1', 'general:2'], 'nothing delivered from it');
  poll = w.pending('/v1/poll?');
  assert.strictEqual(param(poll, 'cursor'), 'C3', 'from the same cursor');
  assert.strictEqual(param(poll, 'deflate'), 'new', 'on a new stream');
  poll.respondRaw(200, chunk('n', JSON.stringify({ events: [], cursor: 'C3' })));
  await settle();
  // A plain JSON answer (compression off at this level) ends the stream.
  poll = w.pending('/v1/poll?');
  assert.strictEqual(param(poll, 'deflate'), '1');
  poll.respondRaw(200, Buffer.from(JSON.stringify({ events: [{ type: 'message', room: 'general', id: 'm3', text: 'plain', seq: 3, from: 'bob', name: 'Bob', ts: 7 }], cursor: 'C4' })));
  await settle();
  assert.deepStrictEqual(c.got, ['general:1', 'general:2', 'general:3']);
  poll = w.pending('/v1/poll?');
  assert.strictEqual(param(poll, 'deflate'), 'new', 'a new stream after a plain answer');
  c.stop();
});

test('a room change while a deflated answer inflates leaves one poll in flight, on a new stream', async () => {
  if (!NODE_INFLATES) return 'skip';
  const w = makeWorld({ noWebSocket: true, noEventSource: true, deflate: true });
  const settle = () => settled(w);
  const polls = () => w.xhrs.filter((x) => x.url.indexOf('/v1/poll?') === 0 && !x.aborted);
  const c = startInGeneral(w);
  const a1 = JSON.stringify({ events: [{ type: 'joined', room: 'general', head: 0, recovered: true }], cursor: 'C1', control: CONTROL });
  w.pending('/v1/poll?').respondRaw(200, chunk('n', a1));
  await settle();
  const a2 = JSON.stringify({ events: [{ type: 'message', room: 'general', id: 'm1', text: 'hello', seq: 1, from: 'bob', name: 'Bob', ts: 5 }], cursor: 'C2' });
  w.pending('/v1/poll?').respondRaw(200, chunk('c', a2, Buffer.from(a1)));
  c.join('other'); // while a2 inflates
  w.flush();
  await settle();
  assert.strictEqual(polls().length, 1, 'polls in flight');
  assert.ok(/[?&]deflate=new/.test(polls()[0].url), 'the stream starts over: ' + polls()[0].url);
  assert.deepStrictEqual(c.got, [], 'the abandoned answer is not delivered');
  c.stop();
});

test('a deflated answer announcing a huge length neither throws nor stalls the link', async () => {
  if (!NODE_INFLATES) return 'skip';
  const w = makeWorld({ noWebSocket: true, noEventSource: true, deflate: true });
  const settle = () => settled(w);
  const c = startInGeneral(w);
  const body = Buffer.concat([Buffer.from('n99999999999999 00000000\n'), zlib.deflateRawSync(Buffer.from('{}'), { finishFlush: zlib.constants.Z_SYNC_FLUSH })]);
  w.pending('/v1/poll?').respondRaw(200, body);
  await settle();
  const poll = w.pending('/v1/poll?');
  assert.ok(poll, 'the link polls again');
  assert.ok(/[?&]deflate=new/.test(poll.url), poll.url);
  c.stop();
});

test('where the browser cannot inflate, polls ask for plain answers', () => {
  const w = makeWorld({ noWebSocket: true, noEventSource: true });
  startInGeneral(w);
  const poll = w.pending('/v1/poll?');
  assert.ok(!/[?&]deflate=/.test(poll.url), poll.url);
});

test('without WebSocket and EventSource the client polls', () => {
  const w = makeWorld({ noWebSocket: true, noEventSource: true });
  const c = startInGeneral(w);
  assert.strictEqual(w.pending('/v1/ticket'), undefined, 'no ticket for poll');
  w.answer('/v1/poll?rooms=general', 200, { events: [], cursor: 'C', control: CONTROL });
  assert.strictEqual(c.getState().tier, 'poll');
});

test('a control that drops the current tier moves; one that offers a better tier moves up later', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  ws.frame({ type: 'control', level: 2, transports: ['sse', 'poll'], features: { read_receipts: false, typing: false } });
  assert.strictEqual(c.getState().level, 2);
  assert.strictEqual(c.feature('typing'), false);
  w.advance(2000);
  assert.ok(ws.closedByClient, 'left websocket');
  w.answer('/v1/ticket', 200, { ticket: 'S' });
  w.streams[0].event({ type: 'control', level: 2, transports: ['sse', 'poll'], features: {} });
  assert.strictEqual(c.getState().tier, 'sse');
  w.streams[0].event(CONTROL); // level 0 again: websocket is back
  w.advance(999);
  assert.ok(!w.streams[0].closedByClient, 'waits at least the minimum delay');
  w.advance(9001);
  assert.ok(w.streams[0].closedByClient, 'moved up within the jittered delay');
  w.answer('/v1/ticket', 200, { ticket: 'T' });
  const ws2 = w.sockets[w.sockets.length - 1];
  ws2.open();
  ws2.frame(CONTROL);
  assert.strictEqual(c.getState().tier, 'websocket');
});

test('an sse disconnect envelope is obeyed like the close code', () => {
  const w = makeWorld({ noWebSocket: true });
  const c = newClient(w);
  c.start();
  w.flush();
  negotiated(w, 'S');
  w.streams[0].event(CONTROL);
  w.streams[0].event({ type: 'disconnect', close_code: 1001, reason: 'server shutting down', reconnect_ms: 1234 });
  assert.ok(w.streams[0].closedByClient, 'stops the browser reconnecting by itself');
  assert.strictEqual(c.getState().retryAt - w.now, 1234);
});

test('read positions are kept, shared and sent once', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.join('general');
  c.start();
  const ws = connectWS(w, c);
  c.markRead('general', 3);
  c.markRead('general', 2); // never backwards
  w.advance(300);
  assert.deepStrictEqual(ws.sent.filter((f) => f.type === 'read'), [{ type: 'read', room: 'general', seq: 3 }]);
  assert.strictEqual(w.store.get('chatd.read.alice.general'), '3');
  ws.frame({ type: 'receipt', room: 'general', user: 'alice', seq: 5 }); // read in another session
  assert.strictEqual(c.readPosition('general'), 5);
});

test('a batched receipt is one receipt per reader, ours included', () => {
  const w = makeWorld();
  const c = newClient(w);
  const receipts = [];
  c.on('receipt', (r) => receipts.push(r.room + ':' + r.user + ':' + r.seq));
  c.join('general');
  c.start();
  const ws = connectWS(w, c);
  ws.frame([{ type: 'receipt', room: 'general', reads: { alice: 4, bob: 7, carol: 'x' } },
    { type: 'receipt', room: 'general', user: 'dave', seq: 2 }]);
  assert.deepStrictEqual(receipts, ['general:alice:4', 'general:bob:7', 'general:dave:2'], 'a bad position is skipped');
  assert.strictEqual(c.readPosition('general'), 4, 'our own position, read in another session, moves the mark');
});

test('a batched presence envelope is one presence event per user', () => {
  const w = makeWorld();
  const c = newClient(w);
  const seen = [];
  c.on('presence', (p) => seen.push(p.room + ':' + p.user + ':' + (p.name || '') + ':' + p.online + (p.count !== undefined ? ':' + p.count : '')));
  c.join('general');
  c.start();
  const ws = connectWS(w, c);
  ws.frame([{ type: 'presence', room: 'general', changes: [{ user: 'bob', name: 'Bob', online: true }, { user: 'carol', online: false }, { name: 'nobody' }] },
    { type: 'presence', room: 'general', user: 'dave', name: 'Dave', online: true },
    { type: 'presence', room: 'general', count: 120 }]);
  assert.deepStrictEqual(seen, ['general:bob:Bob:true', 'general:carol::false', 'general:dave:Dave:true', 'general:undefined::undefined:120'],
    'one event per change (a change without a user is skipped), then the plain forms as they come');
});

test('a store reset (head below our seq) starts the room over', () => {
  const w = makeWorld();
  const c = newClient(w);
  c.join('general');
  const resets = [];
  c.on('reset', (r) => resets.push(r.room));
  c.start();
  const ws = connectWS(w, c);
  ws.frame({ type: 'joined', room: 'general', head: 0, recovered: true });
  w.answer('/v1/rooms/general/history', 200, { messages: [], head: 0, first: 1 });
  ws.frame({ type: 'message', room: 'general', seq: 1, id: 'a' });
  ws.frame({ type: 'message', room: 'general', seq: 2, id: 'b' });
  ws.die(1006, '');
  w.advance(c.getState().retryAt - w.now);
  const ws2 = connectWS(w, c);
  ws2.frame({ type: 'joined', room: 'general', head: 0, recovered: false });
  assert.deepStrictEqual(resets, ['general']);
  ws2.frame({ type: 'message', room: 'general', seq: 1, id: 'new' });
  assert.deepStrictEqual(c.got, ['general:1', 'general:2', 'general:1']);
});

test('every poll says which level the client knows', () => {
  const w = makeWorld({ noWebSocket: true, noEventSource: true });
  const c = startInGeneral(w);
  const first = w.pending('/v1/poll?rooms=general');
  assert.ok(first, 'polls');
  assert.ok(/[?&]level=0(&|$)/.test(first.url), 'the negotiated level: ' + first.url);
  first.respond(200, { events: [{ type: 'joined', room: 'general', head: 0, recovered: true }], cursor: 'C1', control: CONTROL });
  w.flush();
  const second = w.pending('/v1/poll?rooms=general');
  assert.ok(/cursor=C1/.test(second.url) && /[?&]level=0(&|$)/.test(second.url), second.url);
  // The server is at level 3 now: it answers at once with the new control.
  second.respond(200, { events: [], cursor: 'C1', control: Object.assign({}, CONTROL, { level: 3, transports: ['poll'] }) });
  w.flush();
  assert.strictEqual(c.getState().level, 3);
  assert.ok(!w.pending('/v1/poll'), 'waits poll_interval_ms at level 3');
  w.advance(5000);
  const third = w.pending('/v1/poll?rooms=general');
  assert.ok(third && /[?&]level=3(&|$)/.test(third.url), 'the level learnt from the last answer: ' + (third && third.url));
  assert.strictEqual((third.url.match(/level=/g) || []).length, 1, 'once');
});

test('a send\'s round trip is reported once, on the next frame or request', () => {
  // WebSocket: send to ack, reported as rtt_ms on the next frame (here the
  // pong to the server's ping), then not again.
  let w = makeWorld();
  let c = newClient(w);
  c.start();
  const ws = connectWS(w, c);
  const e = c.send('general', 'hi');
  assert.deepStrictEqual(ws.sent[ws.sent.length - 1], { type: 'send', room: 'general', id: e.id, text: 'hi' }, 'nothing to report yet');
  w.advance(120);
  ws.frame({ type: 'ack', id: e.id, room: 'general', seq: 1, ts: 5, ref: e.id });
  ws.frame({ type: 'ping' });
  assert.deepStrictEqual(ws.sent[ws.sent.length - 1], { type: 'pong', rtt_ms: 120 });
  ws.frame({ type: 'ping' });
  assert.deepStrictEqual(ws.sent[ws.sent.length - 1], { type: 'pong' }, 'reported once');

  // SSE: the POST's round trip rides on the next request as X-Chat-RTT.
  w = makeWorld({ noWebSocket: true });
  c = startInGeneral(w, 'S');
  w.streams[0].event(CONTROL);
  w.random = 0.1; // message ids come from Math.random here
  const a = c.send('general', 'one');
  const post = w.pending('/v1/send');
  assert.strictEqual(post.headers['X-Chat-RTT'], undefined);
  w.advance(80);
  post.respond(200, { type: 'ack', id: a.id, room: 'general', seq: 1, ts: 1 });
  w.flush();
  w.random = 0.2;
  const b = c.send('general', 'two');
  const post2 = w.pending('/v1/send');
  assert.strictEqual(post2.headers['X-Chat-RTT'], 'sse=80');
  post2.respond(200, { type: 'ack', id: b.id, room: 'general', seq: 2, ts: 2 });
  w.flush();
  w.random = 0.3;
  c.send('general', 'three');
  w.flush();
  assert.strictEqual(w.pending('/v1/send').headers['X-Chat-RTT'], 'sse=1', 'the newest round trip, once (an instant ack counts as 1 ms)');

  // Poll: every poll carries this tab's client key; the next poll after a
  // send reports its round trip.
  w = makeWorld({ noWebSocket: true, noEventSource: true });
  c = startInGeneral(w);
  const p1 = w.pending('/v1/poll?rooms=general');
  const key = p1.headers['X-Chat-Client'];
  assert.ok(/^[0-9a-f]{16,64}$/.test(key || ''), 'a client key: ' + key);
  p1.respond(200, { events: [], cursor: 'C1', control: CONTROL });
  w.flush();
  const p2 = w.pending('/v1/poll?rooms=general');
  assert.strictEqual(p2.headers['X-Chat-Client'], key, 'the same key on every poll');
  const m = c.send('general', 'hi');
  w.advance(50);
  w.answer('/v1/send', 200, { type: 'ack', id: m.id, room: 'general', seq: 1, ts: 1 });
  p2.respond(200, { events: [], cursor: 'C1', control: CONTROL });
  w.advance(1000); // the pause after answers that came at once with nothing
  const p3 = w.pending('/v1/poll?rooms=general');
  assert.strictEqual(p3.headers['X-Chat-RTT'], 'poll=50');
  assert.strictEqual(p3.headers['X-Chat-Client'], key);
});

test('opening a room restores read positions and "seen by" from the server', () => {
  const w = makeWorld();
  const c = newClient(w);
  const receipts = [];
  const reads = [];
  c.on('receipt', (r) => receipts.push(r.user + ':' + r.seq + (r.stored ? ' stored' : '')));
  c.on('read', (r) => reads.push(r.room + ':' + r.seq));
  c.join('dm:alice:bob');
  w.flush();
  assert.ok(!w.pending('/v1/rooms/'), 'waits for a link before asking');
  c.start();
  const ws = connectWS(w, c);
  // Room names are escaped whole in paths, ':' included; the server unescapes.
  const x = w.pending('/v1/rooms/dm%3Aalice%3Abob/reads');
  assert.ok(x, 'asks for the reads: ' + w.xhrs.map((r) => r.url).join(', '));
  assert.strictEqual(x.method, 'GET');
  x.respond(200, { reads: { alice: 4, bob: 7 } });
  w.flush();
  assert.strictEqual(c.readPosition('dm:alice:bob'), 4, 'own position from the server');
  assert.deepStrictEqual(reads, ['dm:alice:bob:4']);
  assert.deepStrictEqual(receipts, ['bob:7 stored'], 'the others come as receipts');
  w.advance(300);
  assert.deepStrictEqual(ws.sent.filter((f) => f.type === 'read'), [], 'a position the server has is not sent back');
  // A room joined while connected asks at once; a failed ask is repeated
  // on the next link, a done one is not.
  c.join('general');
  const g = w.pending('/v1/rooms/general/reads');
  assert.ok(g, 'asks at once');
  g.respond(0, undefined);
  w.flush();
  ws.die(1006, '');
  w.advance(c.getState().retryAt - w.now);
  connectWS(w, c);
  assert.ok(w.pending('/v1/rooms/general/reads'), 'asks again after a failure');
  assert.ok(!w.pending('/v1/rooms/dm%3Aalice%3Abob/reads'), 'not again once answered');
  // A local position ahead of the server's stands.
  c.markRead('general', 9);
  w.answer('/v1/rooms/general/reads', 200, { reads: { alice: 5 } });
  assert.strictEqual(c.readPosition('general'), 9);
  c.history('dm:alice:bob', 3, 10, () => {});
  assert.ok(w.pending('/v1/rooms/dm%3Aalice%3Abob/history?before=3&limit=10'), 'history escapes the name too');
});

test('dm room names are sorted', () => {
  const w = makeWorld();
  assert.strictEqual(w.ChatClient.dmRoom('bob', 'Alice'), 'dm:alice:bob');
  assert.strictEqual(w.ChatClient.dmRoom('alice', 'bob'), 'dm:alice:bob');
});

// ---- run ----------------------------------------------------------------------

(async () => {
  let failed = 0;
  for (const c of cases) {
    try {
      const skipped = (await c.fn()) === 'skip';
      console.log((skipped ? 'skip ' : 'ok   ') + c.name);
    } catch (e) {
      failed++;
      console.log('FAIL ' + c.name + '\n     ' + (e && e.stack ? e.stack.split('\n').slice(0, 4).join('\n     ') : e));
    }
  }
  console.log(`${cases.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
