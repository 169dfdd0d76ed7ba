// The parallel-coordinates plot: one axis per parameter and the metric last, one line per run.
// Lines go on a canvas (10,000 runs draw in a few milliseconds), axes and brushes on an SVG above it.
// Dragging along an axis brushes a range; a click on an axis clears its brush. `onBrush` is told.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const M = { top: 28, bottom: 26, left: 48, right: 70 };
  // viridis, sampled: the best runs are yellow, the worst purple.
  const RAMP = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "number") return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
    return String(Math.round(v * 1e4) / 1e4);
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  // An axis's scale: a value to a position in [0, 1] (0 at the bottom), or null for no value.
  function scale(axis, values) {
    const present = values.filter((v) => v !== null && v !== undefined);
    const numeric = present.length > 0 && present.every((v) => typeof v === "number");
    if (numeric) {
      let lo = Infinity, hi = -Infinity;
      for (const v of present) { if (v < lo) lo = v; if (v > hi) hi = v; }
      // A parameter drawn on a log scale (a learning rate) is shown on one, when its values allow.
      const log = Boolean(axis.log) && lo > 0;
      const f = log ? Math.log10 : (v) => v, back = log ? (v) => 10 ** v : (v) => v;
      const a = f(lo), b = f(hi);
      axis.kind = log ? "log" : "number"; axis.lo = lo; axis.hi = hi;
      axis.pos = (v) => (typeof v !== "number" || (log && v <= 0) ? null : hi === lo ? 0.5 : (f(v) - a) / (b - a));
      axis.ticks = hi === lo ? [[0.5, fmt(lo)]] : [0, 0.25, 0.5, 0.75, 1].map((p) => [p, fmt(back(a + p * (b - a)))]);
    } else {
      const levels = [...new Set(present.map(String))].sort();
      const at = new Map(levels.map((l, i) => [l, levels.length === 1 ? 0.5 : i / (levels.length - 1)]));
      axis.kind = "category";
      axis.pos = (v) => (v === null || v === undefined ? null : at.get(String(v)) ?? null);
      const step = Math.max(1, Math.ceil(levels.length / 12));
      axis.ticks = levels.filter((_, i) => i % step === 0).map((l) => [at.get(l), l]);
    }
  }

  class ParallelPlot {
    constructor(host, onBrush) {
      this.host = host;
      this.onBrush = onBrush;
      this.canvas = document.createElement("canvas");
      this.svg = el("svg", {});
      host.append(this.canvas, this.svg);
      this.axes = [];
      this.rows = [];
      this.brushes = new Map(); // axis name -> [lo, hi] positions
      this.frame = 0;
      window.addEventListener("resize", () => this.draw());
    }

    // axes: [{name, get(row), log, better: "minimize"|"maximize"|undefined}]; the last one colours the lines.
    setData(axes, rows) {
      this.axes = axes;
      this.rows = rows;
      for (const a of axes) scale(a, rows.map(a.get));
      for (const name of [...this.brushes.keys()]) if (!axes.some((a) => a.name === name)) this.brushes.delete(name);
      this.draw();
    }

    passes(row) {
      for (const [name, [lo, hi]] of this.brushes) {
        const axis = this.axes.find((a) => a.name === name);
        const p = axis ? axis.pos(axis.get(row)) : null;
        if (p === null || p < lo - 1e-9 || p > hi + 1e-9) return false;
      }
      return true;
    }

    clear() { this.brushes.clear(); this.draw(); this.onBrush(); }

    geometry() {
      const w = Math.max(300, this.host.clientWidth), h = Math.max(200, this.host.clientHeight);
      const n = this.axes.length;
      const xs = this.axes.map((_, i) => (n === 1 ? w / 2 : M.left + (i * (w - M.left - M.right)) / (n - 1)));
      const y = (p) => M.top + (1 - p) * (h - M.top - M.bottom);
      return { w, h, xs, y };
    }

    draw() {
      cancelAnimationFrame(this.frame);
      this.frame = requestAnimationFrame(() => this.paint());
    }

    paint() {
      const g = this.geometry();
      const ratio = window.devicePixelRatio || 1;
      this.canvas.width = g.w * ratio; this.canvas.height = g.h * ratio;
      this.canvas.style.width = g.w + "px"; this.canvas.style.height = g.h + "px";
      this.svg.setAttribute("width", g.w); this.svg.setAttribute("height", g.h);
      const ctx = this.canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, g.w, g.h);
      const colour = this.axes[this.axes.length - 1];
      const buckets = RAMP.map(() => []), faded = [], grey = [];
      for (const row of this.rows) {
        if (!this.passes(row)) { faded.push(row); continue; }
        const p = colour ? colour.pos(colour.get(row)) : null;
        if (p === null) { grey.push(row); continue; }
        const t = colour.better === "maximize" ? p : 1 - p;
        buckets[Math.min(RAMP.length - 1, Math.floor(t * RAMP.length))].push(row);
      }
      const stroke = (rows, style, alpha) => {
        if (!rows.length) return;
        ctx.strokeStyle = style; ctx.globalAlpha = alpha; ctx.lineWidth = 1;
        ctx.beginPath();
        for (const row of rows) {
          let pen = false;
          this.axes.forEach((a, i) => {
            const p = a.pos(a.get(row));
            if (p === null) { pen = false; return; }
            if (pen) ctx.lineTo(g.xs[i], g.y(p)); else ctx.moveTo(g.xs[i], g.y(p));
            pen = true;
          });
        }
        ctx.stroke();
      };
      const dense = this.rows.length > 2000 ? 0.25 : 0.7;
      stroke(faded, "#c8ccd4", 0.25);
      stroke(grey, "#8a8f99", dense);
      buckets.forEach((rows, i) => stroke(rows, RAMP[i], dense));
      ctx.globalAlpha = 1;
      this.host.dataset.lines = String(this.rows.length - faded.length);
      this.paintAxes(g);
    }

    paintAxes(g) {
      this.svg.replaceChildren();
      this.axes.forEach((axis, i) => {
        const x = g.xs[i];
        const group = el("g", { class: "axis", "data-name": axis.name }, this.svg);
        el("line", { x1: x, x2: x, y1: g.y(1), y2: g.y(0) }, group);
        const label = el("text", { x, y: 14, "text-anchor": "middle", "font-weight": "600" }, group);
        label.textContent = axis.name.length > 22 ? axis.name.slice(0, 21) + "\u2026" : axis.name;
        for (const [p, text] of axis.ticks) {
          el("line", { x1: x - 3, x2: x, y1: g.y(p), y2: g.y(p) }, group);
          const t = el("text", { x: x + 4, y: g.y(p) + 4 }, group);
          t.textContent = text.length > 14 ? text.slice(0, 13) + "\u2026" : text;
        }
        const brush = this.brushes.get(axis.name);
        if (brush) el("rect", { class: "brush", x: x - 7, width: 14, y: g.y(brush[1]), height: g.y(brush[0]) - g.y(brush[1]) }, group);
        const hit = el("rect", { class: "hit", x: x - 14, width: 28, y: g.y(1) - 4, height: g.y(0) - g.y(1) + 8 }, group);
        hit.addEventListener("mousedown", (e) => this.drag(e, axis, g));
      });
    }

    drag(event, axis, g) {
      event.preventDefault();
      const top = this.svg.getBoundingClientRect().top;
      const toP = (clientY) => Math.max(0, Math.min(1, 1 - (clientY - top - M.top) / (g.h - M.top - M.bottom)));
      const start = event.clientY;
      const move = (e) => {
        if (Math.abs(e.clientY - start) < 3) return;
        const a = toP(start), b = toP(e.clientY);
        this.brushes.set(axis.name, [Math.min(a, b), Math.max(a, b)]);
        this.draw();
        this.onBrush();
      };
      const up = (e) => {
        window.removeEventListener("mousemove", move);
        window.removeEventListener("mouseup", up);
        if (Math.abs(e.clientY - start) < 3) { this.brushes.delete(axis.name); this.draw(); this.onBrush(); }
        else move(e);
      };
      window.addEventListener("mousemove", move);
      window.addEventListener("mouseup", up);
    }
  }

  window.ParallelPlot = ParallelPlot;
  window.fmtValue = fmt;
})();
