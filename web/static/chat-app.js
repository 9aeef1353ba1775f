/*
 * chat-app.js: the chat page, on top of ChatClient and WindowedList. ES5.
 *
 * Message text is only ever set with createTextNode or textContent: never
 * as HTML. Its http and https links become anchors made with createElement. The page's CSP forbids inline script and style, so everything
 * is in files and styled through classes.
 */
(function (root) {
  'use strict';

  var doc = root.document;
  var ChatClient = root.ChatClient;
  var WindowedList = root.WindowedList;
  var ROOM_RE = /^[^\s,*]{1,128}$/;
  var USER_RE = /^[A-Za-z0-9._-]{1,64}$/;
  // A display name: any text but control, format and bidi-control
  // characters (the server says the same, and normalises it).
  var BAD_NAME_RE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]/;
  var SESSION = 'chatd.session';
  var LEVELS = ['full service', 'reduced: no receipts or typing', 'no WebSocket', 'polling only'];
  // What the user reads next to the connection dot at levels 1 and 2; the
  // tier and the level itself go to the tooltip.
  var LEVEL_NOTE = ['', 'Typing and read receipts are paused', 'Typing and read receipts are paused'];
  var PRESENCE_REFRESH_MS = 30000; // how often a poll client asks who is here

  function $(id) { return doc.getElementById(id); }

  function el(tag, cls, text) {
    var n = doc.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined && text !== null) { n.appendChild(doc.createTextNode(String(text))); }
    return n;
  }

  function setText(n, text) {
    text = String(text);
    if (n.textContent !== text) { n.textContent = text; }
  }

  function clear(n) { while (n.firstChild) { n.removeChild(n.firstChild); } }

  function has(o, k) { return Object.prototype.hasOwnProperty.call(o, k); }

  function now() { return new Date().getTime(); }

  function on(n, ev, fn) { n.addEventListener(ev, fn, false); }

  var storage = (function () {
    try {
      var s = root.localStorage;
      s.setItem('chatd.probe', '1');
      s.removeItem('chatd.probe');
      return s;
    } catch (e) { return null; }
  })();

  function load(key) {
    try { return storage ? JSON.parse(storage.getItem(key) || 'null') : null; } catch (e) { return null; }
  }

  function save(key, v) {
    try { if (storage) { storage.setItem(key, JSON.stringify(v)); } } catch (e) { /* quota */ }
  }

  function pad(n) { return n < 10 ? '0' + n : String(n); }

  function clock(ts) {
    var d = new Date(ts);
    return pad(d.getHours()) + ':' + pad(d.getMinutes());
  }

  function pageVisible() { return doc.visibilityState !== 'hidden'; }

  // dayKey names the local day of ts; dayLabel says it in words.
  function dayKey(ts) {
    var d = new Date(ts);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate());
  }

  function dayLabel(ts) {
    var today = new Date();
    var key = dayKey(ts);
    if (key === dayKey(today.getTime())) { return 'Today'; }
    if (key === dayKey(new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1, 12).getTime())) { return 'Yesterday'; }
    var d = new Date(ts);
    try {
      return d.toLocaleDateString(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
    } catch (e) {
      return d.toDateString(); // a browser that rejects the options
    }
  }

  // ---- links ----

  // A link is http or https, up to a space or a character that cannot
  // end one; trailing punctuation belongs to the sentence.
  var LINK_RE = /\bhttps?:\/\/[^\s<>"]+/gi;
  var LINK_TAIL_RE = /[.,;:!?'*\]}]+$/;

  function trimLink(url) {
    for (;;) {
      var t = url.replace(LINK_TAIL_RE, '');
      // A closing parenthesis ends the link unless the link opened one.
      if (t.charAt(t.length - 1) === ')' && t.split('(').length <= t.split(')').length - 1) { t = t.slice(0, -1); }
      if (t === url) { return url; }
      url = t;
    }
  }

  // safeLink returns an anchor for url, or null when the browser does not
  // read it as an http or https URL with a host.
  function safeLink(url) {
    var a = doc.createElement('a');
    a.href = url;
    if ((a.protocol !== 'http:' && a.protocol !== 'https:') || !a.hostname) { return null; }
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.className = 'link';
    a.appendChild(doc.createTextNode(url));
    return a;
  }

  // fillText puts text into n as text nodes, with its http and https
  // links as anchors. Nothing is ever parsed as HTML.
  function fillText(n, text) {
    text = text || ''; // a message of files alone has none
    clear(n);
    var at = 0;
    var m;
    LINK_RE.lastIndex = 0;
    while ((m = LINK_RE.exec(text)) !== null) {
      var url = trimLink(m[0]);
      var a = safeLink(url);
      if (!a) { continue; }
      if (m.index > at) { n.appendChild(doc.createTextNode(text.slice(at, m.index))); }
      n.appendChild(a);
      at = m.index + url.length;
      LINK_RE.lastIndex = at;
    }
    if (at < text.length || !n.firstChild) { n.appendChild(doc.createTextNode(text.slice(at))); }
  }

  // ---- a room's messages -------------------------------------------------

  function Room(name) {
    this.name = name;
    this.items = [];      // confirmed messages, by seq
    this.bySeq = {};
    this.byId = {};
    this.first = null;    // the oldest seq the server still has
    this.noOlder = false;
    this.loadingOlder = false;
    this.loaded = false;  // the newest page came
    this.read = 0;        // own read position
    this.unread = 0;
    this.receipts = {};   // user → seq (others)
    this.names = {};      // user → display name
    this.typing = {};     // user → {name, until}
    this.presence = null; // user → name, once known
  }

  // insert adds a message in seq order; a seq already there is kept once.
  Room.prototype.insert = function (m) {
    if (typeof m.seq !== 'number') { return false; }
    if (m.from) { this.names[m.from] = m.name || m.from; }
    if (m.type === 'edit' || m.type === 'delete') { return this.change(m); }
    var old = this.bySeq[m.seq];
    if (old) {
      if (!old.deleted) { old.text = m.text; }
      old.ts = m.ts || old.ts;
      if (m.files) { old.files = m.files; }
      if (m.edited) { old.edited = m.edited; }
      if (m.deleted) { old.deleted = true; old.text = ''; old.files = null; }
      return false;
    }
    var msg = {
      seq: m.seq, id: m.id, from: m.from, name: m.name || m.from, text: m.deleted ? '' : (m.text || ''), ts: m.ts || 0,
      room: this.name, files: m.deleted ? null : (m.files || null), edited: m.edited || 0, deleted: !!m.deleted
    };
    var early = this.early && this.early[m.seq];
    if (early) {
      delete this.early[m.seq];
      for (var k = 0; k < early.length; k++) { applyChange(msg, early[k]); }
    }
    var items = this.items;
    var i = items.length;
    if (i && items[i - 1].seq > m.seq) {
      var lo = 0;
      var hi = items.length;
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (items[mid].seq < m.seq) { lo = mid + 1; } else { hi = mid; }
      }
      i = lo;
    }
    items.splice(i, 0, msg);
    this.bySeq[m.seq] = msg;
    if (m.id) { this.byId[m.id] = msg; }
    return true;
  };

  // change applies an edit or a delete to the message it names. One that
  // arrives before its message (a history page still on its way) waits.
  Room.prototype.change = function (c) {
    var target = this.bySeq[c.target];
    if (!target) {
      this.early = this.early || {};
      (this.early[c.target] = this.early[c.target] || []).push(c);
      return false;
    }
    applyChange(target, c);
    return true;
  };

  function applyChange(msg, c) {
    if (c.type === 'delete') {
      msg.deleted = true;
      msg.text = '';
      msg.files = null;
    } else if (!msg.deleted) {
      msg.text = c.text;
      msg.edited = c.ts || 1;
    }
  }

  Room.prototype.reset = function () {
    this.early = {};
    this.items = [];
    this.bySeq = {};
    this.byId = {};
    this.first = null;
    this.noOlder = false;
    this.loaded = false;
  };

  Room.prototype.latestSeq = function () {
    return this.items.length ? this.items[this.items.length - 1].seq : 0;
  };

  Room.prototype.countUnread = function (me) {
    var n = 0;
    for (var i = this.items.length - 1; i >= 0 && this.items[i].seq > this.read; i--) {
      if (this.items[i].from !== me) { n++; }
    }
    this.unread = n;
    return n;
  };

  // ---- the app -------------------------------------------------------------

  var app = {
    client: null,
    source: null,
    user: null,
    name: null,
    rooms: {},     // name → Room
    roomNodes: {}, // name → its list item
    order: [],     // room names, as listed
    active: null,
    list: null,
    dirty: {},
    flushTimer: null,
    tickTimer: null,
    presenceTimer: null,
    presenceEvery: PRESENCE_REFRESH_MS,
    wasConnected: false,
    blobs: {},      // file url → {url: object URL, waiting}
    peerNames: {},  // user id → display name, for DM labels
    editing: null,  // {room, seq} while the composer edits a message
    uploads: 0      // uploads in flight
  };
  root.chatApp = app; // for debugging and the browser tests

  function dmPeer(room) {
    if (room.indexOf('dm:') !== 0) { return null; }
    var parts = room.slice(3).split(':');
    if (parts.length !== 2) { return null; }
    return parts[0] === app.user ? parts[1] : parts[0];
  }

  // roomLabel names a room in the list and the header: a DM by the other
  // user's display name, once known (their id until then).
  function roomLabel(room) {
    var peer = dmPeer(room);
    return peer ? '@' + (app.peerNames[peer] || peer) : '#' + room;
  }

  // notePeer remembers a DM peer's display name ({user, name}).
  function notePeer(dm) {
    if (!dm || typeof dm.user !== 'string' || typeof dm.name !== 'string' || !dm.name) { return; }
    if (app.peerNames[dm.user] === dm.name) { return; }
    app.peerNames[dm.user] = dm.name;
    var li = app.roomNodes[ChatClient.dmRoom(app.user, dm.user)];
    if (li) { setText(li.querySelector('.room-name'), roomLabel(ChatClient.dmRoom(app.user, dm.user))); }
    mark('rooms');
  }

  // ---- rendering, batched ----

  function mark(what) {
    app.dirty[what] = true;
    if (!app.flushTimer) { app.flushTimer = setTimeout(flush, 0); }
  }

  function flush() {
    app.flushTimer = null;
    var d = app.dirty;
    app.dirty = {};
    if (d.rooms) { renderRooms(); }
    if (d.list) { renderList(false); }
    if (d.presence) { renderPresence(); }
    if (d.typing) { renderTyping(); }
    if (d.list || d.read) { maybeMarkRead(); }
  }

  // displayItems lists what the active room shows: its messages, then its
  // pending sends, with a day separator before the first message of each
  // local day.
  function displayItems(room) {
    var pending = app.client ? app.client.pending(room.name) : [];
    var all = room.items;
    var i;
    var extra = [];
    for (i = 0; i < pending.length; i++) {
      if (!room.byId[pending[i].id]) { extra.push(pending[i]); }
    }
    if (extra.length) { all = all.concat(extra); }
    var out = [];
    var day = '';
    for (i = 0; i < all.length; i++) {
      var item = all[i];
      if (item.ts) {
        var key = dayKey(item.ts);
        if (key !== day) {
          day = key;
          out.push({ sep: true, day: key, ts: item.ts, room: room.name });
        }
      }
      out.push(item);
    }
    return out;
  }

  function renderList(reset) {
    var room = app.rooms[app.active];
    if (!room) {
      app.list.set([], true);
      setText($('older'), '');
      return;
    }
    app.list.set(displayItems(room), reset);
    var older = $('older');
    if (!room.loaded) {
      setText(older, 'Loading…');
    } else if (room.loadingOlder) {
      setText(older, 'Loading older messages…');
    } else if (room.noOlder) {
      setText(older, room.items.length ? 'This is the start of ' + roomLabel(room.name) + '.' : 'No messages yet. Say hello!');
    } else {
      setText(older, 'Scroll up for older messages');
    }
  }

  function itemState(item) {
    if (typeof item.seq === 'number') { return 'sent'; }
    return item.state === 'failed' ? 'failed' : 'pending';
  }

  // idBeside is what shows beside the display name name of user: '@' and
  // the id, unless the name is the id (ids are case-sensitive: "Alice"
  // and "alice" are two users).
  function idBeside(name, user) {
    return user && String(name) !== String(user) ? '@' + user : '';
  }

  function isCont(item, prev) {
    return !!prev && !prev.sep && prev.from === item.from && typeof prev.seq === typeof item.seq &&
      (item.ts || 0) - (prev.ts || 0) < 5 * 60000;
  }

  // seenBy names the other users who have read up to the message.
  function seenBy(room, item) {
    if (!app.client || !app.client.feature('read_receipts')) { return []; }
    var out = [];
    for (var u in room.receipts) {
      if (has(room.receipts, u) && u !== app.user && room.receipts[u] >= item.seq) { out.push(room.names[u] || u); }
    }
    out.sort();
    return out;
  }

  function lastMineSeq(room) {
    for (var i = room.items.length - 1; i >= 0; i--) {
      if (room.items[i].from === app.user) { return room.items[i].seq; }
    }
    return 0;
  }

  function renderItem(item, prev) {
    if (item.sep) {
      var sep = el('li', 'day-sep');
      sep.setAttribute('role', 'separator');
      sep.setAttribute('data-day', item.day);
      sep.appendChild(el('span', 'day-label'));
      updateSep(sep, item);
      return sep;
    }
    var li = el('li', 'msg');
    li.setAttribute('data-id', item.id);
    var meta = el('div', 'meta');
    var who = el('span', 'who');
    var whoID = el('span', 'who-id');
    var time = el('time');
    meta.appendChild(who);
    meta.appendChild(whoID);
    meta.appendChild(time);
    li.appendChild(meta);
    var text = el('div', 'text');
    fillText(text, item.text); // text and anchors, never HTML
    li._textValue = item.text;
    li.appendChild(text);
    li._files = null;
    li._who = who;
    li._whoID = whoID;
    li._meta = meta;
    li._time = time;
    li._text = text;
    li._sig = '';
    updateItem(li, item, prev);
    return li;
  }

  // shownText is a message's text as shown: a message that only carries
  // its file says nothing more than the file's own name.
  function shownText(item) {
    var f = item.files;
    if (f && f.length === 1 && item.text === f[0].name) { return ''; }
    return item.text || '';
  }

  // renderFiles shows a message's attachments: images as thumbnails
  // (fetched with the user's token, shown through an object URL), other
  // files as download buttons. Nothing from the file is ever rendered as
  // HTML or run.
  function renderFiles(li, files) {
    if (li._filesBox) { li.removeChild(li._filesBox); li._filesBox = null; }
    if (!files || !files.length) { return; }
    var box = el('div', 'files');
    for (var i = 0; i < files.length; i++) {
      var f = files[i];
      if (!f || typeof f.url !== 'string') { continue; }
      var b = el('button', f.thumb_url ? 'file-img' : 'file-att');
      b.type = 'button';
      b.setAttribute('data-action', f.thumb_url ? 'view-file' : 'download-file');
      b.setAttribute('data-url', f.url);
      b.setAttribute('data-name', f.name || 'file');
      if (f.thumb_url) {
        var img = el('img');
        img.alt = f.name || 'image';
        if (f.width && f.height) {
          var w = Math.min(320, f.width);
          img.width = w;
          img.height = Math.round(f.height * w / f.width);
        }
        b.appendChild(img);
        b.title = (f.name || 'image') + ' (' + sizeText(f.size) + ')';
        loadThumb(img, f.thumb_url);
      } else {
        b.appendChild(el('span', 'file-icon', 'File'));
        b.appendChild(el('span', 'file-name', f.name || 'file'));
        b.appendChild(el('span', 'file-size', sizeText(f.size)));
      }
      box.appendChild(b);
    }
    li.insertBefore(box, li._text.nextSibling);
    li._filesBox = box;
  }

  function sizeText(n) {
    if (!(n >= 0)) { return ''; }
    if (n < 1024) { return n + ' B'; }
    if (n < 1048576) { return Math.round(n / 1024) + ' KB'; }
    return (n / 1048576).toFixed(1) + ' MB';
  }

  // blobURL fetches url once per page (an object URL), then hands it out.
  function blobURL(url, cb) {
    var c = app.blobs[url];
    if (c && c.url) { cb(null, c.url); return; }
    if (c) { c.waiting.push(cb); return; }
    c = app.blobs[url] = { url: null, waiting: [cb] };
    app.client.fetchFile(url, function (err, obj) {
      var list = c.waiting;
      c.waiting = [];
      if (err) { delete app.blobs[url]; } else { c.url = obj; }
      for (var i = 0; i < list.length; i++) { list[i](err, obj); }
    });
  }

  function loadThumb(img, url) {
    if (!app.client) { return; }
    blobURL(url, function (err, obj) { if (!err) { img.src = obj; } });
  }

  function releaseBlobs() {
    for (var u in app.blobs) {
      if (has(app.blobs, u) && app.blobs[u].url && root.URL && root.URL.revokeObjectURL) { root.URL.revokeObjectURL(app.blobs[u].url); }
    }
    app.blobs = {};
  }

  // renderActions offers Edit and Delete on the user's own messages.
  function renderActions(li, on, item) {
    if (!on) {
      if (li._actions) { li.removeChild(li._actions); li._actions = null; }
      return;
    }
    if (li._actions) { return; }
    var box = el('span', 'actions');
    var edit = el('button', '', 'Edit');
    edit.type = 'button';
    edit.setAttribute('data-action', 'edit');
    var del = el('button', '', 'Delete');
    del.type = 'button';
    del.setAttribute('data-action', 'delete');
    box.appendChild(edit);
    box.appendChild(del);
    li._meta.appendChild(box);
    li._actions = box;
  }

  // updateSep keeps a separator's words right: "Today" becomes
  // "Yesterday" after midnight.
  function updateSep(li, item) {
    var label = dayLabel(item.ts);
    setText(li.firstChild, label);
    li.setAttribute('aria-label', label);
  }

  function updateItem(li, item, prev) {
    if (item.sep) { updateSep(li, item); return; }
    var room = app.rooms[item.room] || app.rooms[app.active];
    var mine = item.from === app.user;
    var state = itemState(item);
    var unread = state === 'sent' && !mine && item.seq > room.read;
    var cont = isCont(item, prev);
    var status = '';
    var seen = false;
    if (mine && state === 'pending') { status = 'sending…'; }
    if (mine && state === 'failed') { status = 'not sent: ' + (item.error || 'error'); }
    if (mine && state === 'sent' && item.seq === room._lastMine) {
      var readers = seenBy(room, item);
      seen = readers.length > 0;
      status = seen ? 'seen by ' + readers.join(', ') : 'sent';
    }
    var shown = item.deleted ? 'This message was deleted.' : shownText(item);
    if (li._textValue !== shown) {
      li._textValue = shown;
      fillText(li._text, shown);
    }
    if (li._files !== (item.files || null)) {
      li._files = item.files || null;
      renderFiles(li, item.files);
    }
    var editable = mine && state === 'sent' && !item.deleted;
    var sig = [state, unread, cont, status, item.seq, item.ts, mine, item.edited, item.deleted, editable].join('|');
    if (li._sig === sig) { return; }
    li._sig = sig;
    li.className = 'msg' + (mine ? ' mine' : '') + (unread ? ' unread' : '') + (cont ? ' cont' : '') +
      (item.deleted ? ' deleted' : '') + (item.edited ? ' edited' : '');
    renderActions(li, editable, item);
    li.setAttribute('data-state', state);
    if (typeof item.seq === 'number') { li.setAttribute('data-seq', String(item.seq)); } else { li.removeAttribute('data-seq'); }
    var name = mine ? (app.name || item.name || item.from) : (item.name || item.from || '?');
    setText(li._who, name);
    // Anyone may take any display name: the sender's id goes beside a
    // name that is not the id, so a namesake cannot pass for another.
    setText(li._whoID, idBeside(name, item.from));
    if (item.from) { li._who.setAttribute('title', '@' + item.from); }
    setText(li._time, item.ts ? clock(item.ts) + (item.edited && !item.deleted ? ' (edited)' : '') : '');
    if (item.ts) { li._time.setAttribute('title', new Date(item.ts).toLocaleString()); }
    var st = li._status;
    if (status) {
      if (!st) {
        st = li._status = el('div', 'status');
        li.appendChild(st);
      }
      clear(st);
      st.className = 'status' + (seen ? ' seen' : '');
      st.appendChild(doc.createTextNode(status));
      if (state === 'failed') {
        var retry = el('button', '', 'Retry');
        retry.type = 'button';
        retry.setAttribute('data-action', 'retry');
        var drop = el('button', '', 'Discard');
        drop.type = 'button';
        drop.setAttribute('data-action', 'discard');
        st.appendChild(retry);
        st.appendChild(drop);
      }
    } else if (st) {
      li.removeChild(st);
      li._status = null;
    }
  }

  // roomNode returns the list item of a room, made once and then updated
  // in place, so a click never lands on a node that a re-draw replaced.
  function roomNode(name) {
    var li = app.roomNodes[name];
    if (li) { return li; }
    li = el('li');
    li.setAttribute('data-room', name);
    var btn = el('button', 'room-btn');
    btn.type = 'button';
    btn.setAttribute('data-action', 'open');
    btn.appendChild(el('span', 'room-name', roomLabel(name)));
    var badge = el('span', 'badge');
    badge.hidden = true;
    btn.appendChild(badge);
    li.appendChild(btn);
    var leave = el('button', 'leave-btn', '\u00d7');
    leave.type = 'button';
    leave.setAttribute('data-action', 'leave');
    leave.setAttribute('aria-label', 'Leave ' + roomLabel(name));
    leave.title = 'Leave';
    li.appendChild(leave);
    li._badge = badge;
    app.roomNodes[name] = li;
    return li;
  }

  function renderRooms() {
    var name;
    for (name in app.roomNodes) {
      if (has(app.roomNodes, name) && !app.rooms[name]) {
        var gone = app.roomNodes[name];
        if (gone.parentNode) { gone.parentNode.removeChild(gone); }
        delete app.roomNodes[name];
      }
    }
    var parents = { rooms: $('rooms'), dms: $('dms') };
    var index = { rooms: 0, dms: 0 };
    var total = 0;
    for (var i = 0; i < app.order.length; i++) {
      name = app.order[i];
      var room = app.rooms[name];
      var li = roomNode(name);
      var which = dmPeer(name) ? 'dms' : 'rooms';
      var parent = parents[which];
      var at = parent.childNodes[index[which]++] || null;
      if (at !== li) { parent.insertBefore(li, at); }
      var cls = name === app.active ? 'active' : '';
      if (li.className !== cls) { li.className = cls; }
      li.setAttribute('data-unread', String(room.unread));
      li._badge.hidden = room.unread === 0;
      setText(li._badge, room.unread > 99 ? '99+' : room.unread);
      total += room.unread;
    }
    var active = app.rooms[app.active];
    setText($('room-title'), active ? roomLabel(active.name) : 'No room');
    var title = (total ? '(' + total + ') ' : '') + 'chatd';
    if (doc.title !== title) { doc.title = title; }
  }

  // renderPresence lists who is here. While the link is down nobody can
  // tell, so the list greys out and says so.
  function renderPresence() {
    var ul = $('presence');
    clear(ul);
    var unknown = presenceUnknown();
    toggleClass($('presence-box'), 'unknown', unknown);
    $('presence-note').hidden = !unknown;
    var room = app.rooms[app.active];
    if (!room || !room.presence) {
      ul.appendChild(el('li', 'presence-empty', '…'));
      return;
    }
    var names = [];
    for (var u in room.presence) { if (has(room.presence, u)) { names.push({ user: u, name: room.presence[u] }); } }
    names.sort(function (a, b) { return a.name.toLowerCase() < b.name.toLowerCase() ? -1 : 1; });
    for (var i = 0; i < names.length; i++) {
      var li = el('li');
      li.appendChild(el('span', 'p-name', names[i].name + (names[i].user === app.user ? ' (you)' : '')));
      var pid = idBeside(names[i].name, names[i].user);
      if (pid) { li.appendChild(el('span', 'who-id', pid)); }
      li.setAttribute('data-user', names[i].user);
      if (names[i].user !== app.user) {
        var dm = el('button', 'p-dm', 'Message');
        dm.type = 'button';
        dm.setAttribute('data-action', 'dm');
        dm.setAttribute('aria-label', 'Message ' + names[i].name);
        li.appendChild(dm);
      }
      ul.appendChild(li);
    }
    if (!names.length) { ul.appendChild(el('li', 'presence-empty', 'nobody')); }
  }

  function renderTyping() {
    var room = app.rooms[app.active];
    var names = [];
    var t = now();
    var next = 0;
    if (room && app.client && app.client.feature('typing')) {
      for (var u in room.typing) {
        if (!has(room.typing, u)) { continue; }
        if (room.typing[u].until > t) {
          names.push(room.typing[u].name);
          next = next ? Math.min(next, room.typing[u].until) : room.typing[u].until;
        } else {
          delete room.typing[u];
        }
      }
    }
    var text = '';
    if (names.length === 1) { text = names[0] + ' is typing…'; }
    if (names.length === 2) { text = names[0] + ' and ' + names[1] + ' are typing…'; }
    if (names.length > 2) { text = 'Several people are typing…'; }
    setText($('typing'), text);
    if (next) { setTimeout(function () { mark('typing'); }, next - t + 50); }
  }

  // connWords says the connection in plain words: the tier and the level
  // are for the tooltip, not for the person chatting.
  function connWords(s) {
    if (s.connected) {
      if (s.tier === 'poll' && s.level >= 3) {
        var offer = (app.client && app.client.offer) || {};
        return 'Checking every ' + Math.round((offer.poll_interval_ms || 5000) / 1000) + ' s';
      }
      return s.tier === 'websocket' ? 'Connected' : 'Connected (compatibility mode)';
    }
    if (s.status === 'waiting') {
      var left = secondsLeft(s);
      return left > 0 ? 'Offline, retrying in ' + left + ' s' : 'Offline, retrying now';
    }
    if (s.status === 'stopped') { return 'Disconnected'; }
    if (s.status === 'connecting') { return 'Connecting…'; }
    return 'Offline';
  }

  function secondsLeft(s) { return Math.max(0, Math.ceil(((s.retryAt || 0) - now()) / 1000)); }

  function renderConn(s) {
    var c = $('conn');
    c.setAttribute('data-status', s.status);
    c.setAttribute('data-connected', s.connected ? 'true' : 'false');
    c.setAttribute('data-tier', s.tier || '');
    c.setAttribute('data-level', s.level === null || s.level === undefined ? '' : String(s.level));
    setText($('conn-text'), connWords(s));
    var level = typeof s.level === 'number' ? 'Level ' + s.level + ': ' + (LEVELS[s.level] || '') : '';
    var tier = s.tier ? (s.connected ? 'Connected over ' : 'Trying ') + s.tier : 'Not connected';
    var title = [tier, level, s.reason || ''];
    for (var i = title.length - 1; i >= 0; i--) { if (!title[i]) { title.splice(i, 1); } }
    c.title = title.join('. ');
    setText($('conn-reason'), s.connected ? LEVEL_NOTE[s.level] || '' : (s.status === 'stopped' ? s.reason || '' : ''));
    // The countdown ticks when its number changes, not on a free-running
    // interval, so it shows the real time left.
    if (app.tickTimer) { clearTimeout(app.tickTimer); app.tickTimer = null; }
    var ms = (s.retryAt || 0) - now();
    if (s.status === 'waiting' && ms > 0) {
      app.tickTimer = setTimeout(function () {
        app.tickTimer = null;
        if (app.client) { renderConn(app.client.getState()); }
      }, (ms % 1000 || 1000) + 5);
    }
  }

  function applyFeatures(f) {
    var body = doc.body;
    toggleClass(body, 'no-receipts', f.read_receipts === false);
    toggleClass(body, 'no-typing', f.typing === false);
    toggleClass(body, 'no-presence', f.presence === false);
    toggleClass(body, 'no-files', f.files === false);
  }

  function toggleClass(n, cls, onOff) {
    var list = (' ' + n.className + ' ').replace(' ' + cls + ' ', ' ');
    n.className = (onOff ? list + cls : list).replace(/^\s+|\s+$/g, '').replace(/\s+/g, ' ');
  }

  // ---- reading ----

  // maybeMarkRead marks the active room read when its newest message is
  // in view and the page is visible.
  function maybeMarkRead() {
    var room = app.rooms[app.active];
    if (!room || !app.client || !pageVisible() || !app.list.showingLatest()) { return; }
    var seq = room.latestSeq();
    if (seq > room.read) { app.client.markRead(room.name, seq); }
  }

  // ---- rooms ----

  function roomsKey() { return 'chatd.rooms.' + app.user; }

  function saveRooms(tell) {
    save(roomsKey(), { rooms: app.order, active: app.active });
    if (tell && app.client) { app.client.broadcast({ rooms: app.order }); }
  }

  function addRoom(name, tell) {
    if (app.rooms[name]) { return app.rooms[name]; }
    var room = new Room(name);
    room.read = app.client.readPosition(name);
    app.rooms[name] = room;
    app.order.push(name);
    app.client.join(name, { remember: tell }); // the user chose it: the server remembers it
    saveRooms(tell);
    mark('rooms');
    return room;
  }

  function removeRoom(name, tell) {
    if (!app.rooms[name]) { return; }
    // The user's own leave changes the server's list; one the server or
    // another tab made has changed it already.
    app.client.leave(name, tell ? undefined : { listed: false });
    delete app.rooms[name];
    app.order.splice(app.order.indexOf(name), 1);
    if (app.active === name) { selectRoom(app.order[0] || null); }
    saveRooms(tell);
    mark('rooms');
  }

  function selectRoom(name) {
    app.active = name;
    var room = app.rooms[name];
    saveRooms(false);
    toggleClass(doc.body, 'side-open', false);
    $('menu').setAttribute('aria-expanded', 'false');
    renderRooms();
    renderList(true);
    renderTyping();
    if (room) { refreshPresence(room); }
    renderPresence();
    maybeMarkRead();
  }

  function refreshPresence(room) {
    if (!app.client.feature('presence')) { return; }
    app.client.presence(room.name, function (err, users) {
      if (err || !app.rooms[room.name]) { return; }
      room.presence = {};
      for (var i = 0; i < users.length; i++) { room.presence[users[i].user] = users[i].name || users[i].user; }
      if (room.name === app.active) { mark('presence'); }
    });
  }

  // loadOlder fetches the page before the oldest message held.
  function loadOlder() {
    var room = app.rooms[app.active];
    if (!room || !room.loaded || room.loadingOlder || room.noOlder || !room.items.length) { return; }
    var oldest = room.items[0].seq;
    if (room.first !== null && oldest <= room.first) {
      room.noOlder = true;
      mark('list');
      return;
    }
    room.loadingOlder = true;
    mark('list');
    app.client.history(room.name, oldest, 50, function (err, page) {
      room.loadingOlder = false;
      if (err) { mark('list'); return; }
      addPage(room, page);
    });
  }

  function addPage(room, page) {
    for (var i = 0; i < page.messages.length; i++) { room.insert(page.messages[i]); }
    room.first = page.first;
    var oldest = room.items.length ? room.items[0].seq : page.head + 1;
    if (!page.messages.length || oldest <= page.first) { room.noOlder = true; }
    room.loaded = true;
    afterChange(room);
  }

  function afterChange(room) {
    room._lastMine = lastMineSeq(room);
    room.countUnread(app.user);
    mark('rooms');
    if (room.name === app.active) { mark('list'); }
  }

  // ---- client events ----

  // presenceUnknown: the link is down after it was up, or a retry is
  // scheduled. (Not during the first connect after sign-in.)
  function presenceUnknown() {
    var s = app.client && app.client.state;
    return !!s && !s.connected && (app.wasConnected || s.status === 'waiting' || s.status === 'stopped');
  }

  // pollPresence asks who is here every presenceEvery while on the poll
  // tier: presence events between two polls are lost, so without it a
  // user could be missing from the list for a whole session.
  function pollPresence(on) {
    if (!on) {
      if (app.presenceTimer) { clearInterval(app.presenceTimer); app.presenceTimer = null; }
      return;
    }
    if (app.presenceTimer) { return; }
    app.presenceTimer = setInterval(function () {
      var room = app.rooms[app.active];
      if (room && app.client && app.client.state.connected) { refreshPresence(room); }
    }, app.presenceEvery);
  }

  function wireClient(c) {
    var wasConnected = false;
    var wasUnknown = false;
    c.on('state', function (s) {
      renderConn(s);
      if (s.connected && !wasConnected) {
        // Every reconnect asks again: what happened while offline is unknown.
        var room = app.rooms[app.active];
        if (room) { refreshPresence(room); }
        loadRoomList();
      }
      wasConnected = s.connected;
      if (s.connected) { app.wasConnected = true; }
      var unknown = presenceUnknown();
      if (unknown !== wasUnknown) { mark('presence'); }
      wasUnknown = unknown;
      pollPresence(s.connected && s.tier === 'poll');
    });
    c.on('control', function (o) { applyFeatures(o.features || {}); mark('list'); mark('typing'); });
    c.on('message', function (m) {
      var room = app.rooms[m.room];
      if (!room) { return; }
      if (m.from && dmPeer(m.room) === m.from) { notePeer({ user: m.from, name: m.name }); }
      room.insert(m);
      // Their message is what they were typing: the line goes at once.
      if (m.from && room.typing[m.from]) {
        delete room.typing[m.from];
        if (room.name === app.active) { mark('typing'); }
      }
      afterChange(room);
    });
    function onChange(e) {
      var room = app.rooms[e.room];
      if (!room) { return; }
      room.change(e);
      if (app.editing && app.editing.room === e.room && app.editing.seq === e.target && e.type === 'delete') { stopEditing(); }
      afterChange(room);
    }
    c.on('edit', onChange);
    c.on('delete', onChange);
    c.on('room', function (e) {
      // A room appeared in (a DM, an invitation, a join elsewhere) or left
      // this user's list; or events were missed and the list is read again.
      if (e.reason === 'resync') { loadRoomList(); return; }
      if (!ROOM_RE.test(e.room)) { return; }
      notePeer(e.dm);
      if (e.reason === 'left') {
        removeRoom(e.room, false);
      } else if (!app.client.leaving(e.room)) { // the user's leave, on its way, is newer
        addRoom(e.room, false);
      }
    });
    c.on('history', function (page) {
      var room = app.rooms[page.room];
      if (room) { addPage(room, page); }
    });
    c.on('reset', function (e) {
      var room = app.rooms[e.room];
      if (room) { room.reset(); afterChange(room); }
    });
    c.on('ack', function (a) {
      var room = app.rooms[a.ack.room || a.entry.room];
      if (!room || typeof a.ack.seq !== 'number') { mark('list'); return; }
      // Show the message at its seq now; the copy the subscription
      // delivers later lands on the same seq.
      room.insert({
        seq: a.ack.seq, id: a.entry.id, from: a.entry.from || app.user, name: a.entry.name || app.name,
        text: a.entry.text, ts: a.ack.ts || a.entry.ts
      });
      afterChange(room);
    });
    c.on('outbox', function () { mark('list'); });
    c.on('read', function (r) {
      var room = app.rooms[r.room];
      if (!room) { return; }
      room.read = Math.max(room.read, r.seq);
      room.countUnread(app.user);
      mark('rooms');
      if (room.name === app.active) { mark('list'); }
    });
    c.on('receipt', function (r) {
      var room = app.rooms[r.room];
      if (!room || r.user === app.user) { return; }
      room.receipts[r.user] = Math.max(room.receipts[r.user] || 0, r.seq);
      if (room.name === app.active) { mark('list'); }
    });
    c.on('presence', function (p) {
      var room = app.rooms[p.room];
      if (!room) { return; }
      room.presence = room.presence || {};
      if (p.online) { room.presence[p.user] = p.name || p.user; } else { delete room.presence[p.user]; }
      if (p.name) { room.names[p.user] = p.name; }
      if (room.name === app.active) { mark('presence'); }
    });
    c.on('typing', function (t) {
      var room = app.rooms[t.room];
      if (!room || t.user === app.user) { return; }
      room.typing[t.user] = { name: t.name || t.user, until: now() + 4000 };
      if (room.name === app.active) { mark('typing'); }
    });
    c.on('joined', function (j) {
      var room = app.rooms[j.room];
      if (room && room.name === app.active) { refreshPresence(room); }
    });
    c.on('tab', function (msg) {
      if (!msg || !msg.rooms) { return; }
      syncRooms(msg.rooms);
    });
    c.on('auth', function (e) {
      if (!app.source || !app.source.refresh || app.source.isStatic) { signOut('Your token was not accepted: ' + e.reason); }
    });
  }

  // loadRoomList adds the rooms and DMs the server knows this user is in
  // (joined elsewhere, or a DM someone started) and their read positions.
  // Off a WebSocket, whose join frames list every room the page follows
  // each time it opens, the rooms the page follows and the server's list
  // lacks (restored from this browser's storage, the first visit's
  // general: an event stream opened with a ticket joins without
  // remembering) are put in the list by request.
  function loadRoomList() {
    var c = app.client;
    c.roomList(function (err, list) {
      if (err || c !== app.client) { return; }
      var listed = {};
      for (var i = 0; i < list.length; i++) {
        var r = list[i];
        if (!r || typeof r.room !== 'string' || !ROOM_RE.test(r.room)) { continue; }
        if (c.leaving(r.room)) { continue; } // left here; the list was read before the leave landed
        listed[r.room] = true;
        notePeer(r.dm);
        var room = addRoom(r.room, false);
        if (typeof r.read === 'number' && r.read > room.read) { room.read = r.read; afterChange(room); }
      }
      var s = c.getState();
      if (!s.connected || s.tier === 'websocket') { return; }
      for (var j = 0; j < app.order.length; j++) {
        if (!listed[app.order[j]]) { c.remember(app.order[j]); }
      }
    });
  }

  // syncRooms adopts the room list of another tab.
  function syncRooms(list) {
    var want = {};
    var i;
    for (i = 0; i < list.length; i++) {
      want[list[i]] = true;
      if (!app.rooms[list[i]]) { addRoom(list[i], false); }
    }
    var copy = app.order.slice();
    for (i = 0; i < copy.length; i++) {
      if (!want[copy[i]]) { removeRoom(copy[i], false); }
    }
    if (!app.active && app.order.length) { selectRoom(app.order[0]); }
  }

  // ---- sign in and out ----

  function showLogin(message) {
    toggleClass(doc.body, 'signed-in', false);
    // Nothing about the connection shows before sign-in.
    $('conn').hidden = true;
    $('conn-reason').hidden = true;
    $('app').hidden = true;
    $('login').hidden = false;
    $('logout').hidden = true;
    setText($('me'), '');
    setText($('login-error'), message || '');
    $('login-name').focus();
  }

  function signIn(sess) {
    var src;
    if (sess.token) {
      src = ChatClient.staticTokenSource(sess.token);
      src.isStatic = true;
    } else {
      src = ChatClient.devTokenSource(sess.name);
    }
    $('login-go').disabled = true;
    src.get(function (err, tok) {
      $('login-go').disabled = false;
      if (err) {
        var msg = err.status === 404 ? 'This server is not in dev mode: sign in with a token.' :
          err.status === 0 ? 'The server cannot be reached. Try again in a moment.' :
          'Sign-in failed: ' + (err.message || err.code);
        showLogin(msg);
        return;
      }
      save(SESSION, sess);
      start(src, tok);
    });
  }

  function start(src, tok) {
    var claims = ChatClient.decodeJWT(tok) || {};
    app.source = src;
    app.user = claims.sub || 'me';
    app.name = claims.name || claims.sub || src.name || app.user;
    app.peerNames = {};
    app.rooms = {};
    app.order = [];
    app.active = null;
    // A deployment (or a test) may tune the client from a script file of
    // its own, loaded before this one: window.chatdClientOptions.
    var opts = { tokenSource: src };
    var extra = root.chatdClientOptions || {};
    for (var k in extra) { if (has(extra, k) && k !== 'tokenSource') { opts[k] = extra[k]; } }
    app.wasConnected = false;
    app.presenceEvery = extra.presenceRefreshMs > 0 ? extra.presenceRefreshMs : PRESENCE_REFRESH_MS;
    var c = app.client = new ChatClient(opts);
    wireClient(c);
    c.on('user', function (u) { app.user = u.user; app.name = u.name; showMe(); mark('list'); });
    $('login').hidden = true;
    $('app').hidden = false;
    $('logout').hidden = false;
    toggleClass(doc.body, 'signed-in', true);
    renderConn(c.getState());
    $('conn').hidden = false;
    $('conn-reason').hidden = false;
    showMe();
    c.me(function (err, me) {
      if (!err && me && me.name && c === app.client) { app.name = me.name; showMe(); mark('list'); }
    });
    var saved = load(roomsKey()) || {};
    var names = saved.rooms && saved.rooms.length ? saved.rooms : ['general'];
    for (var i = 0; i < names.length; i++) { if (ROOM_RE.test(names[i])) { addRoom(names[i], false); } }
    var wantActive = saved.active && app.rooms[saved.active] ? saved.active : app.order[0];
    c.start();
    selectRoom(wantActive || null);
    $('input').focus();
  }

  // showMe puts the user's name (and id, for others to message) in the
  // header and the rename form.
  function showMe() {
    setText($('me'), app.name || '');
    $('me').title = 'Your id: ' + app.user + ' (click to change your name)';
    setText($('my-id'), app.user || '');
  }

  function signOut(message) {
    if (app.client) { app.client.destroy(); app.client = null; }
    releaseBlobs();
    stopEditing();
    pollPresence(false);
    if (app.tickTimer) { clearTimeout(app.tickTimer); app.tickTimer = null; }
    if (app.source && app.source.forget) { app.source.forget(); }
    app.source = null;
    try { if (storage) { storage.removeItem(SESSION); } } catch (e) { /* ignore */ }
    app.rooms = {};
    app.order = [];
    app.active = null;
    renderRooms();
    app.list.set([], true);
    showLogin(message);
  }

  // ---- the page's own events ----

  function wirePage() {
    app.list = new WindowedList($('scroller'), $('messages'), {
      max: 150,
      step: 50,
      // Ids are unique within a room (the server's idempotency key).
      key: function (item) { return item.room + '\n' + (item.sep ? 'day ' + item.day : item.id); },
      render: renderItem,
      update: updateItem,
      onTop: loadOlder,
      onScroll: maybeMarkRead
    });

    on($('login-form'), 'submit', function (ev) {
      ev.preventDefault();
      var name = $('login-name').value.replace(/^\s+|\s+$/g, '');
      var token = $('login-token').value.replace(/\s+/g, '');
      if (token) { signIn({ token: token }); return; }
      if (!name || name.length > 64 || BAD_NAME_RE.test(name)) {
        setText($('login-error'), 'Use 1 to 64 characters, without control characters.');
        return;
      }
      signIn({ name: name });
    });

    on($('logout'), 'click', function () { signOut(''); });

    on($('menu'), 'click', function () {
      var open = doc.body.className.indexOf('side-open') < 0;
      toggleClass(doc.body, 'side-open', open);
      $('menu').setAttribute('aria-expanded', open ? 'true' : 'false');
    });
    on($('scrim'), 'click', function () { toggleClass(doc.body, 'side-open', false); });

    on($('join-form'), 'submit', function (ev) {
      ev.preventDefault();
      var input = $('join-name');
      var name = input.value.replace(/^[\s#]+|\s+$/g, '');
      if (!ROOM_RE.test(name) || name.indexOf('dm:') === 0) {
        if (input.setCustomValidity) { input.setCustomValidity('No spaces, commas or asterisks; up to 128 characters.'); }
        if (input.reportValidity) { input.reportValidity(); }
        return;
      }
      if (input.setCustomValidity) { input.setCustomValidity(''); }
      input.value = '';
      addRoom(name, true);
      selectRoom(name);
    });
    on($('join-name'), 'input', function () { if (this.setCustomValidity) { this.setCustomValidity(''); } });

    on($('dm-form'), 'submit', function (ev) {
      ev.preventDefault();
      var input = $('dm-name');
      var peer = input.value.replace(/^[\s@]+|\s+$/g, '').toLowerCase();
      if (!USER_RE.test(peer) || !app.user) { return; }
      input.value = '';
      var name = ChatClient.dmRoom(app.user, peer);
      addRoom(name, true);
      selectRoom(name);
    });

    function roomClick(ev) {
      var t = ev.target;
      while (t && t !== this && !t.getAttribute('data-action')) { t = t.parentNode; }
      if (!t || t === this) { return; }
      var li = t;
      while (li && li.tagName !== 'LI') { li = li.parentNode; }
      if (!li) { return; }
      var name = li.getAttribute('data-room');
      if (t.getAttribute('data-action') === 'leave') { removeRoom(name, true); } else { selectRoom(name); }
    }
    on($('rooms'), 'click', roomClick);
    on($('dms'), 'click', roomClick);

    on($('messages'), 'click', function (ev) {
      var t = ev.target;
      // The click may land inside the button (a thumbnail's image).
      while (t && t !== this && !(t.getAttribute && t.getAttribute('data-action'))) { t = t.parentNode; }
      if (!t || t === this) { return; }
      var action = t.getAttribute('data-action');
      if (!action || !app.client) { return; }
      var li = t;
      while (li && li.tagName !== 'LI') { li = li.parentNode; }
      var id = li && li.getAttribute('data-id');
      if (action === 'retry') { app.client.retry(id); }
      if (action === 'discard') { app.client.discard(id); }
      var room = app.rooms[app.active];
      var seq = li ? parseInt(li.getAttribute('data-seq') || '', 10) : NaN;
      var msg = room && !isNaN(seq) ? room.bySeq[seq] : null;
      if (action === 'edit' && msg) { startEditing(room, msg); }
      if (action === 'delete' && msg) {
        // Two steps, in place: no dialog.
        t.setAttribute('data-action', 'confirm-delete');
        setText(t, 'Delete for everyone?');
      }
      if (action === 'confirm-delete' && msg) {
        setText(t, 'Deleting…');
        app.client.remove(room.name, msg.seq, function (err) {
          if (err) { setText(t, 'Not deleted: ' + (err.message || err.code)); t.setAttribute('data-action', 'delete'); }
        });
      }
      if (action === 'view-file') { viewFile(t.getAttribute('data-url'), t.getAttribute('data-name')); }
      if (action === 'download-file') { downloadFile(t.getAttribute('data-url'), t.getAttribute('data-name')); }
    });

    on($('presence'), 'click', function (ev) {
      var t = ev.target;
      if (!t.getAttribute || t.getAttribute('data-action') !== 'dm' || !app.user) { return; }
      var peer = t.parentNode.getAttribute('data-user');
      if (!peer || peer === app.user) { return; }
      var name = ChatClient.dmRoom(app.user, peer);
      addRoom(name, true);
      selectRoom(name);
    });

    on($('me'), 'click', function () {
      var f = $('name-form');
      f.hidden = !f.hidden;
      if (!f.hidden) { $('name-input').value = app.name || ''; $('name-input').focus(); }
    });
    on($('name-form'), 'submit', function (ev) {
      ev.preventDefault();
      var name = $('name-input').value.replace(/^\s+|\s+$/g, '');
      if (!name || name.length > 64 || BAD_NAME_RE.test(name) || !app.client) {
        setText($('name-error'), 'Use 1 to 64 characters, without control characters.');
        return;
      }
      setText($('name-error'), '');
      app.client.setName(name, function (err) {
        if (err) { setText($('name-error'), err.message || err.code); return; }
        $('name-form').hidden = true;
      });
    });
    on($('name-cancel'), 'click', function () { $('name-form').hidden = true; });

    on($('edit-cancel'), 'click', stopEditing);
    on($('file-input'), 'change', function () {
      var files = this.files;
      for (var i = 0; files && i < files.length; i++) { uploadFile(files[i]); }
      this.value = '';
    });
    on($('viewer'), 'click', function () { $('viewer').hidden = true; });

    var input = $('input');
    on($('composer'), 'submit', function (ev) {
      ev.preventDefault();
      sendInput();
    });
    on(input, 'keydown', function (ev) {
      if ((ev.key === 'Escape' || ev.keyCode === 27) && app.editing) { stopEditing(); return; }
      if ((ev.key === 'Enter' || ev.keyCode === 13) && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        sendInput();
      }
    });
    on(input, 'input', function () {
      grow(input);
      if (app.client && app.active && input.value && !app.editing) { app.client.typing(app.active); }
    });

    on(doc, 'visibilitychange', maybeMarkRead);
    on(root, 'focus', maybeMarkRead);
    on(root, 'resize', function () { if (app.list.follow) { app.list.scrollToBottom(); } });
  }

  function grow(ta) {
    ta.rows = Math.min(6, Math.max(1, ta.value.split('\n').length));
  }

  // ---- editing, files ----

  function startEditing(room, msg) {
    app.editing = { room: room.name, seq: msg.seq };
    var input = $('input');
    input.value = msg.text;
    grow(input);
    $('edit-bar').hidden = false;
    setText($('send'), 'Save');
    input.focus();
  }

  function stopEditing() {
    if (!app.editing) { return; }
    app.editing = null;
    $('edit-bar').hidden = true;
    setText($('send'), 'Send');
    $('input').value = '';
    grow($('input'));
  }

  function uploadFile(file) {
    var room = app.active;
    if (!app.client || !room) { return; }
    var bar = el('div', 'upload');
    var label = el('span', 'upload-name', file.name || 'file');
    var prog = el('progress');
    prog.max = 1;
    prog.value = 0;
    bar.appendChild(label);
    bar.appendChild(prog);
    $('uploads').appendChild(bar);
    app.uploads++;
    app.client.upload(room, file, function (loaded, total) {
      prog.value = total ? loaded / total : 0;
    }, function (err, f) {
      app.uploads--;
      if (err) {
        bar.className = 'upload failed';
        prog.parentNode.removeChild(prog);
        var why = el('span', 'upload-error', err.code === 'too_large' ? 'too large' : (err.message || err.code));
        var x = el('button', '', 'Dismiss');
        x.type = 'button';
        on(x, 'click', function () { bar.parentNode.removeChild(bar); });
        bar.appendChild(why);
        bar.appendChild(x);
        return;
      }
      bar.parentNode.removeChild(bar);
      var input = $('input');
      var text = input.value.replace(/\s+/g, '') && !app.editing ? input.value : f.name;
      if (text === input.value) { input.value = ''; grow(input); }
      app.client.send(room, text, [f]);
      if (room === app.active) { app.list.follow = true; renderList(false); app.list.scrollToBottom(); }
    });
  }

  function viewFile(url, name) {
    if (!url || !app.client) { return; }
    blobURL(url, function (err, obj) {
      if (err) { downloadFile(url, name); return; }
      var img = $('viewer-img');
      img.alt = name || 'image';
      img.src = obj;
      $('viewer').hidden = false;
    });
  }

  // downloadFile saves a file through an object URL: the server sends it
  // as an attachment anyway, and nothing of it runs in the page.
  function downloadFile(url, name) {
    if (!url || !app.client) { return; }
    blobURL(url, function (err, obj) {
      if (err) { return; }
      var a = el('a');
      a.href = obj;
      a.setAttribute('download', name || 'file');
      a.rel = 'noopener noreferrer';
      doc.body.appendChild(a);
      a.click();
      doc.body.removeChild(a);
    });
  }

  function sendInput() {
    var input = $('input');
    var text = input.value;
    if (app.editing) {
      var ed = app.editing;
      if (!app.client || !text.replace(/\s+/g, '')) { return; }
      app.client.edit(ed.room, ed.seq, text, function (err) {
        if (err) { setText($('edit-note'), 'Not saved: ' + (err.message || err.code)); return; }
      });
      stopEditing();
      return;
    }
    if (!app.client || !app.active || !text.replace(/\s+/g, '')) { return; }
    app.client.send(app.active, text);
    input.value = '';
    grow(input);
    app.list.follow = true;
    renderList(false);
    app.list.scrollToBottom();
  }

  function boot() {
    if (!ChatClient || !WindowedList) { return; }
    wirePage();
    var sess = load(SESSION);
    if (sess && (sess.name || sess.token)) { signIn(sess); } else { showLogin(''); }
  }

  boot();
})(this);
