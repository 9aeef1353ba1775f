/*
 * ops-chart.js: OpsChart, the line charts of the ops page, drawn on a
 * <canvas> with no library. ES5.
 *
 *   var chart = new OpsChart(canvas, [{key: 'websocket', color: '#3b63d9'}], {floor: 4});
 *   chart.draw([{t: ms, v: {websocket: 3}}, {t: ms}, ...]);   // {t} alone is a gap
 *
 * The chart sizes itself to the canvas's CSS box and the screen's pixel
 * ratio on every draw, so it stays sharp on phones and after a resize.
 */
(function (root) {
  'use strict';

  var PAD = { left: 40, right: 10, top: 10, bottom: 22 };

  function now() { return new Date().getTime(); }

  // niceStep is the step between the chart's four grid lines, so that
  // they reach at least top: 1, 2, 2.5 or 5 times a power of ten, and a
  // whole number when integer (a count has no quarter connections).
  function niceStep(top, integer) {
    var raw = top > 0 ? top / 4 : 0.25;
    var p = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10));
    var steps = integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
    var step = 10 * p;
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * p >= raw * (1 - 1e-9)) { step = steps[i] * p; break; }
    }
    return integer ? Math.max(1, Math.round(step)) : step;
  }

  // label prints a grid value without float noise or trailing zeros.
  function label(v) { return String(Math.round(v * 1000) / 1000); }

  // ago says how far back the left edge is: 40 s, 5 min.
  function ago(ms) {
    var s = Math.round(ms / 1000);
    return s < 120 ? s + ' s' : Math.round(s / 60) + ' min';
  }

  /**
   * OpsChart draws lines over time on canvas.
   *
   * series: [{key, color, width (2)}], drawn so that the first is on top.
   * opts: floor (1): the least top of the y axis; integer (false): the
   * values are counts, so grid lines fall on whole numbers; windowMs
   * (5 min): the most time shown.
   * marker: null or {value, color}, a dashed level such as a threshold,
   * drawn when it is within the y axis.
   */
  function OpsChart(canvas, series, opts) {
    this.canvas = canvas;
    this.series = series;
    this.opts = opts || {};
    this.marker = null;
  }

  // draw plots samples, oldest first: [{t, v: {key: number}}]. A sample
  // without v is a gap (a failed poll) that breaks every line. The x axis
  // spans the samples held, up to windowMs, so a fresh chart is filled.
  OpsChart.prototype.draw = function (samples) {
    var c = this.canvas;
    var ctx = c.getContext && c.getContext('2d');
    if (!ctx) { return; }
    var ratio = root.devicePixelRatio || 1;
    var w = c.clientWidth || 300;
    var h = c.clientHeight || 150;
    if (c.width !== Math.round(w * ratio) || c.height !== Math.round(h * ratio)) {
      c.width = Math.round(w * ratio);
      c.height = Math.round(h * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var box = { x0: PAD.left, x1: w - PAD.right, y0: h - PAD.bottom, y1: PAD.top };
    var last = samples.length ? samples[samples.length - 1].t : now();
    var first = samples.length ? Math.max(samples[0].t, last - (this.opts.windowMs || 300000)) : last;
    var scale = {
      first: first,
      last: last,
      width: Math.max(last - first, 10000),
      top: 4 * niceStep(this._highest(samples, first), !!this.opts.integer)
    };
    this._grid(ctx, box, scale);
    var drawn = 0;
    for (var j = this.series.length - 1; j >= 0; j--) { drawn += this._line(ctx, box, scale, samples, this.series[j]); }
    c.setAttribute('data-points', String(drawn));
    c.setAttribute('data-max', String(scale.top));
  };

  OpsChart.prototype._highest = function (samples, first) {
    var top = this.opts.floor || 1;
    for (var i = 0; i < samples.length; i++) {
      if (!samples[i].v || samples[i].t < first) { continue; }
      for (var j = 0; j < this.series.length; j++) {
        var v = samples[i].v[this.series[j].key];
        if (typeof v === 'number' && v > top) { top = v; }
      }
    }
    return top;
  };

  function xAt(box, scale, t) { return box.x1 - (scale.last - t) / scale.width * (box.x1 - box.x0); }

  function yAt(box, scale, v) { return box.y0 - Math.min(v, scale.top) / scale.top * (box.y0 - box.y1); }

  // _grid draws the four grid lines with their values, the time span, and
  // the marker.
  OpsChart.prototype._grid = function (ctx, box, scale) {
    ctx.lineWidth = 1;
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillStyle = '#6b7385';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (var i = 0; i <= 4; i++) {
      var v = scale.top * i / 4;
      var y = Math.round(yAt(box, scale, v)) + 0.5;
      ctx.strokeStyle = i === 0 ? '#b8bfcc' : '#e6e9ef';
      ctx.beginPath();
      ctx.moveTo(box.x0, y);
      ctx.lineTo(box.x1, y);
      ctx.stroke();
      ctx.fillText(label(v), box.x0 - 5, y);
    }
    ctx.textBaseline = 'top';
    ctx.fillText('now', box.x1, box.y0 + 5);
    ctx.textAlign = 'left';
    ctx.fillText('\u2212' + ago(scale.last - scale.first), box.x0, box.y0 + 5);
    var m = this.marker;
    if (m && m.value <= scale.top) {
      var my = Math.round(yAt(box, scale, m.value)) + 0.5;
      ctx.strokeStyle = m.color;
      if (ctx.setLineDash) { ctx.setLineDash([5, 4]); }
      ctx.beginPath();
      ctx.moveTo(box.x0, my);
      ctx.lineTo(box.x1, my);
      ctx.stroke();
      if (ctx.setLineDash) { ctx.setLineDash([]); }
    }
  };

  // _line draws one series and returns how many points it has. A point
  // with no neighbour on either side (between gaps) is drawn as a dot.
  OpsChart.prototype._line = function (ctx, box, scale, samples, s) {
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    ctx.lineWidth = s.width || 2;
    ctx.lineJoin = 'round';
    ctx.lineCap = 'round';
    ctx.beginPath();
    var pen = false;
    var alone = null;
    var n = 0;
    function dot() {
      if (alone) { ctx.fillRect(alone.x - 1.5, alone.y - 1.5, 3, 3); }
      alone = null;
    }
    for (var i = 0; i < samples.length; i++) {
      var p = samples[i];
      var v = p.v ? p.v[s.key] : undefined;
      if (p.t < scale.first || typeof v !== 'number') {
        dot();
        pen = false;
        continue;
      }
      var x = xAt(box, scale, p.t);
      var y = yAt(box, scale, v);
      if (pen) {
        ctx.lineTo(x, y);
        alone = null;
      } else {
        ctx.moveTo(x, y);
        alone = { x: x, y: y };
      }
      pen = true;
      n++;
    }
    dot();
    ctx.stroke();
    return n;
  };

  OpsChart.niceStep = niceStep;
  root.OpsChart = OpsChart;
})(this);
