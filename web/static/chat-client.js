/*
 * chat-client.js: the chatd browser client. See docs/CLIENT.md.
 *
 * ES5 only (the ES5 check in web/es5_test.go enforces the syntax), no
 * dependencies, XMLHttpRequest for HTTP. It negotiates, connects over the
 * best transport it is offered (websocket, sse, poll), falls back tier by
 * tier, reconnects with exponential backoff and full jitter, resumes every
 * room from its last seq, and keeps unacked sends in an outbox that survives
 * a reload.
 *
 *   var client = new ChatClient({tokenSource: ChatClient.devTokenSource('alice')});
 *   client.on('message', function (m) { ... });
 *   client.on('state', function (s) { ... });
 *   client.join('general');
 *   client.start();
 *   client.send('general', 'hello');
 */
(function (root) {
  'use strict';

  var TIERS = ['websocket', 'sse', 'poll'];
  // Send errors that retrying with the same id cannot fix.
  var PERMANENT = { bad_request: 1, forbidden: 1, too_large: 1, not_found: 1, feature_disabled: 1 };
  var PREFIX = 'chatd.';

  // ---- small helpers -----------------------------------------------------

  function now() { return new Date().getTime(); }

  function has(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }
  // BATCH asks for batched receipt and presence envelopes (reads,
  // changes), which _dispatch hands to the page one user at a time.
  var BATCH = 'batch=1';

  function isArray(v) { return Object.prototype.toString.call(v) === '[object Array]'; }

  function extend(dst) {
    for (var i = 1; i < arguments.length; i++) {
      var src = arguments[i];
      if (!src) { continue; }
      for (var k in src) { if (has(src, k)) { dst[k] = src[k]; } }
    }
    return dst;
  }

  function parseJSON(s) {
    if (typeof s !== 'string' || s === '') { return null; }
    try { return JSON.parse(s); } catch (e) { return null; }
  }

  function defer(fn) { return setTimeout(fn, 0); }

  // utf8 decodes bytes (a Uint8Array) as UTF-8.
  function utf8(bytes) { return new root.TextDecoder().decode(bytes); }

  // canInflate reports whether this browser can inflate a deflate stream
  // (DecompressionStream 'deflate-raw': Chrome 103, Firefox 113, Safari
  // 16.4), which deflated poll answers need.
  function canInflate() {
    if (typeof root.DecompressionStream !== 'function' || typeof root.TextDecoder !== 'function' ||
        typeof root.Uint8Array !== 'function' || typeof root.Promise !== 'function') { return false; }
    try { return !!new root.DecompressionStream('deflate-raw'); } catch (e) { return false; }
  }

  // Inflater is one deflate stream of poll answers (deflate=), each a
  // chunk ending on a sync flush that may refer back to the ones before.
  // inflate(chunk, size, cb) calls cb(err, bytes) with exactly size
  // bytes, or an error (a chunk that does not inflate to its size, or not
  // within INFLATE_MS); after an error the stream is done for.
  var INFLATE_MS = 5000;

  // crc32 is the CRC-32 (IEEE) of bytes, as deflated answers carry it.
  var crcTable = null;
  function crc32(bytes) {
    if (!crcTable) {
      crcTable = [];
      for (var n = 0; n < 256; n++) {
        var c = n;
        for (var k = 0; k < 8; k++) { c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; }
        crcTable[n] = c >>> 0;
      }
    }
    var crc = 0xffffffff;
    for (var i = 0; i < bytes.length; i++) { crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8); }
    return (crc ^ 0xffffffff) >>> 0;
  }
  var MAX_INFLATED = 8 << 20; // as the Go client's bound on an answer

  function Inflater() {
    var ds = new root.DecompressionStream('deflate-raw');
    this.w = ds.writable.getWriter();
    this.r = ds.readable.getReader();
    this.left = null; // output read past the last chunk: a broken stream
    this.dead = false;
  }

  Inflater.prototype.inflate = function (chunk, size, cb) {
    var self = this;
    var out = new root.Uint8Array(size);
    var got = 0;
    var done = false;
    function finish(err) {
      if (done) { return; }
      done = true;
      clearTimeout(timer);
      if (err) { self.close(); }
      cb(err, err ? null : out);
    }
    var timer = setTimeout(function () { finish(new Error('inflate timed out')); }, INFLATE_MS);
    if (this.dead) { finish(new Error('inflate: the stream has failed')); return; }
    this.w.write(chunk).then(null, function (e) { finish(e || new Error('inflate failed')); });
    function more() {
      if (done) { return; }
      if (got === size) { finish(null); return; }
      self.r.read().then(function (res) {
        if (done) { return; }
        if (res.done) { finish(new Error('inflate: the stream ended')); return; }
        var v = res.value;
        if (got + v.length > size) { finish(new Error('inflate: more than the answer\'s length')); return; }
        out.set(v, got);
        got += v.length;
        more();
      }, function (e) { finish(e || new Error('inflate failed')); });
    }
    more();
  };

  Inflater.prototype.close = function () {
    this.dead = true;
    try { this.w.abort().then(null, function () {}); } catch (e) { /* ignore */ }
    try { this.r.cancel().then(null, function () {}); } catch (e) { /* ignore */ }
  };

  // between returns a whole number of milliseconds in [lo, hi).
  function between(lo, hi) { return lo + Math.floor(Math.random() * Math.max(0, hi - lo)); }

  // fullJitter is the AWS "full jitter" backoff: a uniform delay in
  // [0, min(cap, base * 2^attempt)).
  function fullJitter(attempt, base, cap) {
    var ceil = Math.min(cap, base * Math.pow(2, Math.min(attempt, 30)));
    return Math.floor(Math.random() * ceil);
  }

  function randomId() {
    var c = root.crypto || root.msCrypto;
    var out = '';
    if (c && typeof c.getRandomValues === 'function' && typeof root.Uint8Array !== 'undefined') {
      var b = new root.Uint8Array(16);
      c.getRandomValues(b);
      for (var i = 0; i < b.length; i++) { out += (b[i] < 16 ? '0' : '') + b[i].toString(16); }
      return out;
    }
    for (var j = 0; j < 4; j++) { out += Math.floor((1 + Math.random()) * 0x100000000).toString(16).slice(1); }
    return out;
  }

  // decodeJWT returns a token's claims, or null when they cannot be read
  // (no atob, or not a JWT). The signature is not checked: the server does.
  function decodeJWT(tok) {
    if (typeof tok !== 'string' || typeof root.atob !== 'function') { return null; }
    var parts = tok.split('.');
    if (parts.length !== 3) { return null; }
    var b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    while (b64.length % 4) { b64 += '='; }
    try {
      var bin = root.atob(b64);
      var txt;
      try { txt = decodeURIComponent(escape(bin)); } catch (e1) { txt = bin; }
      return JSON.parse(txt);
    } catch (e) { return null; }
  }

  // detectStorage returns localStorage when it exists and works (Safari's
  // private mode used to throw on setItem), or null.
  function detectStorage() {
    try {
      var s = root.localStorage;
      if (!s) { return null; }
      var k = PREFIX + 'probe';
      s.setItem(k, '1');
      s.removeItem(k);
      return s;
    } catch (e) { return null; }
  }

  function storeGet(s, k) { try { return s ? s.getItem(k) : null; } catch (e) { return null; } }
  function storeSet(s, k, v) { try { if (s) { s.setItem(k, v); } } catch (e) { /* quota: keep in memory */ } }
  function storeDel(s, k) { try { if (s) { s.removeItem(k); } } catch (e) { /* ignore */ } }

  // supports reports whether this browser has what a tier needs. It is
  // asked at connect time, so a test can delete window.WebSocket first.
  function supports(tier) {
    if (tier === 'websocket') { return typeof root.WebSocket !== 'undefined' && root.WebSocket !== null; }
    if (tier === 'sse') { return typeof root.EventSource !== 'undefined' && root.EventSource !== null; }
    if (tier === 'poll') { return typeof root.XMLHttpRequest !== 'undefined'; }
    return false;
  }

  // pathRoom escapes a room name for a URL path segment. The server
  // unescapes {room}, so every reserved character is escaped, ':' of dm:
  // names and '/' included.
  function pathRoom(name) { return encodeURIComponent(name); }

  function closeHint(reason) {
    var m = /reconnect_ms=(\d+)/.exec(reason || '');
    return m ? parseInt(m[1], 10) : null;
  }

  // ---- HTTP ----------------------------------------------------------------

  // httpError builds the error a callback gets: the server's error envelope
  // when there is one, with the HTTP status. Status 0 means the request did
  // not reach the server (or timed out).
  function httpError(status, data, x, fallback) {
    var e = { status: status, code: 'network', message: fallback || 'network error' };
    if (status !== 0) {
      e.code = (data && data.code) || ('http_' + status);
      e.message = (data && data.message) || ('HTTP ' + status);
    }
    var ra = x && status ? parseInt(x.getResponseHeader('Retry-After') || '', 10) : NaN;
    if (!isNaN(ra)) { e.retryAfter = ra * 1000; }
    return e;
  }

  // xhr makes one request. opts: headers, body (an object, sent as JSON),
  // timeout (ms), raw (read the body as bytes). cb(err, data, bytes): data
  // is the body parsed as JSON (null if it is not JSON); with raw, bytes
  // is the body (a Uint8Array), and data is parsed only from a body that
  // starts with '{'. The result has abort(); an aborted request never
  // calls back.
  function xhr(method, url, opts, cb) {
    var x = new root.XMLHttpRequest();
    var done = false;
    var timer = null;
    function finish(err, data, bytes) {
      if (done) { return; }
      done = true;
      if (timer) { clearTimeout(timer); }
      cb(err, data, bytes);
    }
    x.open(method, url, true);
    if (opts.raw) { x.responseType = 'arraybuffer'; }
    var headers = opts.headers || {};
    for (var h in headers) { if (has(headers, h)) { x.setRequestHeader(h, headers[h]); } }
    var body = null;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      x.setRequestHeader('Content-Type', 'application/json');
    }
    x.onreadystatechange = function () {
      if (x.readyState !== 4 || done) { return; }
      var bytes = null;
      var data;
      if (opts.raw) {
        bytes = x.response ? new root.Uint8Array(x.response) : new root.Uint8Array(0);
        data = bytes.length && bytes[0] === 0x7b ? parseJSON(utf8(bytes)) : null;
      } else {
        data = parseJSON(x.responseText);
      }
      if (x.status >= 200 && x.status < 300) {
        finish(null, data, bytes);
      } else {
        finish(httpError(x.status, data, x), data, bytes);
      }
    };
    if (opts.timeout) {
      timer = setTimeout(function () {
        if (done) { return; }
        finish(httpError(0, null, null, 'timed out'), null);
        try { x.abort(); } catch (e) { /* ignore */ }
      }, opts.timeout);
    }
    try {
      x.send(body);
    } catch (e) {
      defer(function () { finish(httpError(0, null, null, 'request failed'), null); });
    }
    return {
      abort: function () {
        done = true;
        if (timer) { clearTimeout(timer); }
        try { x.abort(); } catch (e) { /* ignore */ }
      }
    };
  }

  // ---- events ----------------------------------------------------------------

  function Emitter() { this._handlers = {}; }

  Emitter.prototype.on = function (name, fn) {
    (this._handlers[name] = this._handlers[name] || []).push(fn);
    return this;
  };

  Emitter.prototype.off = function (name, fn) {
    var list = this._handlers[name] || [];
    for (var i = list.length - 1; i >= 0; i--) { if (list[i] === fn) { list.splice(i, 1); } }
    return this;
  };

  // emit calls each handler; one that throws does not stop the others or
  // the client's own processing.
  Emitter.prototype.emit = function (name, arg) {
    var list = (this._handlers[name] || []).slice();
    for (var i = 0; i < list.length; i++) {
      try { list[i].call(this, arg); } catch (e) {
        if (root.console && root.console.error) { root.console.error('chatd: ' + name + ' handler:', e); }
      }
    }
  };

  // ---- between tabs --------------------------------------------------------

  // TabBus carries small messages between the tabs of one user: over
  // BroadcastChannel where there is one, else over localStorage's storage
  // events. Neither: a no-op.
  function TabBus(name, storage, onmsg) {
    var self = this;
    this.key = PREFIX + 'bus.' + name;
    this.storage = storage;
    this.channel = null;
    this.onmsg = onmsg;
    this.id = randomId();
    if (typeof root.BroadcastChannel === 'function') {
      try {
        this.channel = new root.BroadcastChannel(this.key);
        this.channel.onmessage = function (ev) { if (ev.data && ev.data.from !== self.id) { self.onmsg(ev.data.msg); } };
      } catch (e) { this.channel = null; }
    }
  }

  TabBus.prototype.post = function (msg) {
    var env = { from: this.id, msg: msg, n: randomId() };
    if (this.channel) {
      try { this.channel.postMessage(env); } catch (e) { /* closed */ }
    } else if (this.storage) {
      // A storage event fires in the other tabs on every change.
      storeSet(this.storage, this.key, JSON.stringify(env));
      storeDel(this.storage, this.key);
    }
  };

  // storage handles a storage event for the fallback path.
  TabBus.prototype.storageEvent = function (ev) {
    if (this.channel || ev.key !== this.key || !ev.newValue) { return; }
    var env = parseJSON(ev.newValue);
    if (env && env.from !== this.id) { this.onmsg(env.msg); }
  };

  TabBus.prototype.close = function () {
    if (this.channel) { try { this.channel.close(); } catch (e) { /* ignore */ } }
  };

  // ---- token sources -------------------------------------------------------

  // staticTokenSource serves one token; refresh gives the same token back,
  // so an expired static token ends in the 'auth' event.
  function staticTokenSource(token) {
    return {
      get: function (cb) { defer(function () { cb(null, token); }); },
      refresh: function (cb) { defer(function () { cb({ code: 'unauthorized', message: 'the token was rejected and cannot be refreshed' }); }); }
    };
  }

  // devTokenSource logs in by name through POST /v1/dev/login (dev mode
  // only) and keeps the token in localStorage, so tabs and reloads share it.
  // refresh logs in again.
  function devTokenSource(name, opts) {
    opts = opts || {};
    var base = opts.baseURL || '';
    var storage = detectStorage();
    var key = PREFIX + 'devtoken.' + String(name).toLowerCase();
    var token = storeGet(storage, key);
    var waiting = null;
    function fresh(t) {
      var c = decodeJWT(t);
      return !!t && (!c || !c.exp || c.exp * 1000 > now() + 120000);
    }
    function login(cb) {
      if (waiting) { waiting.push(cb); return; }
      waiting = [cb];
      xhr('POST', base + '/v1/dev/login', { body: { name: name }, timeout: 15000 }, function (err, data) {
        var list = waiting;
        waiting = null;
        if (!err && (!data || typeof data.token !== 'string')) { err = { code: 'internal', message: 'login answered without a token' }; }
        if (!err) {
          token = data.token;
          storeSet(storage, key, token);
        }
        for (var i = 0; i < list.length; i++) { list[i](err, err ? null : token); }
      });
    }
    return {
      name: name,
      get: function (cb) {
        var stored = storeGet(storage, key);
        if (stored) { token = stored; }
        if (fresh(token)) { defer(function () { cb(null, token); }); return; }
        login(cb);
      },
      refresh: login,
      forget: function () { token = null; storeDel(storage, key); }
    };
  }

  // ---- transports ----------------------------------------------------------
  //
  // A link is one connection attempt on one tier. The client sets onframe,
  // onclose and ondegraded; a link calls onclose at most once, and never
  // after close().

  function wsBase(base) {
    if (/^https?:/i.test(base)) { return base.replace(/^http/i, 'ws'); }
    var loc = root.location;
    return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + base;
  }

  // sinceQuery is the since= parameter for subs, plus the position in the
  // user's own stream ("~") when userSeq is known.
  function sinceQuery(subs, userSeq) {
    var pairs = [];
    for (var i = 0; i < subs.length; i++) {
      if (subs[i].since !== null) { pairs.push(encodeURIComponent(subs[i].room + ':' + subs[i].since)); }
    }
    if (userSeq > 0) { pairs.push(encodeURIComponent('~:' + userSeq)); }
    return pairs.length ? '&since=' + pairs.join(',') : '';
  }

  // roomsQuery is the rooms= parameter; none at all for no room (the
  // stream then carries the user's own events only).
  function roomsQuery(subs) {
    var names = [];
    for (var i = 0; i < subs.length; i++) { names.push(encodeURIComponent(subs[i].room)); }
    return names.length ? 'rooms=' + names.join(',') : '';
  }

  function WSLink(client, ticket) {
    this.tier = 'websocket';
    this.client = client;
    // heartbeat=app: the server's heartbeat comes as {"type":"ping"}
    // envelopes, which a script can see (and _armWatchdog counts), rather
    // than as ping control frames, which the browser answers unseen.
    this.url = wsBase(client.base) + '/v1/ws?ticket=' + encodeURIComponent(ticket) + '&heartbeat=app&' + BATCH;
    this.closed = false;
    this.opened = false; // the upgrade succeeded: the server took the connection
    this.ws = null;
    this.last = null; // the disconnect envelope, if one came
  }

  WSLink.prototype.open = function (subs) {
    var self = this;
    var ws;
    try {
      ws = new root.WebSocket(this.url);
    } catch (e) {
      defer(function () { self._end({ code: 0, reason: 'websocket: ' + (e && e.message) }); });
      return;
    }
    this.ws = ws;
    ws.onopen = function () {
      self.opened = true;
      // A socket opened with a ticket lives only as long as the ticket
      // (a minute), and may only receive, until the token is proved on
      // it: refresh first, so that the frames after it may write.
      if (self.client._token) { self.send({ type: 'refresh', token: self.client._token }); }
      // The socket follows the user's stream from now; a join of "~"
      // resumes it from where this client was.
      if (self.client._userSeq > 0) { self.join('~', self.client._userSeq); }
      for (var i = 0; i < subs.length; i++) { self.join(subs[i].room, subs[i].since); }
    };
    ws.onmessage = function (ev) {
      var data = parseJSON(ev.data);
      if (!data || self.closed) { return; }
      var list = isArray(data) ? data : [data];
      for (var i = 0; i < list.length && !self.closed; i++) {
        if (list[i] && list[i].type === 'disconnect') { self.last = list[i]; }
        self.onframe(list[i]);
      }
    };
    ws.onerror = function () { /* onclose follows with the code */ };
    ws.onclose = function (ev) {
      var info = {
        code: ev.code, reason: ev.reason || ('websocket closed (' + ev.code + ')'), reconnectMs: closeHint(ev.reason), opened: self.opened
      };
      if (self.last) {
        if (info.reconnectMs === null && self.last.reconnect_ms) { info.reconnectMs = self.last.reconnect_ms; }
        if (!ev.reason && self.last.reason) { info.reason = self.last.reason; }
      }
      self._end(info);
    };
  };

  WSLink.prototype._end = function (info) {
    if (this.closed) { return; }
    this.closed = true;
    this.onclose(info);
  };

  // send writes one envelope. The round trip the client has to report, if
  // any, rides on it as rtt_ms (see ChatClient.prototype._noteRTT).
  WSLink.prototype.send = function (env) {
    if (this.closed || !this.ws || this.ws.readyState !== 1) { return false; }
    var rtt = this.client._rtt;
    if (rtt && !env.rtt_ms) { env.rtt_ms = rtt; }
    try {
      this.ws.send(JSON.stringify(env));
      if (rtt && env.rtt_ms === rtt) { this.client._rtt = 0; }
      return true;
    } catch (e) { return false; }
  };

  WSLink.prototype.join = function (room, since) {
    var env = { type: 'join', room: room };
    if (since !== null && since !== undefined) { env.since = since; }
    return this.send(env);
  };

  WSLink.prototype.leave = function (room) { return this.send({ type: 'leave', room: room }); };

  WSLink.prototype.close = function () {
    this.closed = true;
    var ws = this.ws;
    if (!ws) { return; }
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    try { ws.close(1000, 'client moved'); } catch (e) { /* ignore */ }
  };

  function SSELink(client, ticket) {
    this.tier = 'sse';
    this.client = client;
    this.ticket = ticket;
    this.closed = false;
    this.opened = false; // the stream's answer came: the server took the connection
    this.es = null;
  }

  SSELink.prototype.open = function (subs) {
    var self = this;
    var url = this.client.base + '/v1/sse?' + roomsQuery(subs) + sinceQuery(subs, this.client._userSeq) +
      '&ticket=' + encodeURIComponent(this.ticket) + '&' + BATCH;
    var es;
    try {
      es = new root.EventSource(url);
    } catch (e) {
      defer(function () { self._end({ code: 0, reason: 'event stream: ' + (e && e.message) }); });
      return;
    }
    this.es = es;
    es.onopen = function () { self.opened = true; };
    es.onmessage = function (ev) {
      if (self.closed) { return; }
      self.opened = true;
      var env = parseJSON(ev.data);
      if (!env) { return; }
      if (env.type === 'disconnect') {
        // Stop the browser's own reconnect: the close code decides.
        self.close();
        self.onclose({ code: env.close_code, reason: env.reason || 'server closed the stream', reconnectMs: env.reconnect_ms || null, opened: true });
        return;
      }
      self.onframe(env);
    };
    es.onerror = function () {
      if (self.closed) { return; }
      if (es.readyState === 2) {
        // CLOSED: an HTTP error (an expired ticket, a refusal). The
        // browser gives up; so does this link.
        self.close();
        self.onclose({ code: 0, reason: 'event stream refused', opened: self.opened });
      } else {
        // CONNECTING: the browser reconnects by itself and sends
        // Last-Event-ID, the cursor, so the stream resumes exactly.
        self.ondegraded('event stream reconnecting');
      }
    };
  };

  SSELink.prototype._end = function (info) {
    if (this.closed) { return; }
    this.closed = true;
    this.onclose(info);
  };

  SSELink.prototype.send = function () { return false; };

  SSELink.prototype.close = function () {
    this.closed = true;
    if (this.es) {
      this.es.onopen = this.es.onmessage = this.es.onerror = null;
      try { this.es.close(); } catch (e) { /* ignore */ }
    }
  };

  // PollLink long-polls. Its first request resumes each room by since=
  // (what the client knows); every later one passes back the server's
  // opaque cursor, plus since= for rooms the cursor does not cover yet.
  function PollLink(client) {
    this.tier = 'poll';
    this.client = client;
    this.closed = false;
    this.req = null;
    this.timer = null;
    this.cursor = null;
    this.covered = {}; // rooms the cursor holds a position for
    this.fast = 0;     // answers in a row that came at once with no message
    // The tag of the last control an answer carried: the server leaves
    // the control out of answers while it is still the one in force.
    this.controlTag = '';
    // Deflated answers (deflate=), where the browser can inflate: z is the
    // stream of the answers so far, null until the first deflated one.
    this.zok = client._canInflate;
    this.z = null;
    this.zfail = 0; // answers in a row that did not inflate
    this.gen = 0;   // bumped by refresh: an answer still inflating is for an abandoned poll
  }

  PollLink.prototype.open = function () { this._poll(); };

  PollLink.prototype._poll = function () {
    var self = this;
    var c = this.client;
    if (this.closed) { return; }
    this.timer = null;
    var subs = c._subs();
    var started = now();
    // With no room joined the poll still carries the user's own events.
    var path = '/v1/poll?' + roomsQuery(subs);
    var fresh = [];
    var asked = {};
    for (var i = 0; i < subs.length; i++) {
      asked[subs[i].room] = true;
      if (!this.cursor || !this.covered[subs[i].room]) { fresh.push(subs[i]); }
    }
    if (this.cursor) { path += '&cursor=' + encodeURIComponent(this.cursor); }
    // The cursor holds the user's stream ("~") once the server gave one.
    path += sinceQuery(fresh, this.cursor ? 0 : c._userSeq);
    // The level this client knows: a server at another level answers at
    // once with the new control, so a change between two polls is learnt
    // in one round trip instead of at the end of a 25 s hold.
    if (c.offer && typeof c.offer.level === 'number') { path += '&level=' + c.offer.level; }
    if (this.controlTag) { path += '&control_tag=' + encodeURIComponent(this.controlTag); }
    // The deflate stream goes on from the last answer when this poll
    // carries on from its cursor; otherwise a new one starts.
    if (this.zok) { path += '&deflate=' + (this.z && this.cursor ? '1' : 'new'); }
    path += '&' + BATCH;
    // The poll is an XHR, so it sends the bearer header: no token or
    // ticket ever goes into its URL.
    // X-Chat-Client tells this tab's polls apart from the user's other
    // tabs, so the server counts poll clients, not poll requests.
    var opts = { timeout: c.opts.pollTimeoutMs, headers: { 'X-Chat-Client': c._key }, raw: this.zok };
    var gen = this.gen;
    this.req = c._api('GET', path, undefined, opts, function (err, data, bytes) {
      self.req = null;
      if (self.closed) { return; }
      if (err) {
        self.closed = true;
        self.onclose({ code: 0, status: err.status, errCode: err.code, reason: 'poll failed: ' + err.message, retryAfter: err.retryAfter });
        return;
      }
      if (!bytes || !bytes.length || bytes[0] === 0x7b) { // JSON: not deflated, and the stream is over
        self._dropZ();
        self._answer(data, started, asked);
        return;
      }
      self._undeflate(bytes, function (answer) {
        if (self.closed || gen !== self.gen) { return; }
        if (!answer) { // dropped unread: the same cursor again, on a new stream
          self._dropZ();
          if (++self.zfail >= 3) { self.zok = false; }
          self.timer = setTimeout(function () { self._poll(); }, 0);
          return;
        }
        self.zfail = 0;
        self._answer(answer, started, asked);
      });
    });
  };

  // _undeflate reads a deflated answer, "c" or "n", its JSON's length, a
  // space, the JSON's CRC-32 in 8 hex digits, a line feed and a chunk of
  // the deflate stream ("n": a new one), and calls cb with the answer, or
  // null if it does not inflate to that JSON.
  PollLink.prototype._undeflate = function (bytes, cb) {
    var nl = -1;
    for (var i = 1; i < bytes.length && i < 32; i++) { if (bytes[i] === 0x0a) { nl = i; break; } }
    var kind = bytes.length ? bytes[0] : 0;
    var head = nl > 1 ? utf8(bytes.subarray(1, nl)).split(' ') : [];
    var size = head.length === 2 && /^[0-9]+$/.test(head[0]) ? parseInt(head[0], 10) : NaN;
    var sum = head.length === 2 && /^[0-9a-f]{8}$/.test(head[1]) ? parseInt(head[1], 16) : NaN;
    if ((kind !== 0x63 && kind !== 0x6e) || isNaN(size) || isNaN(sum) || size > MAX_INFLATED ||
        size > (bytes.length - nl - 1) * 1032 || (kind === 0x63 && !this.z)) {
      defer(function () { cb(null); });
      return;
    }
    if (kind === 0x6e) {
      this._dropZ();
      this.z = new Inflater();
    }
    this.z.inflate(bytes.subarray(nl + 1), size, function (err, out) {
      // The checksum finds out a window that is not the server's.
      cb(err || crc32(out) !== sum ? null : parseJSON(utf8(out)));
    });
  };

  PollLink.prototype._dropZ = function () {
    if (this.z) { this.z.close(); this.z = null; }
  };

  // _answer handles one poll answer, data, to the poll that started at
  // started for the rooms asked, and polls again.
  PollLink.prototype._answer = function (data, started, asked) {
    var self = this;
    data = data || {};
    var events = isArray(data.events) ? data.events : [];
    var messages = 0;
    var tag = self.controlTag;
    if (data.control) { tag = typeof data.control_tag === 'string' ? data.control_tag : ''; }
    self.onframe(data.control || { type: 'pong' });
    for (var j = 0; j < events.length && !self.closed; j++) {
      if (events[j] && events[j].type === 'message') { messages++; }
      // A control among the events is applied after the answer's own:
      // ask for the control again rather than trust the tag.
      if (events[j] && events[j].type === 'control') { tag = ''; }
      self.onframe(events[j]);
    }
    self.controlTag = tag;
    if (self.closed) { return; }
    if (typeof data.cursor === 'string' && data.cursor) {
      self.cursor = data.cursor;
      self.covered = asked;
    }
    self.timer = setTimeout(function () { self._poll(); }, self._delay(started, messages));
  };

  // _delay is the wait before the next poll: the poll interval at level 3
  // (the server answers at once there), none after news, and a growing
  // pause when answers keep coming at once with no message, so a server
  // that answers early can never make the client spin.
  PollLink.prototype._delay = function (started, messages) {
    var offer = this.client.offer || {};
    var interval = offer.poll_interval_ms || 5000;
    if (offer.level >= 3) { return interval; }
    if (messages || now() - started >= 1000) {
      this.fast = 0;
      return 0;
    }
    this.fast++;
    return this.fast < 2 ? 0 : Math.min(interval, 250 * Math.pow(2, this.fast - 2));
  };

  // refresh polls again at once, for a new set of rooms.
  PollLink.prototype.refresh = function () {
    if (this.closed) { return; }
    if (this.req) { this.req.abort(); this.req = null; }
    if (this.timer) { clearTimeout(this.timer); }
    this.gen++;
    this._dropZ(); // an answer inflating now is dropped: the window may or may not hold it
    var self = this;
    this.timer = setTimeout(function () { self._poll(); }, 0);
  };

  PollLink.prototype.send = function () { return false; };

  PollLink.prototype.close = function () {
    this.closed = true;
    if (this.req) { this.req.abort(); this.req = null; }
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this._dropZ();
  };

  // ---- outbox ----------------------------------------------------------------

  // Outbox holds sends until they are acked. Each entry is stored under its
  // own localStorage key, so tabs that add and remove entries at once never
  // overwrite each other. Every tab retries every entry; the server's
  // idempotency on (room, id) makes that safe.
  function Outbox(client) {
    this.c = client;
    this.items = {};    // id → entry
    this.inflight = {}; // id → time sent
    this.httpBusy = false;
    this.prefix = null;
  }

  Outbox.prototype.load = function (user) {
    this.items = {};
    this.inflight = {};
    this.prefix = PREFIX + 'ob.' + user + '.';
    var s = this.c.storage;
    if (!s) { return; }
    try {
      for (var i = 0; i < s.length; i++) {
        var k = s.key(i);
        if (k && k.indexOf(this.prefix) === 0) {
          var e = parseJSON(s.getItem(k));
          if (e && e.id && e.room) { this.items[e.id] = e; }
        }
      }
    } catch (err) { /* storage went away */ }
  };

  Outbox.prototype.list = function (room) {
    var out = [];
    for (var id in this.items) {
      if (has(this.items, id) && (!room || this.items[id].room === room)) { out.push(this.items[id]); }
    }
    out.sort(function (a, b) { return a.ts - b.ts || (a.id < b.id ? -1 : 1); });
    return out;
  };

  Outbox.prototype.save = function (e) {
    this.items[e.id] = e;
    if (this.prefix) { storeSet(this.c.storage, this.prefix + e.id, JSON.stringify(e)); }
  };

  Outbox.prototype.remove = function (id) {
    var e = this.items[id];
    delete this.items[id];
    delete this.inflight[id];
    if (this.prefix) { storeDel(this.c.storage, this.prefix + id); }
    return e || null;
  };

  // storageEvent applies another tab's change to an entry.
  Outbox.prototype.storageEvent = function (ev) {
    if (!this.prefix || !ev.key || ev.key.indexOf(this.prefix) !== 0) { return false; }
    var id = ev.key.slice(this.prefix.length);
    var e = parseJSON(ev.newValue);
    if (e && e.id) { this.items[id] = e; } else { delete this.items[id]; delete this.inflight[id]; }
    return true;
  };

  // flush sends what is pending over the current link: send frames on
  // WebSocket, POST /v1/send one at a time otherwise. An entry unacked
  // after resendMs is sent again with the same id.
  Outbox.prototype.flush = function () {
    var c = this.c;
    if (!c.state.connected || !c._link) { return; }
    var list = this.list();
    var t = now();
    for (var i = 0; i < list.length; i++) {
      var e = list[i];
      if (e.state !== 'pending') { continue; }
      if (this.inflight[e.id] && t - this.inflight[e.id] < c.opts.resendMs) { continue; }
      if (c._link.tier === 'websocket') {
        if (c._link.send(sendFrame(e))) {
          this.inflight[e.id] = t;
        }
      } else {
        this._post(e);
        return; // one HTTP send at a time keeps order and spares connections
      }
    }
  };

  // sendFrame is the send envelope of an outbox entry.
  function sendFrame(e) {
    var f = { type: 'send', room: e.room, id: e.id, text: e.text };
    if (e.files && e.files.length) {
      f.files = [];
      for (var i = 0; i < e.files.length; i++) { f.files.push(e.files[i].id); }
    }
    return f;
  }

  Outbox.prototype._post = function (e) {
    var self = this;
    var c = this.c;
    if (this.httpBusy) { return; }
    this.httpBusy = true;
    this.inflight[e.id] = now();
    var body = sendFrame(e);
    delete body.type;
    c._api('POST', '/v1/send', body, { timeout: 20000 }, function (err, ack) {
      self.httpBusy = false;
      if (err) {
        self.failed(e.id, err);
      } else {
        self.acked(ack || { id: e.id, room: e.room });
      }
      if (!err || !err.retryAfter) { self.flush(); }
    });
  };

  // acked settles an entry: the ack (or the message itself) came back.
  // The time since it was sent is the round trip the client reports next.
  Outbox.prototype.acked = function (ack) {
    var sent = this.inflight[ack.id];
    if (sent) { this.c._noteRTT(now() - sent); }
    var e = this.remove(ack.id);
    if (!e) { return; }
    var info = { entry: e, ack: ack };
    this.c.bus.post({ t: 'ack', entry: e, ack: ack });
    this.c.emit('ack', info);
    this.c.emit('outbox', this.list());
  };

  Outbox.prototype.failed = function (id, err) {
    var e = this.items[id];
    delete this.inflight[id];
    if (!e) { return; }
    if (PERMANENT[err.code]) {
      e.state = 'failed';
      e.error = err.message || err.code;
      this.save(e);
      this.c.emit('outbox', this.list());
      return;
    }
    // Transient (rate limit, overload, network): try again later.
    var self = this;
    var wait = err.retryAfter || 1000;
    setTimeout(function () { self.flush(); }, wait);
  };

  // ---- the client --------------------------------------------------------

  /**
   * ChatClient connects one browser tab to chatd.
   *
   * opts:
   *   tokenSource       {get(cb), refresh(cb)} or a JWT string (required)
   *   baseURL           '' (same origin)
   *   transports        restrict the tiers tried, e.g. ['sse', 'poll']
   *   connectTimeoutMs  8000: a tier is up once its first envelope arrives
   *   backoffBaseMs     1000, backoffCapMs 30000: full jitter
   *   tierRetryMs       60000: how long a tier that failed is skipped (doubles)
   *   upgradeDelayMs    [1000, 10000]: jittered wait before moving up a tier
   *   resendMs          10000: resend an unacked WebSocket send after this
   */
  function ChatClient(opts) {
    Emitter.call(this);
    opts = opts || {};
    if (!opts.tokenSource) { throw new Error('ChatClient: tokenSource is required'); }
    this.base = opts.baseURL || '';
    this.tokens = typeof opts.tokenSource === 'string' ? staticTokenSource(opts.tokenSource) : opts.tokenSource;
    this.opts = extend({
      transports: null,
      connectTimeoutMs: 8000,
      backoffBaseMs: 1000,
      backoffCapMs: 30000,
      tierRetryMs: 60000,
      upgradeDelayMs: [1000, 10000],
      resendMs: 10000,
      pollTimeoutMs: 40000,
      stableMs: 10000,
      historyLimit: 50
    }, opts);
    this.storage = detectStorage();
    this.user = null;
    this.name = null;
    this.offer = null;      // the last negotiate answer or control envelope
    this._ticket = null;    // {value, until}: the ticket negotiate gave, while fresh
    this.state = {
      status: 'idle', connected: false, tier: null, reason: 'not started', level: null,
      features: {}, transports: [], attempt: 0, retryAt: null
    };
    this._token = null;
    this._rtt = 0;          // the last send's round trip (ms), not reported yet; 0: none
    this._key = randomId(); // this tab's poll client key (X-Chat-Client)
    this._canInflate = canInflate(); // polls ask for deflated answers
    this._rooms = {};       // name → {name, seq (-1: unknown)}
    this._listQ = [];       // room-list changes to send off a WebSocket: {op, room, tries, busy, at (retry time), onLink (waits for a link)}
    this._userSeq = 0;      // position in the user's own event stream
    this._reads = {};       // name → own read position
    this._readSent = {};    // name → position the server has
    this._typingAt = {};
    this._penalty = {};     // tier → {until, n}
    this._link = null;
    this._gen = 0;          // bumped per connection cycle; stale callbacks check it
    this._attempt = 0;
    this._timers = {};
    this._stopped = true;
    this.outbox = new Outbox(this);
    this.bus = new TabBus('anon', null, function () {});
    var self = this;
    this._onStorage = function (ev) { self._storageEvent(ev); };
    this._onOnline = function () { if (self.state.status === 'waiting') { self._cycle('browser is back online'); } };
    if (root.addEventListener) {
      root.addEventListener('storage', this._onStorage, false);
      root.addEventListener('online', this._onOnline, false);
    }
  }

  ChatClient.prototype = new Emitter();
  ChatClient.prototype.constructor = ChatClient;

  ChatClient.TIERS = TIERS.slice();
  ChatClient.devTokenSource = devTokenSource;
  ChatClient.staticTokenSource = staticTokenSource;
  ChatClient.decodeJWT = decodeJWT;
  ChatClient.supports = supports;
  ChatClient.backoff = fullJitter;

  // dmRoom names the direct conversation of users a and b.
  ChatClient.dmRoom = function (a, b) {
    a = String(a).toLowerCase();
    b = String(b).toLowerCase();
    return a <= b ? 'dm:' + a + ':' + b : 'dm:' + b + ':' + a;
  };

  // ---- timers ----

  ChatClient.prototype._later = function (name, ms, fn) {
    this._clear(name);
    var self = this;
    this._timers[name] = setTimeout(function () { delete self._timers[name]; fn.call(self); }, ms);
  };

  ChatClient.prototype._clear = function (name) {
    if (this._timers[name]) { clearTimeout(this._timers[name]); delete this._timers[name]; }
  };

  // ---- state ----

  ChatClient.prototype.getState = function () {
    var s = extend({}, this.state);
    s.features = extend({}, this.state.features);
    s.transports = (this.state.transports || []).slice();
    s.user = this.user;
    s.name = this.name;
    return s;
  };

  // _setState applies patch and emits 'state' when something changed.
  // Objects (features, transports) compare by value.
  ChatClient.prototype._setState = function (patch) {
    var changed = false;
    for (var k in patch) {
      if (!has(patch, k)) { continue; }
      var a = this.state[k];
      var b = patch[k];
      var same = a === b || (a && b && typeof a === 'object' && typeof b === 'object' && JSON.stringify(a) === JSON.stringify(b));
      if (!same) { this.state[k] = b; changed = true; }
    }
    if (changed) { this.emit('state', this.getState()); }
  };

  // feature reports whether a feature is on; unknown means on.
  ChatClient.prototype.feature = function (name) {
    var f = this.state.features || {};
    return f[name] !== false;
  };

  // ---- identity ----

  ChatClient.prototype._useToken = function (tok) {
    this._token = tok;
    var claims = decodeJWT(tok) || {};
    if (claims.sub && claims.sub !== this.user) { this._setUser(claims.sub, claims.name || claims.sub); }
    // Refresh ahead of expiry: two minutes early, or at 90% of a short life.
    this._clear('refresh');
    if (claims.exp) {
      var left = claims.exp * 1000 - now();
      var ahead = Math.min(120000, Math.max(5000, left * 0.1));
      var self = this;
      this._later('refresh', Math.max(5000, left - ahead), function () {
        self._refreshToken(function () {});
      });
    }
    if (this._link && this._link.tier === 'websocket' && this.state.connected) {
      this._link.send({ type: 'refresh', token: tok }); // in-band: the socket stays up
    }
  };

  ChatClient.prototype._setUser = function (user, name) {
    var self = this;
    this.user = user;
    this.name = name;
    this.bus.close();
    this.bus = new TabBus(user, this.storage, function (msg) { self._tabMessage(msg); });
    this.outbox.load(user);
    this._reads = {};
    this.emit('user', { user: user, name: name });
    for (var room in this._rooms) {
      if (has(this._rooms, room)) {
        this._loadRead(room);
        if (this._reads[room]) { this.emit('read', { room: room, seq: this._reads[room] }); }
      }
    }
    this.emit('outbox', this.outbox.list());
  };

  ChatClient.prototype._refreshToken = function (cb) {
    var self = this;
    this.tokens.refresh(function (err, tok) {
      if (!err && tok) { self._useToken(tok); }
      cb(err, tok);
    });
  };

  // _api calls the HTTP API with the bearer token. A 401 gets one token
  // refresh and one retry. cb(err, data). The result has abort().
  ChatClient.prototype._api = function (method, path, body, opts, cb) {
    var self = this;
    var req = null;
    var aborted = false;
    var retried = false;
    function go(tok) {
      if (aborted) { return; }
      var headers = extend({}, opts.headers, { Authorization: 'Bearer ' + tok });
      var rtt = self._takeRTT();
      if (rtt) { headers['X-Chat-RTT'] = rtt; }
      req = xhr(method, self.base + path, {
        headers: headers, body: body, timeout: opts.timeout || 15000, raw: opts.raw
      }, function (err, data, bytes) {
        if (err && err.status === 401 && !retried) {
          retried = true;
          self._refreshToken(function (rerr, fresh) {
            if (aborted) { return; }
            if (rerr || !fresh) { cb(err, data, bytes); return; }
            go(fresh);
          });
          return;
        }
        cb(err, data, bytes);
      });
    }
    if (this._token) {
      go(this._token);
    } else {
      this.tokens.get(function (err, tok) {
        if (aborted) { return; }
        if (err || !tok) { cb(err || { status: 0, code: 'unauthorized', message: 'no token' }); return; }
        self._useToken(tok);
        go(tok);
      });
    }
    return { abort: function () { aborted = true; if (req) { req.abort(); } } };
  };

  // ---- round trips ----
  //
  // The client measures each send's round trip, from the send frame or
  // POST to its ack, and reports the last one once, on what it sends next:
  // rtt_ms on its next WebSocket envelope (a pong to the server's ping
  // included), or the X-Chat-RTT header ("<tier>=<ms>") of its next HTTP
  // request. The server keeps them for the round trip alert.

  ChatClient.prototype._noteRTT = function (ms) {
    if (ms >= 0) { this._rtt = Math.max(1, Math.round(ms)); }
  };

  // _takeRTT returns the X-Chat-RTT value to send, or null, and forgets
  // the round trip.
  ChatClient.prototype._takeRTT = function () {
    var tier = this.state.tier;
    if (!this._rtt || !tier) { return null; }
    var v = tier + '=' + this._rtt;
    this._rtt = 0;
    return v;
  };

  // ---- lifecycle ----

  // start connects and keeps the client connected until stop().
  ChatClient.prototype.start = function () {
    if (!this._stopped) { return this; }
    this._stopped = false;
    this._attempt = 0;
    this._cycle('starting');
    this._pumpList(); // what stop left unsent (its timer went with it)
    return this;
  };

  // stop closes the connection and every timer. Sends stay in the outbox.
  ChatClient.prototype.stop = function (reason) {
    this._stopped = true;
    this._gen++;
    this._dropLink();
    for (var k in this._timers) { if (has(this._timers, k)) { clearTimeout(this._timers[k]); } }
    this._timers = {};
    this._setState({ status: 'stopped', connected: false, tier: null, reason: reason || 'stopped', retryAt: null });
    return this;
  };

  // destroy stops the client and lets go of the page's events.
  ChatClient.prototype.destroy = function () {
    this.stop('closed');
    this.bus.close();
    if (root.removeEventListener) {
      root.removeEventListener('storage', this._onStorage, false);
      root.removeEventListener('online', this._onOnline, false);
    }
  };

  // reconnect drops the link and connects again now, from negotiate.
  ChatClient.prototype.reconnect = function () {
    this._stopped = false;
    this._attempt = 0;
    this._cycle('reconnect requested');
    this._pumpList();
  };

  ChatClient.prototype._dropLink = function () {
    this._clear('connect');
    this._clear('watchdog');
    this._clear('degraded');
    this._clear('upgrade');
    this._clear('stable');
    if (this._link) { this._link.close(); this._link = null; }
  };

  // _cycle starts a connection from scratch: negotiate, then the tiers in
  // order. Every step checks gen, so a later cycle cancels this one.
  ChatClient.prototype._cycle = function (why) {
    if (this._stopped) { return; }
    var self = this;
    var gen = ++this._gen;
    this._dropLink();
    this._clear('retry');
    this._setState({ status: 'connecting', connected: false, tier: null, reason: why, retryAt: null });
    this._negotiate(gen, 'negotiate failed: ', function () { self._tryTiers(self._order(), 0, gen); });
  };

  // _negotiate asks GET /v1/negotiate for this user's offer and takes it,
  // then calls next. When negotiate fails, the cycle ends there (_failed):
  // whatever the tiers would do, the server is not answering as it should.
  ChatClient.prototype._negotiate = function (gen, what, next) {
    var self = this;
    this._api('GET', '/v1/negotiate', undefined, {}, function (err, offer) {
      if (gen !== self._gen) { return; }
      if (err) { self._failed(err, what); return; }
      // The offer carries a ticket for the stream URLs: kept for half its
      // life, it saves the POST /v1/ticket before each tier.
      self._ticket = offer && offer.ticket ?
        { value: offer.ticket, until: Date.now() + (offer.ticket_expires_in || 0) * 500 } : null;
      if (offer && offer.ticket_expires_in > 0) { self._ticketLife = offer.ticket_expires_in; }
      self._applyOffer(offer || {}, false);
      next();
    });
  };

  // _failed handles an error that ends a cycle before any tier is up.
  ChatClient.prototype._failed = function (err, what) {
    var reason = what + (err.message || err.code);
    if (err.code === 'forbidden') { this.stop('forbidden: ' + (err.message || '')); return; }
    if (err.status === 401) {
      this.emit('auth', { reason: reason });
      this._retryLater('not signed in: ' + (err.message || err.code), this.opts.backoffCapMs);
      return;
    }
    if (err.status === 0) { reason = 'server unreachable'; }
    this._retryLater(reason, null, err.retryAfter);
  };

  // _retryLater waits, then cycles: delay exactly when it is given (a
  // hint the server has already jittered, such as reconnect_ms), else the
  // backoff with full jitter, on top of atLeast (the server's Retry-After)
  // when there is one, so that clients refused together do not all come
  // back in the same instant.
  ChatClient.prototype._retryLater = function (reason, delay, atLeast) {
    if (this._stopped) { return; }
    this._gen++;
    this._dropLink();
    var attempt = this._attempt++;
    var ms = (typeof delay === 'number' && delay >= 0) ? delay :
      (atLeast > 0 ? atLeast : 0) + fullJitter(attempt, this.opts.backoffBaseMs, this.opts.backoffCapMs);
    this._setState({ status: 'waiting', connected: false, tier: null, reason: reason, retryAt: now() + ms, attempt: this._attempt });
    this._later('retry', ms, function () { this._cycle('retrying: ' + reason); });
  };

  // _order lists the tiers to try: offered, supported by this browser, in
  // the contract's order, skipping tiers that failed recently unless that
  // leaves none.
  ChatClient.prototype._order = function () {
    var offered = (this.offer && this.offer.transports) || TIERS;
    var usable = [];
    var fresh = [];
    var t = now();
    for (var i = 0; i < TIERS.length; i++) {
      var tier = TIERS[i];
      if (offered.indexOf(tier) < 0 || !supports(tier)) { continue; }
      if (this.opts.transports && this.opts.transports.indexOf(tier) < 0) { continue; }
      usable.push(tier);
      var p = this._penalty[tier];
      if (!p || p.until <= t) { fresh.push(tier); }
    }
    return fresh.length ? fresh : usable;
  };

  ChatClient.prototype._penalize = function (tier) {
    var p = this._penalty[tier] || { n: 0 };
    p.until = now() + Math.min(30 * 60000, this.opts.tierRetryMs * Math.pow(2, p.n));
    p.n++;
    this._penalty[tier] = p;
  };

  // _offered reports whether the latest offer includes tier.
  ChatClient.prototype._offered = function (tier) {
    return ((this.offer && this.offer.transports) || TIERS).indexOf(tier) >= 0;
  };

  // _tryTiers tries order[i], and on down the list while tiers fail. A
  // busy server is not a failure of the tier: it ends the cycle, and the
  // next one starts again from the best tier (see _beforeUp).
  ChatClient.prototype._tryTiers = function (order, i, gen) {
    var self = this;
    if (gen !== this._gen) { return; }
    while (i < order.length && !this._offered(order[i])) { i++; } // a probe's offer dropped it
    if (i >= order.length) {
      this._retryLater(order.length ? 'no transport could connect' : 'no transport this browser supports is offered');
      return;
    }
    var tier = order[i];
    this._setState({ status: 'connecting', connected: false, tier: tier, reason: 'connecting over ' + tier });
    this._openLink(tier, gen, function (info) {
      if (gen !== self._gen) { return; }
      self._beforeUp(tier, info, gen, function () {
        if (self._offered(tier)) { self._penalize(tier); }
        self._tryTiers(order, i + 1, gen);
      });
    });
  };

  // _beforeUp decides what a link that failed before its first envelope
  // means. fall is for a failure of the tier itself (a proxy that refuses
  // the upgrade or buffers the stream): the next tier is tried at once.
  // A server that cannot take a connection now (restarting, draining, at
  // a connection cap) is no reason to fall: a lower tier would meet the
  // same, and a restart would strand the client there. The cycle ends
  // instead, and the next one, after the backoff, tries the best tier
  // again.
  ChatClient.prototype._beforeUp = function (tier, info, gen, fall) {
    if (info.server) { this._failed(info.err, tier + ': '); return; } // the ticket: plain HTTP
    if (info.code === 4003 || info.errCode === 'forbidden') { this.stop('forbidden: ' + info.reason); return; }
    if (info.code === 4012 || info.errCode === 'token_expired') { this._refreshThenCycle(info.reason); return; }
    if (info.code === 4013) { this._retryLater('stream ticket expired before it connected'); return; }
    if (info.code === 1001) {
      this._retryLater('server going away', typeof info.reconnectMs === 'number' ? info.reconnectMs : null);
      return;
    }
    if (typeof info.status === 'number') {
      // A poll: its answer can be read. No answer, a 5xx or a connection
      // cap is the server, not the tier.
      if (info.status === 0 || info.status >= 500 || info.errCode === 'too_many_connections') {
        this._retryLater(info.status === 0 ? 'server unreachable' : info.reason, null, info.retryAfter);
        return;
      }
      fall();
      return;
    }
    if (info.opened) { fall(); return; } // the server took it: the tier failed later
    // A WebSocket or EventSource that failed before it opened shows no
    // status: a proxy's 403 and the server's 503 unavailable look the
    // same. Negotiate tells them apart: if it fails too, the server is
    // busy or down and the cycle ends; if it answers, the tier is to
    // blame, and the fresh offer decides where to fall.
    this._setState({ reason: tier + ' did not open; asking the server' });
    this._negotiate(gen, tier + ' did not open, nor did negotiate: ', fall);
  };

  // _openLink connects one tier. failBeforeUp gets the reason when the
  // tier does not come up within the connect timeout.
  ChatClient.prototype._openLink = function (tier, gen, failBeforeUp) {
    var self = this;
    function make(ticket) {
      if (gen !== self._gen) { return; }
      var link = tier === 'websocket' ? new WSLink(self, ticket) : tier === 'sse' ? new SSELink(self, ticket) : new PollLink(self);
      link.up = false;
      self._link = link;
      link.onframe = function (env) { if (self._link === link) { self._frame(link, env); } };
      link.ondegraded = function (reason) { if (self._link === link) { self._degraded(link, reason); } };
      link.onclose = function (info) {
        if (self._link !== link) { return; }
        self._link = null;
        self._clear('connect');
        if (link.up) { self._linkDown(link, info); } else { failBeforeUp(info); }
      };
      self._later('connect', self.opts.connectTimeoutMs, function () {
        if (self._link !== link || link.up) { return; }
        self._link = null;
        link.close();
        failBeforeUp({ code: 0, reason: tier + ' did not answer in time', opened: link.opened });
      });
      link.open(self._subs());
    }
    if (tier === 'poll') { make(null); return; }
    // WebSocket and EventSource cannot send headers: a short-lived ticket
    // goes in the URL, never the JWT: negotiate's while it is fresh, else
    // a new one.
    var kept = this._ticket;
    if (kept && Date.now() < kept.until) { make(kept.value); return; }
    this._api('POST', '/v1/ticket', {}, {}, function (err, t) {
      if (gen !== self._gen) { return; }
      if (err || !t || !t.ticket) { failBeforeUp({ server: true, err: err || { status: 0, code: 'internal', message: 'no ticket' } }); return; }
      make(t.ticket);
    });
  };

  ChatClient.prototype._refreshThenCycle = function (reason) {
    var self = this;
    var gen = ++this._gen;
    this._dropLink();
    this._setState({ status: 'connecting', connected: false, tier: null, reason: 'refreshing the token (' + reason + ')' });
    this._refreshToken(function (err) {
      if (gen !== self._gen) { return; }
      if (err) {
        self.emit('auth', { reason: 'token refresh failed: ' + (err.message || err.code) });
        self._retryLater('token refresh failed: ' + (err.message || err.code));
        return;
      }
      self._cycle('token refreshed');
    });
  };

  // _subs is what a new link subscribes to: each room from its last seq,
  // or live (null) when none is known yet.
  ChatClient.prototype._subs = function () {
    var out = [];
    for (var name in this._rooms) {
      if (has(this._rooms, name)) {
        var r = this._rooms[name];
        out.push({ room: name, since: r.seq >= 0 ? r.seq : null });
      }
    }
    return out;
  };

  // _frame handles one envelope from the current link.
  ChatClient.prototype._frame = function (link, env) {
    if (!env || typeof env.type !== 'string') { return; }
    this._armWatchdog();
    if (!link.up) {
      link.up = true;
      this._linkUp(link);
    } else if (link.degraded) {
      link.degraded = false;
      this._clear('degraded');
      this._setState({ status: 'connected', connected: true, reason: '' });
      this.outbox.flush();
      this._pumpList(); // a room-list change lost while the stream was away
    }
    this._dispatch(link, env);
  };

  ChatClient.prototype._linkUp = function (link) {
    this._clear('connect');
    delete this._penalty[link.tier];
    this._setState({ status: 'connected', connected: true, tier: link.tier, reason: '', retryAt: null });
    this._pumpList(); // a room-list change lost while there was no link
    var self = this;
    // A link must stay up a while before the backoff starts over, so a
    // server that accepts and drops at once still gets backed off.
    this._later('stable', this.opts.stableMs, function () { self._attempt = 0; });
    // Whatever was in flight on the old link is sent again, same ids.
    this.outbox.inflight = {};
    this.outbox.httpBusy = false;
    this.outbox.flush();
    this._later('flush', 3000, this._flushTick);
    for (var room in this._reads) { if (has(this._reads, room)) { this._sendRead(room); } }
    for (var name in this._rooms) { if (has(this._rooms, name)) { this._restoreReads(name); } }
    this._planUpgrade();
  };

  ChatClient.prototype._flushTick = function () {
    if (!this.state.connected) { return; }
    this.outbox.flush();
    if (this.outbox.list().length) { this._later('flush', 3000, this._flushTick); }
  };

  // _linkDown decides what a lost link means, from its close code (or the
  // disconnect envelope, which says the same on SSE).
  ChatClient.prototype._linkDown = function (link, info) {
    var code = info.code;
    this._clear('watchdog');
    this._clear('stable');
    this._setState({ connected: false });
    if (code === 4003) { this.stop('forbidden: ' + info.reason); return; }
    if (code === 4012 || info.errCode === 'token_expired') { this._refreshThenCycle(info.reason); return; }
    // The ticket that opened the stream expired (an event stream lives
    // as long as its ticket): the token is good, so come back at once
    // with a new ticket, resuming where the stream ended.
    // Twice within half a ticket's life (a life too short for this
    // client's round trips), it backs off instead.
    if (code === 4013) {
      var at = now();
      var life = this._ticketLife || 60;
      var again = this._ticketEnd && at - this._ticketEnd < life * 500;
      this._ticketEnd = at;
      if (again) { this._retryLater('stream ticket expired again'); } else { this._cycle('stream ticket expired'); }
      return;
    }
    if (code === 4001) { this._switchTier('server asked to switch transport'); return; }
    if (code === 1001) {
      this._retryLater('server going away', typeof info.reconnectMs === 'number' ? info.reconnectMs : null);
      return;
    }
    if (code === 4008 || code === 4009) {
      this._retryLater(code === 4008 ? 'connection too slow; resuming' : 'heartbeat timeout; resuming',
        between(0, this.opts.backoffBaseMs));
      return;
    }
    if (info.status === 0 || link.tier !== 'poll') {
      this._retryLater(info.status === 0 ? 'server unreachable' : info.reason);
      return;
    }
    this._retryLater(info.reason, null, info.retryAfter);
  };

  // _degraded: an EventSource is reconnecting by itself. Give it the
  // connect timeout to come back (with Last-Event-ID); then take over.
  ChatClient.prototype._degraded = function (link, reason) {
    if (!link.up) { return; } // before up, the connect timer decides
    if (link.degraded) { return; }
    link.degraded = true;
    this._clear('watchdog');
    this._setState({ status: 'connecting', connected: false, reason: reason });
    this._later('degraded', this.opts.connectTimeoutMs, function () {
      if (this._link !== link) { return; }
      this._link = null;
      link.close();
      this._linkDown(link, { code: 0, reason: 'event stream did not recover' });
    });
  };

  // _armWatchdog: no frame for 3 heartbeats means the link is dead.
  ChatClient.prototype._armWatchdog = function () {
    var hb = (this.offer && this.offer.heartbeat_ms) || 15000;
    var link = this._link;
    this._later('watchdog', 3 * hb, function () {
      if (this._link !== link || !link) { return; }
      this._link = null;
      link.close();
      this._linkDown(link, { code: 4009, reason: 'no heartbeat for 3 intervals' });
    });
  };

  // _switchTier moves to the best tier of the last offer, without a
  // backoff: the server asked for it.
  ChatClient.prototype._switchTier = function (reason) {
    if (this._stopped) { return; }
    var gen = ++this._gen;
    this._dropLink();
    this._setState({ status: 'connecting', connected: false, reason: reason });
    this._tryTiers(this._order(), 0, gen);
  };

  // _reopen reconnects on the same tier, for a new set of SSE rooms.
  ChatClient.prototype._reopen = function () {
    var link = this._link;
    if (!link || !this.state.connected) { return; }
    var gen = ++this._gen;
    var tier = link.tier;
    var self = this;
    this._dropLink();
    this._setState({ status: 'connecting', connected: false, reason: 'rejoining rooms' });
    this._openLink(tier, gen, function () {
      if (gen === self._gen) { self._tryTiers(self._order(), 0, gen); }
    });
  };

  // _applyOffer takes a negotiate answer or a control envelope.
  ChatClient.prototype._applyOffer = function (o, live) {
    var prev = this.offer || {};
    this.offer = {
      transports: isArray(o.transports) ? o.transports : (prev.transports || TIERS),
      level: typeof o.level === 'number' ? o.level : (prev.level || 0),
      features: o.features || prev.features || {},
      heartbeat_ms: o.heartbeat_ms || prev.heartbeat_ms || 15000,
      poll_interval_ms: o.poll_interval_ms || prev.poll_interval_ms || 5000
    };
    this._setState({
      level: this.offer.level, features: extend({}, this.offer.features), transports: this.offer.transports.slice()
    });
    this.emit('control', extend({}, this.offer));
    if (live) { this._obeyOffer(); }
  };

  // _obeyOffer moves off a tier that is no longer offered, and plans a move
  // up when a better one is offered again.
  ChatClient.prototype._obeyOffer = function () {
    var link = this._link;
    if (!link || !link.up) { return; }
    if (this.offer.transports.indexOf(link.tier) < 0) {
      // The server closes a WebSocket with 4001 itself after a jittered
      // delay; other tiers move here, after a jittered delay too.
      var self = this;
      this._later('upgrade', between(0, 2000), function () {
        if (self._link === link) { self._switchTier(link.tier + ' is no longer offered'); }
      });
      return;
    }
    this._planUpgrade();
  };

  ChatClient.prototype._planUpgrade = function () {
    var link = this._link;
    if (!link || !link.up || this._timers.upgrade) { return; }
    var best = this._order()[0];
    var t = now();
    if (!best || TIERS.indexOf(best) >= TIERS.indexOf(link.tier)) {
      // Nothing better now; look again when a penalty runs out.
      var soonest = null;
      for (var tier in this._penalty) {
        if (has(this._penalty, tier) && TIERS.indexOf(tier) < TIERS.indexOf(link.tier) && this._penalty[tier].until > t) {
          soonest = soonest === null ? this._penalty[tier].until : Math.min(soonest, this._penalty[tier].until);
        }
      }
      if (soonest !== null) {
        this._later('upgrade', soonest - t + between(0, 1000), function () { this._planUpgrade(); });
      }
      return;
    }
    var d = this.opts.upgradeDelayMs;
    this._later('upgrade', between(d[0], d[1]), function () {
      if (this._link === link && this.state.connected) { this._switchTier('moving up to ' + this._order()[0]); }
    });
  };

  // ---- envelopes ----

  ChatClient.prototype._dispatch = function (link, env) {
    var r = env.room ? this._rooms[env.room] : null;
    switch (env.type) {
    case 'control':
      this._applyOffer(env, true);
      break;
    case 'ping':
      if (link.tier === 'websocket') { link.send({ type: 'pong' }); }
      break;
    case 'joined':
      if (r) { this._joined(r, env); }
      if (env.room === '~' && env.recovered === false) {
        // Events of the user's stream were missed: the list must be read again.
        this.emit('room', { type: 'room', room: '', reason: 'resync' });
      }
      break;
    case 'message':
    case 'edit':
    case 'delete':
      if (r) { this._message(r, env); }
      break;
    case 'room':
      this._userEvent(env);
      break;
    case 'ack':
      if (env.id && env.seq) { this.outbox.acked(env); }
      break;
    case 'receipt':
      // A batched receipt carries several users' positions in reads
      // (user → seq); it is emitted as one 'receipt' per user.
      if (env.reads && typeof env.reads === 'object') {
        for (var reader in env.reads) {
          if (has(env.reads, reader) && typeof env.reads[reader] === 'number') {
            this._receipt({ type: 'receipt', room: env.room, user: reader, seq: env.reads[reader] });
          }
        }
      } else {
        this._receipt(env);
      }
      break;
    case 'presence':
      // A batched presence envelope carries several users' changes; it
      // is emitted as one 'presence' per user.
      if (isArray(env.changes)) {
        for (var i = 0; i < env.changes.length; i++) {
          var ch = env.changes[i];
          if (ch && typeof ch.user === 'string') {
            this.emit('presence', { type: 'presence', room: env.room, user: ch.user, name: ch.name, online: ch.online === true });
          }
        }
      } else {
        this.emit('presence', env);
      }
      break;
    case 'typing':
      this.emit('typing', env);
      break;
    case 'error':
      this._error(link, env);
      break;
    case 'disconnect':
      break; // the close that follows carries the same
    default:
      break; // unknown types are ignored, as the protocol asks
    }
  };

  ChatClient.prototype._joined = function (r, env) {
    var head = env.head || 0;
    if (r.seq < 0) {
      // A live start: what came before is history.
      r.seq = head;
      this.emit('joined', env);
      this._fill(r.name, head);
      return;
    }
    if (head < r.seq) {
      // The server's store was reset: start the room over.
      r.seq = head;
      this.emit('reset', { room: r.name, head: head });
      this._fill(r.name, head);
      return;
    }
    if (env.recovered === false) { this.emit('gap', { room: r.name, after: r.seq }); }
    this.emit('joined', env);
  };

  ChatClient.prototype._fill = function (room, head) {
    var self = this;
    this.history(room, head + 1, this.opts.historyLimit, function (err, page) {
      if (!err) { self.emit('history', page); }
    });
  };

  // _message passes on each seq once, in order, whatever the tier: a seq
  // at or below the room's position is a duplicate from a resume.
  ChatClient.prototype._message = function (r, env) {
    if (typeof env.seq !== 'number') { return; }
    if (r.seq >= 0 && env.seq <= r.seq) { return; }
    if (r.seq >= 0 && env.seq > r.seq + 1) {
      // Only a resume the server could not make exact leaves a gap; what
      // is still retained of it comes from history.
      this.emit('gap', { room: r.name, after: r.seq, next: env.seq });
      var self = this;
      this.history(r.name, env.seq, Math.min(200, env.seq - r.seq - 1), function (err, page) {
        if (!err) { self.emit('history', page); }
      });
    }
    r.seq = env.seq;
    if (env.type === 'message' && env.from === this.user && this.outbox.items[env.id]) {
      this.outbox.acked({ type: 'ack', id: env.id, room: env.room, seq: env.seq, ts: env.ts });
    }
    this.emit(env.type, env); // 'message', 'edit' or 'delete'
  };

  // _userEvent passes on a user-scoped event ({type: 'room', room, reason}):
  // a room appeared in or left this user's list. Each is passed on once.
  ChatClient.prototype._userEvent = function (env) {
    if (typeof env.room !== 'string') { return; }
    if (typeof env.seq === 'number') {
      if (env.seq <= this._userSeq) { return; }
      this._userSeq = env.seq;
    }
    this.emit('room', env);
  };

  ChatClient.prototype._error = function (link, env) {
    if (env.ref && this.outbox.items[env.ref]) {
      this.outbox.failed(env.ref, { code: env.code, message: env.message, retryAfter: env.code === 'rate_limited' ? 1000 : null });
      return;
    }
    if (env.code === 'token_expired') { this._refreshThenCycle(env.message); return; }
    this.emit('error', env);
  };

  // ---- rooms ----

  // join subscribes to a room. Its messages come as 'history' (the newest
  // page) and then 'message'. With opts.remember (the user chose the
  // room), the room also goes in the user's room list on the server: a
  // live WebSocket's join frame does that (its token proved first), in
  // order with a leave frame that may follow; otherwise POST /v1/join
  // does, since an event stream opened with a ticket joins without
  // remembering (a ticket may leak from its URL).
  ChatClient.prototype.join = function (room, opts) {
    if (opts && opts.remember) { this._listChange('join', room); }
    if (this._rooms[room]) { return; }
    this._rooms[room] = { name: room, seq: -1, reads: 'wanted' };
    this._loadRead(room);
    this._roomsChanged(room, true);
    if (this.state.connected) { this._restoreReads(room); }
  };

  // leave stops following room and takes it out of the user's room list
  // on the server: the WebSocket's leave frame does both; on the other
  // tiers (or with no link) POST /v1/leave does the second.
  //
  // With opts.listed false (the server already took the room out of the
  // list, or another tab of this page is doing so), off a WebSocket it
  // only stops following the room; the page passes it for a "left" room
  // event and for another tab's change.
  ChatClient.prototype.leave = function (room, opts) {
    if (!this._rooms[room]) { return; }
    delete this._rooms[room];
    if (!opts || opts.listed !== false) { this._listChange('leave', room); }
    this._roomsChanged(room, false);
  };

  // leaving reports whether a leave of room asked by this client has not
  // reached the server yet: a room list read meanwhile still has it.
  ChatClient.prototype.leaving = function (room) {
    var q = this._listQ;
    for (var i = 0; i < q.length; i++) { if (q[i].room === room && q[i].op === 'leave') { return true; } }
    return false;
  };

  ChatClient.prototype.rooms = function () { return Object.keys(this._rooms); };

  // remember puts a room this client follows in the user's room list on
  // the server, as the user's choice of it does (join with remember):
  // for a page that finds rooms it follows missing from the server's list
  // (GET /v1/rooms) while not on a WebSocket, whose join frames list every
  // room the client follows each time it opens. An event stream opened
  // with a ticket joins without remembering.
  ChatClient.prototype.remember = function (room) {
    if (this._rooms[room]) { this._list('join', room); }
  };

  // ---- the room list on the server ----
  //
  // Off a live WebSocket, POST /v1/join and /v1/leave change the user's
  // room list, one request at a time in the order asked, so that a leave
  // never overtakes the join before it. A request refused for the user's
  // rate of room-list changes (429, 5 a second after a burst of 20) or
  // lost on the way (no answer, 5xx) is sent again after Retry-After or a
  // backoff, up to LIST_TRIES times in all; any other refusal drops it.
  // One lost while the client has no link and has failed to get one
  // (offline, the server away) spends no try: it waits for the next link
  // and goes once that is up, however long that takes. A change not yet
  // sent gives way to a later one for the same room.

  var LIST_TRIES = 6;

  // _listChange changes room's place in the list: by request off a live
  // WebSocket; on one, the join or leave frame does (the caller's
  // _roomsChanged sends it), and what is queued for the room goes, unless
  // a request for it is on its way, which a frame could overtake: then
  // the change goes behind it as a request too.
  ChatClient.prototype._listChange = function (op, room) {
    var link = this._link;
    var ws = link && link.up && link.tier === 'websocket';
    var q = this._listQ;
    if (!ws || (q.length && q[0].busy && q[0].room === room)) { this._list(op, room); } else { this._unqueue(room); }
  };

  ChatClient.prototype._list = function (op, room) {
    this._unqueue(room);
    this._listQ.push({ op: op, room: room, tries: 0, busy: false });
    this._pumpList();
  };

  // _unqueue drops the changes to room not yet sent.
  ChatClient.prototype._unqueue = function (room) {
    var q = this._listQ;
    for (var i = q.length - 1; i >= 0; i--) { if (q[i].room === room && !q[i].busy) { q.splice(i, 1); } }
  };

  ChatClient.prototype._pumpList = function () {
    var q = this._listQ;
    if (this._stopped || !q.length || q[0].busy || this._timers.list) { return; }
    var e = q[0];
    if (e.onLink) { // lost while there was no link: waits for one (_linkUp)
      if (!this.state.connected) { return; }
      e.onLink = false;
    }
    var self = this;
    var wait = e.at ? e.at - now() : 0;
    if (wait > 0) { // a retry whose timer stop took away
      this._later('list', wait, function () { self._pumpList(); });
      return;
    }
    e.busy = true;
    this._api('POST', e.op === 'join' ? '/v1/join' : '/v1/leave', { room: e.room }, {}, function (err) {
      e.busy = false;
      // Offline: no link, and none since the last failed attempt at one
      // (a stream that reopens for a new room is not an outage).
      var offline = err && err.status === 0 && !self.state.connected && self._attempt > 0;
      var again = err && (err.status === 0 || err.status === 429 || err.status >= 500) && (offline || ++e.tries < LIST_TRIES);
      if (!again && q[0] === e) { q.shift(); }
      if (offline) {
        e.onLink = true;
        e.at = 0;
      } else if (again) {
        e.at = now() + (err.retryAfter > 0 ? err.retryAfter : 500 + fullJitter(e.tries, 1000, 30000));
      }
      if (self._stopped) { return; } // start sends the rest
      self._pumpList();
    });
  };

  ChatClient.prototype._roomsChanged = function (room, joined) {
    var link = this._link;
    if (!link || !link.up) { return; } // the next link subscribes to all
    if (link.tier === 'websocket') {
      if (joined) { link.join(room, null); } else { link.leave(room); }
    } else if (link.tier === 'poll') {
      link.refresh();
    } else {
      this._reopen();
    }
  };

  // ---- sending ----

  // send queues text for room and returns the outbox entry. The entry
  // stays (and is retried with the same id) until the server acks it.
  ChatClient.prototype.send = function (room, text, files) {
    var e = {
      id: randomId(), room: room, text: String(text), ts: now(), state: 'pending',
      from: this.user, name: this.name
    };
    if (files && files.length) { e.files = files; }
    this.outbox.save(e);
    this.emit('outbox', this.outbox.list());
    this.outbox.flush();
    this._later('flush', 3000, this._flushTick);
    return e;
  };

  // retry puts a failed entry back in the queue.
  ChatClient.prototype.retry = function (id) {
    var e = this.outbox.items[id];
    if (!e) { return; }
    e.state = 'pending';
    delete e.error;
    this.outbox.save(e);
    this.emit('outbox', this.outbox.list());
    this.outbox.flush();
  };

  // discard drops an entry that was not sent.
  ChatClient.prototype.discard = function (id) {
    if (this.outbox.remove(id)) { this.emit('outbox', this.outbox.list()); }
  };

  ChatClient.prototype.pending = function (room) { return this.outbox.list(room); };

  // ---- reads ----

  ChatClient.prototype._readKey = function (room) { return PREFIX + 'read.' + this.user + '.' + room; };

  ChatClient.prototype._loadRead = function (room) {
    if (!this.user) { return; }
    var v = parseInt(storeGet(this.storage, this._readKey(room)) || '', 10);
    if (!isNaN(v) && v > (this._reads[room] || 0)) { this._reads[room] = v; }
  };

  // readPosition is this user's read position in room, as far as this
  // browser knows (0: nothing read).
  ChatClient.prototype.readPosition = function (room) { return this._reads[room] || 0; };

  // markRead records that the user has read room up to seq: in this tab,
  // in the other tabs, and on the server (which tells the other sessions).
  ChatClient.prototype.markRead = function (room, seq) {
    if (!(seq > this.readPosition(room))) { return; }
    this._setRead(room, seq, 'local');
  };

  ChatClient.prototype._setRead = function (room, seq, src) {
    if (!(seq > (this._reads[room] || 0))) { return; }
    this._reads[room] = seq;
    if (this.user) { storeSet(this.storage, this._readKey(room), String(seq)); }
    if (src === 'local') {
      this.bus.post({ t: 'read', room: room, seq: seq });
      var self = this;
      this._later('read:' + room, 200, function () { self._sendRead(room); });
    } else if (src === 'server') {
      this._readSent[room] = Math.max(this._readSent[room] || 0, seq);
    }
    this.emit('read', { room: room, seq: seq });
  };

  ChatClient.prototype._sendRead = function (room) {
    var seq = this._reads[room] || 0;
    if (!seq || seq <= (this._readSent[room] || 0) || !this.state.connected || !this._link) { return; }
    var self = this;
    if (this._link.tier === 'websocket') {
      if (this._link.send({ type: 'read', room: room, seq: seq })) { this._readSent[room] = seq; }
      return;
    }
    this._readSent[room] = seq;
    this._api('POST', '/v1/read', { room: room, seq: seq }, {}, function (err) {
      if (err && err.code !== 'bad_request' && err.code !== 'forbidden' && self._readSent[room] === seq) {
        self._readSent[room] = 0; // try again on the next connect
      }
    });
  };

  // reads gets every stored read position in room.
  // cb(err, {user: seq, ...}).
  ChatClient.prototype.reads = function (room, cb) {
    return this._api('GET', '/v1/rooms/' + pathRoom(room) + '/reads', undefined, {}, function (err, data) {
      cb(err, err ? null : ((data && data.reads) || {}));
    });
  };

  // _receipt takes one user's read position: this user's own (read in
  // another session) moves the read mark; every one is emitted.
  ChatClient.prototype._receipt = function (env) {
    if (env.user === this.user) { this._setRead(env.room, env.seq, 'server'); }
    this.emit('receipt', env);
  };

  // _restoreReads asks the server, once per join, where everyone has read
  // room up to: this user's position (so unread counts are right after a
  // reload or in a new browser) comes as 'read', the others' as 'receipt'
  // envelopes marked stored:true (so "seen by" is right before anyone reads
  // again). It waits for a link, so a page that opens while the server is
  // down asks once it is back; a failure asks again on the next link.
  ChatClient.prototype._restoreReads = function (room) {
    var r = this._rooms[room];
    if (!r || r.reads !== 'wanted') { return; }
    r.reads = 'asking';
    var self = this;
    this.reads(room, function (err, reads) {
      if (self._rooms[room] !== r) { return; } // left meanwhile
      if (err) {
        // A server without the endpoint, or a room this user may not read,
        // will not change its answer: do not ask again.
        r.reads = PERMANENT[err.code] ? 'done' : 'wanted';
        return;
      }
      r.reads = 'done';
      for (var user in reads) {
        if (!has(reads, user) || typeof reads[user] !== 'number') { continue; }
        if (user === self.user) {
          self._setRead(room, reads[user], 'server');
        } else {
          self.emit('receipt', { type: 'receipt', room: room, user: user, seq: reads[user], stored: true });
        }
      }
      self.emit('reads', { room: room, reads: reads });
    });
  };

  // ---- typing, history, presence ----

  // typing tells the room that the user is typing, at most every 1.5 s.
  ChatClient.prototype.typing = function (room) {
    if (!this.feature('typing') || !this.state.connected || !this._link) { return; }
    var t = now();
    if (t - (this._typingAt[room] || 0) < 1500) { return; }
    this._typingAt[room] = t;
    if (this._link.tier === 'websocket') {
      this._link.send({ type: 'typing', room: room });
    } else {
      this._api('POST', '/v1/typing', { room: room }, {}, function () {});
    }
  };

  // history gets a page of room before seq (0 or null: the newest page).
  // cb(err, {room, messages (oldest first), head, first, before}).
  ChatClient.prototype.history = function (room, before, limit, cb) {
    var q = [];
    if (before) { q.push('before=' + before); }
    if (limit) { q.push('limit=' + limit); }
    var path = '/v1/rooms/' + pathRoom(room) + '/history' + (q.length ? '?' + q.join('&') : '');
    return this._api('GET', path, undefined, {}, function (err, data) {
      if (err) { cb(err); return; }
      data = data || {};
      cb(null, {
        room: room, before: before || 0, head: data.head || 0,
        first: typeof data.first === 'number' ? data.first : 1,
        messages: isArray(data.messages) ? data.messages : []
      });
    });
  };

  // presence lists who is online in room. cb(err, [{user, name}]).
  ChatClient.prototype.presence = function (room, cb) {
    return this._api('GET', '/v1/rooms/' + pathRoom(room) + '/presence', undefined, {}, function (err, data) {
      cb(err, err ? null : ((data && data.users) || []));
    });
  };

  // ---- your rooms, your name, edits, files ----

  // roomList gets the rooms and DMs this user belongs to.
  // cb(err, [{room, head, read, unread, last?, dm?}]).
  ChatClient.prototype.roomList = function (cb) {
    return this._api('GET', '/v1/rooms', undefined, {}, function (err, data) {
      cb(err, err ? null : ((data && isArray(data.rooms)) ? data.rooms : []));
    });
  };

  // me gets the user's id and display name. cb(err, {user, name}).
  ChatClient.prototype.me = function (cb) {
    return this._api('GET', '/v1/me', undefined, {}, cb);
  };

  // setName changes the user's display name. cb(err, {user, name}).
  ChatClient.prototype.setName = function (name, cb) {
    var self = this;
    return this._api('PUT', '/v1/me', { name: String(name) }, {}, function (err, me) {
      if (!err && me && me.name) {
        self.name = me.name;
        self.emit('user', { user: self.user, name: me.name });
      }
      if (cb) { cb(err, me); }
    });
  };

  // edit replaces the text of the user's own message at seq. The change
  // comes back to every page as an 'edit' event. cb(err, ack).
  ChatClient.prototype.edit = function (room, seq, text, cb) {
    return this._api('POST', '/v1/edit', { room: room, id: randomId(), seq: seq, text: String(text) }, {},
      cb || function () {});
  };

  // remove deletes the message at seq (the user's own; an admin's: any).
  // It comes back to every page as a 'delete' event. cb(err, ack).
  ChatClient.prototype.remove = function (room, seq, cb) {
    return this._api('POST', '/v1/delete', { room: room, id: randomId(), seq: seq }, {}, cb || function () {});
  };

  // upload sends a file (a File or Blob from an input) to room's file
  // store with XHR and FormData, reporting progress(loaded, total). cb(err,
  // file): the file object to pass to send. The result has abort().
  ChatClient.prototype.upload = function (room, file, progress, cb) {
    var self = this;
    var x = null;
    var aborted = false;
    function go(tok, retried) {
      if (aborted) { return; }
      var form = new root.FormData();
      form.append('room', room);
      form.append('file', file, file.name || 'file');
      x = new root.XMLHttpRequest();
      x.open('POST', self.base + '/v1/files', true);
      x.setRequestHeader('Authorization', 'Bearer ' + tok);
      if (x.upload && progress) {
        x.upload.onprogress = function (ev) { if (ev.lengthComputable) { progress(ev.loaded, ev.total); } };
      }
      x.onreadystatechange = function () {
        if (x.readyState !== 4 || aborted) { return; }
        var data = parseJSON(x.responseText);
        if (x.status >= 200 && x.status < 300 && data && data.id) { cb(null, data); return; }
        var err = httpError(x.status, data, x);
        if (err.status === 401 && !retried) {
          self._refreshToken(function (rerr, fresh) {
            if (rerr || !fresh) { cb(err); } else { go(fresh, true); }
          });
          return;
        }
        cb(err);
      };
      x.send(form);
    }
    this.tokens.get(function (err, tok) {
      if (aborted) { return; }
      if (err || !tok) { cb(err || { status: 0, code: 'unauthorized', message: 'no token' }); return; }
      go(tok, false);
    });
    return { abort: function () { aborted = true; if (x) { try { x.abort(); } catch (e) { /* ignore */ } } } };
  };

  // fetchFile gets a file (or its thumbnail) with the user's token, which
  // an <img src> cannot send, and gives back an object URL for it.
  // cb(err, url). The caller revokes the URL when done.
  ChatClient.prototype.fetchFile = function (url, cb) {
    var self = this;
    if (!root.URL || !root.URL.createObjectURL) { cb({ status: 0, code: 'unsupported', message: 'no object URLs' }); return; }
    this.tokens.get(function (err, tok) {
      if (err || !tok) { cb(err || { status: 0, code: 'unauthorized', message: 'no token' }); return; }
      var x = new root.XMLHttpRequest();
      x.open('GET', self.base + url, true);
      x.responseType = 'blob';
      x.setRequestHeader('Authorization', 'Bearer ' + tok);
      x.onreadystatechange = function () {
        if (x.readyState !== 4) { return; }
        if (x.status >= 200 && x.status < 300 && x.response) { cb(null, root.URL.createObjectURL(x.response)); return; }
        cb(httpError(x.status, null, x));
      };
      x.send(null);
    });
  };

  // ---- tabs ----

  // broadcast sends an app message to this user's other tabs; they get it
  // as the 'tab' event.
  ChatClient.prototype.broadcast = function (msg) { this.bus.post({ t: 'app', msg: msg }); };

  ChatClient.prototype._tabMessage = function (m) {
    if (!m || typeof m.t !== 'string') { return; }
    if (m.t === 'read') {
      this._setRead(m.room, m.seq, 'tab');
    } else if (m.t === 'ack') {
      if (this.outbox.remove(m.ack.id)) { this.emit('outbox', this.outbox.list()); }
      this.emit('ack', { entry: m.entry, ack: m.ack });
    } else if (m.t === 'app') {
      this.emit('tab', m.msg);
    }
  };

  ChatClient.prototype._storageEvent = function (ev) {
    if (!ev || !this.user) { return; }
    this.bus.storageEvent(ev);
    if (this.outbox.storageEvent(ev)) {
      this.emit('outbox', this.outbox.list());
      this.outbox.flush();
      return;
    }
    var prefix = PREFIX + 'read.' + this.user + '.';
    if (ev.key && ev.key.indexOf(prefix) === 0) {
      var seq = parseInt(ev.newValue || '', 10);
      if (!isNaN(seq)) { this._setRead(ev.key.slice(prefix.length), seq, 'tab'); }
    }
  };

  root.ChatClient = ChatClient;
})(this);
