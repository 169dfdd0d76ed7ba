// sweepd's dashboard: the pools and the sweep list at "/", a sweep's page at "/sweeps/<id>". Read-only: every
// figure comes from the server's JSON; the server's live channel (server-sent events) says when
// the snapshot changed, and the page fetches it again, keeping its sort, filter, brushes and selection.
"use strict";

(function () {
  const $ = (sel) => document.querySelector(sel);
  const fmt = window.fmtValue;
  const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
  const ROW = 24; // px: every table row's height, so the table draws only the rows in view

  function problem(text) { const p = $("#problem"); p.hidden = !text; p.textContent = text || ""; }

  async function getJSON(url) {
    const res = await fetch(url, { credentials: "same-origin" });
    if (!res.ok) { let m = res.statusText; try { m = (await res.json()).error || m; } catch (_) {} throw new Error(`${res.status}: ${m}`); }
    return res.json();
  }

  // The live channel: `onChange` on every new snapshot version (the first at once).
  function live(url, onChange) {
    const badge = $("#live"), text = $("#live-text");
    const source = new EventSource(url);
    source.addEventListener("change", () => { badge.classList.add("on"); text.textContent = "live"; onChange(); });
    source.addEventListener("problem", (e) => { const d = JSON.parse(e.data); problem(d.error ? "reading Redis failed: " + d.error : ""); });
    source.onerror = () => { badge.classList.remove("on"); text.textContent = "reconnecting"; };
    return source;
  }

  function lineage(chain) {  // PBT: the best run and its ancestors, newest first
    if (!chain || !chain.length) return "";
    return `<div>lineage</div><div>${chain.map((r) => `${esc(r.id)} <span class="muted">(member ${esc(r.member)}, gen ${esc(r.generation)})</span>`).join(" &larr; ")}</div>`;
  }

  function chips(counts) {
    return Object.entries(counts || {}).filter(([, n]) => n).map(([s, n]) => `<span class="state ${esc(s)}">${esc(s)} ${n}</span>`).join(" ");
  }

  // The best run: on a sweep's page a link that draws its curves, on the list a link to its sweep.
  function best(b, sid) {
    if (!b) return "<span class=muted>none yet</span>";
    const link = sid ? `href="/sweeps/${esc(sid)}"` : `href="#" data-run="${esc(b.id)}"`;
    return `<a ${link}>${esc(b.id)}</a> ${esc(b.metric)}=${esc(fmt(b.value))}`;
  }

  // The sweep list --------------------------------------------------------------------------------

  async function sweepList() {
    $("#crumb").textContent = "sweeps";
    $("#app").innerHTML = `<section class="card w12 list" id="pools-card" hidden><h2>Pools <span class="aside">demand: queued + held + what the searches can still create</span></h2>
      <table id="pools"><thead><tr><th>pool</th><th class=num>agents</th><th class=num>held</th><th class=num>queued</th><th class=num>demand</th>
      <th>sweeps (priority, weight: held)</th></tr></thead><tbody></tbody></table></section>
      <section class="card w12 list"><h2>Sweeps <span class="aside" id="nsweeps"></span></h2>
      <table id="sweeps"><thead><tr><th>id</th><th>name</th><th>method</th><th>state</th><th class=num>runs</th>
      <th>by state</th><th>best run</th><th class=num>agents alive</th><th>created</th></tr></thead><tbody></tbody></table></section>`;
    const draw = async () => {
      const [{ sweeps }, { pools }] = await Promise.all([getJSON("/api/sweeps"), getJSON("/api/pools")]);
      $("#pools-card").hidden = !pools.length;
      $("#pools tbody").innerHTML = pools.map((p) => `<tr data-pool="${esc(p.pool)}"><td>${esc(p.pool)}</td><td class=num>${p.agents}</td>
        <td class=num>${p.held}</td><td class=num>${p.queued}</td><td class=num>${p.demand}</td>
        <td>${p.sweeps.map((w) => `<a href="/sweeps/${esc(w.sweep_id)}">${esc(w.sweep_id)}</a> (${w.priority}, ${w.weight}: ${w.held})`).join(", ")}</td></tr>`).join("");
      $("#nsweeps").textContent = `${sweeps.length} sweep(s)`;
      $("#sweeps tbody").innerHTML = sweeps.map((s) => `<tr data-id="${esc(s.id)}"><td><a href="/sweeps/${esc(s.id)}">${esc(s.id)}</a></td>
        <td>${esc(s.name)}</td><td>${esc(s.method)}</td><td><span class="state">${esc(s.state)}</span></td><td class=num>${s.runs}</td>
        <td>${chips(s.counts)}</td><td>${best(s.best_run, s.id)}</td><td class=num>${s.agents_alive}</td><td>${esc(when(s.created_at))}</td></tr>`).join("");
    };
    await draw().catch((e) => problem(e.message));
    live("/api/live", () => draw().then(() => problem(""), (e) => problem(e.message)));
  }

  // A sweep's page --------------------------------------------------------------------------------

  function layout(sid) {
    $("#crumb").innerHTML = `<a href="/">sweeps</a> / ${esc(sid)}`;
    $("#app").innerHTML = `
      <section class="card w12" id="summary"></section>
      <section class="card w12"><h2>Parallel coordinates <span class="aside"><span id="pc-note"></span>
        <button id="pc-clear">clear brushes</button></span></h2><div id="pc"></div></section>
      <section class="card w12"><h2>Runs <span class="aside" id="runcount"></span></h2>
        <div class="controls"><input type="search" id="filter" placeholder="filter: id, state, host, value">
        <select id="state-filter"><option value="">every state</option></select>
        <span class="muted">click a row to add its curves; drag along an axis above to brush</span></div>
        <div class="tablewrap" id="tablewrap"><table id="runs"><thead></thead><tbody></tbody></table></div></section>
      <section class="card w6"><h2>Metric over runs <span class="aside">dots: runs, line: best so far</span></h2><div id="metric-chart"></div></section>
      <section class="card w6"><h2>Run curves <span class="aside"><select id="curve-metric"></select></span></h2><div id="curves"></div>
        <div class="muted" id="curves-note"></div></section>
      <section class="card w4"><h2>Parameter importance <span class="aside" id="imp-note"></span></h2>
        <table id="importance"><thead><tr><th>parameter</th><th>importance</th><th>correlation</th></tr></thead><tbody></tbody></table></section>
      <section class="card w4"><h2>Queue</h2><div id="queue"></div></section>
      <section class="card w4"><h2>Agents</h2><div class="scroll"><table id="agents"><thead><tr><th>agent</th><th>host</th><th>runs</th><th>heartbeat</th></tr></thead><tbody></tbody></table></div></section>
      <section class="card w12"><h2>Recent preemptions and recoveries</h2><div class="scroll"><table id="events"><thead><tr>
        <th>when</th><th>run</th><th>event</th><th>attempt</th><th>detail</th></tr></thead><tbody></tbody></table></div></section>`;
  }

  class SweepPage {
    constructor(sid) {
      this.sid = sid;
      this.snap = null;
      this.sort = { key: "created", dir: 1 };
      this.selected = new Set();
      this.histories = new Map();
      this.shown = [];
      layout(sid);
      this.pc = new ParallelPlot($("#pc"), () => this.refilter());
      $("#pc-clear").onclick = () => this.pc.clear();
      $("#filter").oninput = () => this.refilter();
      $("#state-filter").onchange = () => this.refilter();
      $("#tablewrap").onscroll = () => this.drawRows();
      $("#curve-metric").onchange = () => this.drawCurves();
      $("#runs tbody").onclick = (e) => { const tr = e.target.closest("tr[data-id]"); if (tr) this.toggle(tr.dataset.id); };
      $("#app").addEventListener("click", (e) => { const a = e.target.closest("a[data-run]"); if (a) { e.preventDefault(); this.toggle(a.dataset.run, true); } });
    }

    async load() {
      const snap = await getJSON(`/api/sweeps/${this.sid}`);
      const first = !this.snap;
      const scored = (s) => s.runs.filter((r) => r[this.F.value] !== null).length;
      const before = this.snap ? scored(this.snap) : -1;
      this.snap = snap;
      if (first && snap.status.best_run) this.selected.add(snap.status.best_run.id);
      this.drawSummary();
      this.columns();
      this.pc.setData(this.axes(), snap.runs);
      this.refilter();
      this.drawMetric();
      this.drawSide();
      if (scored(snap) !== before) this.drawImportance();
      await this.fetchCurves();
    }

    get F() { const f = {}; (this.snap ? this.snap.fields : []).forEach((n, i) => (f[n] = i)); return f; }

    metricName() { return this.snap.status.metric ? this.snap.status.metric.name : "metric"; }

    axes() {
      const F = this.F, m = this.snap.status.metric;
      const logs = new Set(this.snap.log_params || []);
      const axes = this.snap.params.map((name, j) => ({ name, get: (r) => r[F.params][j], log: logs.has(name) }));
      axes.push({ name: this.metricName(), get: (r) => r[F.value], better: m ? m.goal : undefined });
      return axes;
    }

    columns() {
      const F = this.F;
      this.cols = [
        { key: "id", title: "run", get: (r) => r[F.id] },
        { key: "state", title: "state", get: (r) => r[F.state], html: (v) => `<span class="state ${esc(v)}">${esc(v)}</span>` },
        { key: "value", title: this.metricName(), get: (r) => r[F.value], num: true },
        ...this.snap.params.map((name, j) => ({ key: "p:" + name, title: name, get: (r) => r[F.params][j], num: true })),
        { key: "attempt", title: "attempts", get: (r) => r[F.attempt], num: true },
        { key: "requeues", title: "requeues", get: (r) => r[F.requeues], num: true },
        { key: "host", title: "host", get: (r) => r[F.host] },
        ...(this.snap.runs.some((r) => r[F.rung] !== null && r[F.rung] !== undefined)
          ? [{ key: "rung", title: "rung", get: (r) => r[F.rung], num: true }] : []),
      ];
      $("#runs thead").innerHTML = "<tr>" + this.cols.map((c) => {
        const cls = [c.num ? "num" : "", this.sort.key === c.key ? (this.sort.dir > 0 ? "sorted-asc" : "sorted-desc") : ""].join(" ");
        return `<th data-key="${esc(c.key)}" class="${cls}">${esc(c.title)}</th>`;
      }).join("") + "</tr>";
      $("#runs thead").onclick = (e) => {
        const th = e.target.closest("th[data-key]");
        if (!th) return;
        this.sort = { key: th.dataset.key, dir: this.sort.key === th.dataset.key ? -this.sort.dir : 1 };
        this.columns();
        this.refilter();
      };
      const states = Object.keys(this.snap.status.counts || {});
      const sel = $("#state-filter"), keep = sel.value;
      sel.innerHTML = `<option value="">every state</option>` + states.map((s) => `<option>${esc(s)}</option>`).join("");
      sel.value = keep;
    }

    refilter() {
      if (!this.snap) return;
      const F = this.F, text = $("#filter").value.trim().toLowerCase(), state = $("#state-filter").value;
      let rows = this.snap.runs.filter((r) => (!state || r[F.state] === state) && this.pc.passes(r));
      if (text) rows = rows.filter((r) => [r[F.id], r[F.state], r[F.host], fmt(r[F.value]), ...r[F.params].map(fmt)].some((v) => String(v ?? "").toLowerCase().includes(text)));
      const col = this.cols.find((c) => c.key === this.sort.key);
      if (col) {
        const dir = this.sort.dir;
        const rank = (v) => (v === null || v === undefined ? null : typeof v === "number" ? v : String(v));
        rows = rows.map((r, i) => [rank(col.get(r)), i, r]).sort((a, b) => {
          if (a[0] === null || b[0] === null) return a[0] === b[0] ? a[1] - b[1] : a[0] === null ? 1 : -1;
          if (typeof a[0] !== typeof b[0]) return (typeof a[0] === "number" ? -1 : 1) * dir;
          return (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]) * dir;
        }).map((x) => x[2]);
      }
      this.shown = rows;
      $("#runcount").textContent = `${rows.length} of ${this.snap.runs.length} runs`;
      $("#pc-note").textContent = this.pc.brushes.size ? `${this.pc.brushes.size} brush(es)` : "";
      this.drawRows();
    }

    drawRows() {
      const wrap = $("#tablewrap"), F = this.F;
      const first = Math.max(0, Math.floor(wrap.scrollTop / ROW) - 10);
      const last = Math.min(this.shown.length, first + Math.ceil(wrap.clientHeight / ROW) + 20);
      const width = this.cols.length;
      const pad = (n) => (n > 0 ? `<tr class="pad" style="height:${n * ROW}px"><td colspan="${width}"></td></tr>` : "");
      const body = this.shown.slice(first, last).map((r) => `<tr data-id="${esc(r[F.id])}" class="${this.selected.has(r[F.id]) ? "sel" : ""}">` +
        this.cols.map((c) => { const v = c.get(r); return `<td class="${c.num && typeof v === "number" ? "num" : ""}">${c.html ? c.html(v) : esc(fmt(v))}</td>`; }).join("") + "</tr>");
      $("#runs tbody").innerHTML = pad(first) + body.join("") + pad(this.shown.length - last);
    }

    drawSummary() {
      const s = this.snap.status, p = s.progress || {};
      const total = p.total ? ` of ${p.total}` : "";
      const eta = p.eta_seconds ? `, ETA ${Math.round(p.eta_seconds)} s` : "";
      $("#summary").innerHTML = `<h2>${esc(s.name || s.id)} <span class="muted">${esc(s.id)}</span>
        <span class="aside">${esc(s.method)} &middot; ${esc(s.state)}${s.complete ? " (complete)" : ""}</span></h2>
        <div class="chips">${chips(s.counts)}</div>
        <div class="kv"><div>progress</div><div>${p.done ?? 0}${total} runs done${eta}</div>
        <div>best run</div><div>${best(s.best_run)}</div><div>agents alive</div><div>${s.agents_alive}</div>
        <div>queue</div><div>${s.queue_depth} queued${s.queue_head ? `, head ${esc(s.queue_head)}` : ""}</div>${lineage(s.lineage)}</div>`;
    }

    drawSide() {
      const s = this.snap.status;
      const next = (s.queue_next || []).map((q) => `<tr><td>${esc(q.id)}</td><td class=num>${q.attempt}</td><td class=num>${q.requeues}</td><td>${esc(q.reason)}</td></tr>`).join("");
      $("#queue").innerHTML = `<div class="kv"><div>depth</div><div>${s.queue_depth}</div><div>head</div><div>${esc(s.queue_head || "-")}</div></div>
        <table><thead><tr><th>next</th><th>attempt</th><th>requeues</th><th>reason</th></tr></thead><tbody>${next}</tbody></table>`;
      $("#agents tbody").innerHTML = (s.agents || []).map((a) => `<tr><td>${esc(a.id)}</td><td>${esc(a.host)}</td><td>${esc(a.run_id || "-")}</td>
        <td>${esc(a.heartbeat_at ? new Date(Number(a.heartbeat_at)).toLocaleTimeString() : "")}</td></tr>`).join("") || `<tr><td colspan=4 class=muted>no agent alive</td></tr>`;
      $("#events tbody").innerHTML = (s.recent_events || []).map((e) => `<tr><td>${esc(new Date(e.at).toLocaleString())}</td><td>${esc(e.run_id)}</td>
        <td>${esc(e.event)}</td><td>${esc(e.attempt)}</td><td>${esc(e.reason || "")}${e.after_ms !== undefined ? ` after ${(e.after_ms / 1000).toFixed(1)} s` : ""}${e.agent ? " on " + esc(e.agent) : ""}</td></tr>`).join("")
        || `<tr><td colspan=5 class=muted>none</td></tr>`;
    }

    chart(host, opts, data) {
      const width = Math.max(280, host.clientWidth);
      if (host.plot) host.plot.destroy();
      host.plot = new uPlot({ width, height: 260, ...opts }, data, host);
    }

    drawMetric() {
      const F = this.F, runs = this.snap.runs;
      const xs = runs.map((_, i) => i + 1);
      this.chart($("#metric-chart"), {
        scales: { x: { time: false } },
        axes: [{ label: "run (creation order)" }, { label: this.metricName(), size: 60 }],
        series: [{}, { label: this.metricName(), stroke: "#2f6fdf", paths: () => null, points: { show: true, size: 4, fill: "#2f6fdf" } },
          { label: "best so far", stroke: "#d98b1a", width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }],
      }, [xs, runs.map((r) => r[F.value]), this.snap.best_so_far]);
    }

    toggle(rid, only) {
      if (only) this.selected.add(rid); else if (this.selected.has(rid)) this.selected.delete(rid); else this.selected.add(rid);
      this.drawRows();
      this.fetchCurves();
    }

    async fetchCurves() {
      const F = this.F, states = new Map(this.snap.runs.map((r) => [r[F.id], r[F.state]]));
      const wanted = [...this.selected].filter((rid) => states.has(rid)).slice(-10);
      await Promise.all(wanted.map(async (rid) => {
        const had = this.histories.get(rid);
        if (had && had.state === states.get(rid) && !["running", "preempting"].includes(had.state)) return;
        try { this.histories.set(rid, { ...(await getJSON(`/api/sweeps/${this.sid}/runs/${rid}/history`)), state: states.get(rid) }); } catch (e) { problem(e.message); }
      }));
      this.curveRuns = wanted.filter((rid) => this.histories.has(rid));
      const names = [...new Set(this.curveRuns.flatMap((rid) => this.histories.get(rid).metrics))];
      const sel = $("#curve-metric"), keep = sel.value || this.metricName();
      sel.innerHTML = names.map((n) => `<option>${esc(n)}</option>`).join("");
      sel.value = names.includes(keep) ? keep : names[0] || "";
      this.drawCurves();
    }

    drawCurves() {
      const metric = $("#curve-metric").value, runs = this.curveRuns || [];
      $("#curves-note").textContent = runs.length ? `${runs.length} run(s): click rows in the table to add or remove` : "click rows in the table to draw their curves";
      const tables = runs.map((rid) => {
        const rows = this.histories.get(rid).rows.filter((r) => r[metric] !== undefined);
        return [rows.map((r, i) => r._step ?? i), rows.map((r) => r[metric])];
      });
      const data = tables.length ? uPlot.join(tables) : [[], []];
      const colours = ["#2f6fdf", "#d2483f", "#2a9d57", "#d98b1a", "#7b4fd6", "#1aa3b8", "#b83280", "#6b7385", "#8c6d1f", "#333"];
      this.chart($("#curves"), {
        scales: { x: { time: false } },
        axes: [{ label: "step" }, { label: metric, size: 60 }],
        series: [{}, ...runs.map((rid, i) => ({ label: rid, stroke: colours[i % colours.length], spanGaps: true, points: { show: false } }))],
      }, data.length > 1 ? data : [[], []]);
    }

    async drawImportance() {
      try {
        const imp = await getJSON(`/api/sweeps/${this.sid}/importance`);
        $("#imp-note").textContent = `from ${imp.runs} run(s) with ${this.metricName()}`;
        $("#importance tbody").innerHTML = imp.rows.map((r) => {
          const w = r.importance === null ? "" : `<span class="bar" style="width:${Math.round(r.importance * 100)}px"></span> ${r.importance.toFixed(3)}`;
          const c = r.correlation === null ? "" : `<span class="bar ${r.correlation < 0 ? "neg" : "pos"}" style="width:${Math.round(Math.abs(r.correlation) * 60)}px"></span> ${r.correlation.toFixed(3)}`;
          return `<tr><td>${esc(r.param)}</td><td>${w}</td><td>${c}</td></tr>`;
        }).join("") || `<tr><td colspan=3 class=muted>needs runs with a value of the metric</td></tr>`;
      } catch (e) { problem(e.message); }
    }
  }

  async function sweepPage(sid) {
    const page = new SweepPage(sid);
    window.sweepdPage = page;
    let busy = null, again = false;
    const reload = async () => {
      if (busy) { again = true; return; }
      busy = page.load().then(() => problem(""), (e) => problem(e.message));
      await busy; busy = null;
      if (again) { again = false; reload(); }
    };
    await reload();
    live(`/api/sweeps/${sid}/live`, reload);
  }

  const m = location.pathname.match(/^\/sweeps\/([^/]+)\/?$/);
  if (m) sweepPage(decodeURIComponent(m[1])); else sweepList();
})();
