/*
 * chat-list.js: a windowed list for long message histories. ES5.
 *
 * The page may hold thousands of messages in memory, but the DOM holds at
 * most `max` message nodes: the window [start, end) over the items. Scrolling
 * near the top or the bottom slides the window by `step`; at the very top it
 * asks for older items (onTop). Nodes are keyed, so a re-draw reuses them
 * and only touches what changed, and the scroll position is kept on the
 * first visible node when the window slides.
 */
(function (root) {
  'use strict';

  var EDGE = 120; // px from the top or bottom that counts as "near"

  /**
   * WindowedList draws items into listEl, inside the scrolling scroller.
   * opts: max (150), step (50), key(item), render(item, prev) → Node,
   * update(node, item, prev), onTop(), onScroll().
   */
  function WindowedList(scroller, listEl, opts) {
    var self = this;
    this.scroller = scroller;
    this.el = listEl;
    this.max = opts.max || 150;
    this.step = opts.step || 50;
    this.key = opts.key;
    this.render = opts.render;
    this.update = opts.update;
    this.onTop = opts.onTop || function () {};
    this.onScrolled = opts.onScroll || function () {};
    this.items = [];
    this.start = 0;
    this.end = 0;
    this.nodes = {};     // key → node in the window
    this.follow = true;  // pinned to the newest item
    this.drawing = false;
    scroller.addEventListener('scroll', function () { self._onScroll(); }, false);
  }

  // set gives the list its items, sorted. Items whose key is already drawn
  // keep their node. With reset the window jumps to the newest items.
  WindowedList.prototype.set = function (items, reset) {
    var anchorKey = null;
    if (!reset && this.start < this.end && this.items[this.start]) { anchorKey = this.key(this.items[this.start]); }
    if (reset) { this.follow = true; }
    this.items = items;
    var n = items.length;
    if (this.follow || anchorKey === null) {
      this.end = n;
      this.start = Math.max(0, n - this.max);
    } else {
      var i = this.indexOf(anchorKey);
      this.start = i < 0 ? Math.max(0, Math.min(this.start, n - this.max)) : i;
      this.end = Math.min(n, this.start + this.max);
    }
    this._draw(this.follow);
    if (!this.follow) { this._edgeCheckSoon(); }
  };

  // redraw re-renders the window's nodes whose item changed.
  WindowedList.prototype.redraw = function () { this._draw(this.follow && this.atBottom()); };

  WindowedList.prototype.indexOf = function (key) {
    for (var i = this.items.length - 1; i >= 0; i--) {
      if (this.key(this.items[i]) === key) { return i; }
    }
    return -1;
  };

  WindowedList.prototype.atBottom = function () {
    var s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  };

  // showingLatest: the newest item is drawn and scrolled into view.
  WindowedList.prototype.showingLatest = function () {
    return this.end === this.items.length && this.atBottom();
  };

  WindowedList.prototype.scrollToBottom = function () {
    this.follow = true;
    if (this.end !== this.items.length) {
      this.end = this.items.length;
      this.start = Math.max(0, this.end - this.max);
      this._draw(true);
    } else {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    }
  };

  WindowedList.prototype._onScroll = function () {
    if (this.drawing) { return; }
    this.follow = this.end === this.items.length && this.atBottom();
    this._edgeCheck();
    this.onScrolled();
  };

  WindowedList.prototype._edgeCheckSoon = function () {
    var self = this;
    if (this._edgeTimer) { return; }
    this._edgeTimer = setTimeout(function () { self._edgeTimer = null; self._edgeCheck(); }, 0);
  };

  // _edgeCheck slides the window when the view is near one of its ends.
  WindowedList.prototype._edgeCheck = function () {
    var s = this.scroller;
    var n = this.items.length;
    if (s.scrollTop < EDGE) {
      if (this.start > 0) {
        this.start = Math.max(0, this.start - this.step);
        this.end = Math.min(n, this.start + this.max);
        this.follow = false;
        this._draw(false);
        this._edgeCheckSoon();
      } else {
        this.onTop();
      }
    } else if (s.scrollHeight - s.scrollTop - s.clientHeight < EDGE && this.end < n) {
      this.end = Math.min(n, this.end + this.step);
      this.start = Math.max(0, this.end - this.max);
      this._draw(false);
    }
  };

  // _firstVisible finds the first drawn node in view and its offset from
  // the top of the view, to keep it still across a re-draw.
  WindowedList.prototype._firstVisible = function () {
    var top = this.scroller.scrollTop;
    for (var n = this.el.firstChild; n; n = n.nextSibling) {
      if (n.nodeType === 1 && n.offsetTop + n.offsetHeight > top) {
        return { node: n, delta: n.offsetTop - top };
      }
    }
    return null;
  };

  WindowedList.prototype._draw = function (toBottom) {
    this.drawing = true;
    var anchor = toBottom ? null : this._firstVisible();
    var keep = {};
    var cursor = this.el.firstChild;
    for (var i = this.start; i < this.end; i++) {
      var item = this.items[i];
      var prev = i > 0 ? this.items[i - 1] : null;
      var k = this.key(item);
      keep[k] = true;
      var node = this.nodes[k];
      if (!node) {
        node = this.render(item, prev);
        this.nodes[k] = node;
      } else {
        this.update(node, item, prev);
      }
      if (node === cursor) {
        cursor = cursor.nextSibling;
      } else {
        this.el.insertBefore(node, cursor);
      }
    }
    for (var key in this.nodes) {
      if (Object.prototype.hasOwnProperty.call(this.nodes, key) && !keep[key]) {
        var old = this.nodes[key];
        if (old.parentNode === this.el) { this.el.removeChild(old); }
        delete this.nodes[key];
      }
    }
    if (toBottom) {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    } else if (anchor && anchor.node.parentNode === this.el) {
      this.scroller.scrollTop = anchor.node.offsetTop - anchor.delta;
    }
    this.drawing = false;
  };

  root.WindowedList = WindowedList;
})(this);
