// trainlog's dashboard: the runs table and the charts, over the server's JSON API
// (/api/runs, /api/scalars) and its event stream (/api/events). No build step, no
// dependency but uPlot.
"use strict";

const POINTS = 2000;          // points (or min/max buckets) asked for per series
const FIRST_SELECTED = 10;    // runs selected when the page opens: the most recent ones
const HIST_FIELDS = ["count", "min", "max", "mean", "nonfinite"];
const TOP = "top level";   // the group of names without a `/` or `.` prefix
const PALETTE = ["#f57c00", "#1976d2", "#388e3c", "#d32f2f", "#7b1fa2", "#0097a7", "#5d4037",
  "#c2185b", "#455a64", "#afb42b", "#512da8", "#00796b", "#e64a19", "#303f9f", "#689f38"];

const state = {
  runs: [],                 // /api/runs
  byName: new Map(),
  selected: new Set(),
  touched: false,           // the user chose runs: new runs are not selected for them
  runFilter: null,
  metricFilter: null,
  sort: { key: "start", desc: true },
  metricCol: "",
  smoothing: 0.6,
  logy: false,
  x: "step",
  allRanks: false,
};
const charts = new Map();   // chart key -> Chart

const $ = (id) => document.getElementById(id);

function colorOf(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// A value from the API: a number, or "NaN", "Infinity", "-Infinity" (kept as text in JSON).
function num(v) {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return null;
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  const x = num(v);
  if (x === null) return escapeHtml(v);
  if (!Number.isFinite(x)) return `<span class="bad">${Number.isNaN(x) ? "NaN" : x > 0 ? "+∞" : "−∞"}</span>`;
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  const a = Math.abs(x);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? (+x.toPrecision(5)).toExponential() : String(+x.toPrecision(5));
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function fmtTime(t) {
  if (t === null || t === undefined) return "";
  const d = new Date(t * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function regex(text) {
  if (!text) return null;
  try { return new RegExp(text, "i"); } catch (e) { return { test: (s) => s.toLowerCase().includes(text.toLowerCase()) }; }
}

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

// ---- runs table ----

// Higher is better for names like these; lower for the rest (losses, errors, perplexity).
const HIGHER_IS_BETTER = /acc|accuracy|f1|score|reward|auc|precision|recall|bleu|rouge|map|iou|throughput|per_sec|tokens/i;

function best(run, metric) {
  if (!metric) return null;
  return HIGHER_IS_BETTER.test(metric) ? run.max?.[metric] : run.min?.[metric];
}

// run-2 before run-10.
const collator = new Intl.Collator(undefined, { numeric: true });
function natural(a, b) {
  return collator.compare(a, b);
}

function differingParams(runs) {
  const values = new Map();
  for (const run of runs) {
    for (const [k, v] of Object.entries(run.params || {})) {
      if (!values.has(k)) values.set(k, new Set());
      values.get(k).add(JSON.stringify(v));
    }
  }
  const keys = [];
  for (const [k, set] of values) {
    const missing = runs.some((r) => !(r.params && k in r.params));
    if (set.size > 1 || (missing && set.size > 0 && runs.length > 1)) keys.push(k);
  }
  return keys.sort().slice(0, 8);
}

function shownRuns() {
  const f = state.runFilter;
  return state.runs.filter((r) => !f || f.test(r.name) || f.test(r.status || "") ||
    Object.entries(r.tags || {}).some(([k, v]) => f.test(`${k}=${v}`)));
}

function sortValue(run, key) {
  if (key.startsWith("param:")) return run.params?.[key.slice(6)];
  if (key === "last") return num(run.last?.[state.metricCol]);
  if (key === "best") return num(best(run, state.metricCol));
  return run[key];
}

function renderRuns() {
  const runs = shownRuns();
  const params = differingParams(runs);
  const { key, desc } = state.sort;
  runs.sort((a, b) => {
    const x = sortValue(a, key), y = sortValue(b, key);
    if (x === y) return natural(a.name, b.name);
    if (x === undefined || x === null) return 1;
    if (y === undefined || y === null) return -1;
    const c = typeof x === "number" && typeof y === "number" ? x - y : natural(String(x), String(y));
    return desc ? -c : c;
  });
  const m = state.metricCol;
  const cols = [["", ""], ["name", "Run"], ["status", "Status"], ["start", "Start"], ["duration_secs", "Duration"],
    ["steps", "Steps"], ["ranks", "Ranks"], ...params.map((p) => [`param:${p}`, p]),
    ...(m ? [["last", `${m} (last)`], ["best", `${m} (best)`]] : []), ["tags", "Tags"], ["results", "Results"]];
  $("runs").tHead.innerHTML = "<tr>" + cols.map(([k, label]) =>
    `<th data-key="${escapeHtml(k)}" class="${k === key ? "sorted" + (desc ? " desc" : "") : ""}">${escapeHtml(label)}</th>`).join("") + "</tr>";
  const rows = runs.map((r) => {
    const sel = state.selected.has(r.name);
    if (r.error) {
      return `<tr data-run="${escapeHtml(r.name)}"><td></td><td class="name">${escapeHtml(r.name)}</td><td class="bad" colspan="${cols.length - 2}">${escapeHtml(r.error)}</td></tr>`;
    }
    const kv = (o) => Object.entries(o || {}).map(([k, v]) => `${escapeHtml(k)}=${typeof v === "object" && v !== null && "value" in v ? fmt(v.value) : fmt(v)}`).join(" ");
    const nonfinite = m && r.nonfinite?.[m] ? ` <span class="bad" title="non-finite values">(${r.nonfinite[m]} NaN/∞)</span>` : "";
    return `<tr data-run="${escapeHtml(r.name)}" class="${sel ? "selected" : ""}">` +
      `<td><input type="checkbox" ${sel ? "checked" : ""}><span class="swatch" style="background:${colorOf(r.name)}"></span></td>` +
      `<td class="name">${escapeHtml(r.name)}</td>` +
      `<td class="status-${escapeHtml(r.status || "")}">${escapeHtml(r.status || "")}</td>` +
      `<td>${fmtTime(r.start)}</td><td class="num">${fmtDuration(r.duration_secs)}</td>` +
      `<td class="num">${r.steps}</td><td class="num">${(r.ranks || []).length}</td>` +
      params.map((p) => `<td class="param">${p in (r.params || {}) ? fmt(r.params[p]) : ""}</td>`).join("") +
      (m ? `<td class="num">${fmt(r.last?.[m])}${nonfinite}</td><td class="num">${fmt(best(r, m))}</td>` : "") +
      `<td>${kv(r.tags)}</td><td>${kv(r.results)}</td></tr>`;
  });
  $("runs").tBodies[0].innerHTML = rows.join("") ||
    `<tr><td colspan="${cols.length}" class="empty">No runs${state.runFilter ? " match the filter" : " under this directory yet: they appear here as soon as they are written"}.</td></tr>`;
  $("run-count").textContent = `${runs.length} of ${state.runs.length} runs, ${state.selected.size} selected`;
}

function renderMetricColumn() {
  const names = new Set();
  for (const r of state.runs) for (const m of r.metrics || []) names.add(m);
  const sorted = [...names].sort();
  if (!state.metricCol || !names.has(state.metricCol)) {
    state.metricCol = sorted.find((n) => /loss/i.test(n)) || sorted[0] || "";
  }
  $("metric-col").innerHTML = sorted.map((n) =>
    `<option ${n === state.metricCol ? "selected" : ""}>${escapeHtml(n)}</option>`).join("");
}

// ---- charts ----

// TensorBoard's smoothing: a debiased exponential moving average over the finite values;
// a NaN or ±∞ stays a gap.
function smooth(values, weight) {
  const out = new Array(values.length);
  let last = 0, n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined || !Number.isFinite(v)) { out[i] = v === undefined ? undefined : null; continue; }
    if (weight === 0) { out[i] = v; continue; }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

// Metrics of the selected runs, as chart specs grouped by prefix. A histogram (its
// `.count`, `.min`, `.max`, `.mean`) is one distribution chart.
function chartSpecs() {
  const names = new Set();
  for (const run of state.runs) {
    if (state.selected.has(run.name)) for (const m of run.metrics || []) names.add(m);
  }
  const hist = new Set();
  for (const n of names) {
    const base = n.replace(/\.count$/, "");
    if (base !== n && ["min", "max", "mean"].every((f) => names.has(`${base}.${f}`))) hist.add(base);
  }
  const specs = [];
  for (const base of hist) specs.push({ key: `h:${base}`, title: base, kind: "histogram", metrics: ["min", "max", "mean"].map((f) => `${base}.${f}`) });
  for (const n of names) {
    const i = n.lastIndexOf(".");
    if (i > 0 && hist.has(n.slice(0, i)) && HIST_FIELDS.includes(n.slice(i + 1))) continue;
    specs.push({ key: `s:${n}`, title: n, kind: "scalar", metrics: [n] });
  }
  const f = state.metricFilter;
  const groups = new Map();
  for (const s of specs.filter((s) => !f || f.test(s.title)).sort((a, b) => natural(a.title, b.title))) {
    const m = /^([^/.]+)[/.]/.exec(s.title);
    const group = m ? m[1] : TOP;
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(s);
  }
  // Names without a prefix (loss, lr) first: they are what a run is watched for.
  return [...groups.entries()].sort((a, b) => (b[0] === TOP) - (a[0] === TOP) || natural(a[0], b[0]));
}

// The (run, rank) lines a chart draws.
function sources() {
  const out = [];
  for (const run of state.runs) {
    if (!state.selected.has(run.name) || run.error) continue;
    const ranks = state.allRanks ? run.ranks : run.ranks.slice(0, 1);
    for (const rank of ranks) out.push({ run: run.name, rank, label: state.allRanks && run.ranks.length > 1 ? `${run.name} · rank ${rank}` : run.name });
  }
  return out;
}

// A chart follows its card's width (the grid's columns change with the window).
const resizer = new ResizeObserver((entries) => {
  for (const e of entries) {
    const chart = charts.get(e.target.dataset.key);
    const width = Math.floor(e.contentRect.width);
    if (chart?.plot && width > 0 && Math.abs(chart.plot.width - width) > 1) {
      chart.plot.setSize({ width, height: 240 });
    }
  }
});

const observer = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const chart = charts.get(e.target.dataset.key);
    if (!chart) continue;
    chart.visible = e.isIntersecting;
    if (chart.visible && chart.stale) chart.load();
  }
}, { rootMargin: "400px" });

function renderCharts() {
  const groups = chartSpecs();
  const root = $("charts");
  const wanted = new Set();
  if (groups.length === 0) {
    root.innerHTML = `<div class="empty">${state.selected.size ? "No metrics match." : "Select runs in the table to chart them."}</div>`;
  } else {
    root.querySelector(".empty")?.remove();
  }
  const openGroups = new Set([...root.querySelectorAll("details.group")].filter((d) => !d.open).map((d) => d.dataset.group));
  for (const [group, specs] of groups) {
    let section = root.querySelector(`details.group[data-group="${CSS.escape(group)}"]`);
    if (!section) {
      section = document.createElement("details");
      section.className = "group";
      section.dataset.group = group;
      section.open = !openGroups.has(group);
      section.innerHTML = `<summary></summary><div class="grid"></div>`;
    }
    root.appendChild(section); // keeps groups in order
    section.querySelector("summary").innerHTML = `${escapeHtml(group)} <span class="muted">${specs.length} chart${specs.length > 1 ? "s" : ""}</span>`;
    const grid = section.querySelector(".grid");
    for (const spec of specs) {
      wanted.add(spec.key);
      let chart = charts.get(spec.key);
      if (!chart) {
        chart = new Chart(spec);
        charts.set(spec.key, chart);
        observer.observe(chart.card);
        resizer.observe(chart.card);
      }
      grid.appendChild(chart.card);
      // New lines (runs selected, ranks shown) are fetched; the others are kept.
      if (chart.visible) chart.load(); else chart.stale = true;
    }
  }
  for (const [key, chart] of charts) {
    if (!wanted.has(key)) { observer.unobserve(chart.card); resizer.unobserve(chart.card); chart.destroy(); charts.delete(key); }
  }
  for (const section of root.querySelectorAll("details.group")) {
    if (!groups.some(([g]) => g === section.dataset.group)) section.remove();
  }
}

class Chart {
  constructor(spec) {
    this.spec = spec;
    this.card = document.createElement("div");
    this.card.className = "card";
    this.card.dataset.key = spec.key;
    this.card.innerHTML = `<h3></h3><div class="plot"></div><div class="foot"></div>`;
    this.card.querySelector("h3").textContent = spec.kind === "histogram" ? `${spec.title} (distribution: min–max, mean)` : spec.title;
    this.plot = null;
    this.visible = false;
    this.stale = true;
    this.zoom = null;        // {from, to} steps when zoomed
    this.series = [];        // per source: {source, data: api answers}
    this.dirty = new Set();  // runs with new lines since their series were fetched
    this.dirtyAll = false;   // every series is to be fetched again (zoom changed)
    this.generation = 0;
  }

  destroy() {
    this.plot?.destroy();
    this.card.remove();
  }

  // Fetches the series of the lines shown that are new or changed (the zoom window at full
  // resolution when zoomed), keeps the others, then draws.
  async load() {
    this.stale = false;
    const generation = ++this.generation;
    const srcs = sources();
    const window = this.zoom ? `&from=${Math.floor(this.zoom.from)}&to=${Math.ceil(this.zoom.to)}` : "";
    const previous = new Map(this.series.map((s) => [`${s.source.run}\u0000${s.source.rank}`, s]));
    const dirty = this.dirty, dirtyAll = this.dirtyAll;
    this.dirty = new Set();
    this.dirtyAll = false;
    const results = await Promise.all(srcs.map(async (source) => {
      const old = previous.get(`${source.run}\u0000${source.rank}`);
      if (old && !dirtyAll && !dirty.has(source.run)) return { source, data: old.data };
      const run = state.byName.get(source.run);
      const data = await Promise.all(this.spec.metrics.map(async (metric) => {
        if (!run || !(run.metrics || []).includes(metric)) return null;
        const url = `/api/scalars?run=${encodeURIComponent(source.run)}&metric=${encodeURIComponent(metric)}&rank=${source.rank}&points=${POINTS}${window}`;
        try { return await getJson(url); } catch (e) { return { error: e.message }; }
      }));
      return { source, data };
    }));
    if (generation !== this.generation) return; // a newer load is under way
    this.series = results;
    this.draw();
  }

  // The x of each point on the chosen axis (null: not drawable there).
  xs(answer, source) {
    if (state.x === "step") return answer.step;
    const run = state.byName.get(source.run);
    // Relative to the run's first record, as TensorBoard does.
    const start = run?.first_time ?? run?.start ?? 0;
    return answer.time.map((t) => (t === null ? null : state.x === "relative" ? t - start : t));
  }

  draw() {
    const tables = [], series = [{}], bands = [];
    let nonfinite = 0, total = 0, shown = 0, downsampled = false;
    const w = state.smoothing;
    const ok = (v) => (state.logy && v !== null && v <= 0 ? null : v);
    this.lines = [];
    for (const { source, data } of this.series) {
      const color = colorOf(source.run);
      const answers = data.filter(Boolean);
      if (answers.length === 0 || answers.some((a) => a.error)) continue;
      const main = answers[answers.length === 3 ? 2 : 0]; // a histogram's mean, else the series
      const xs = this.xs(main, source);
      const order = [...xs.keys()].filter((i) => xs[i] !== null).sort((a, b) => xs[a] - xs[b]);
      const x = order.map((i) => xs[i]);
      if (x.length === 0) continue;
      total += main.total;
      shown += main.step.length;
      nonfinite += main.nonfinite || 0;
      const first = series.length;
      if (this.spec.kind === "histogram") {
        if (answers.length !== 3) continue;
        // min, max and mean by step (a field can be missing where the others are not);
        // downsampled, the lowest min and highest max of each bucket.
        const at = (a, pick) => {
          const m = new Map(a.step.map((s, i) => [s, finite(pick(a, i))]));
          return order.map((i) => ok(m.get(main.step[i]) ?? null));
        };
        const lo = at(answers[0], (a, i) => (a.min ? a.min[i] : a.value[i]));
        const hi = at(answers[1], (a, i) => (a.max ? a.max[i] : a.value[i]));
        const mean = order.map((i) => ok(finite(main.value[i])));
        tables.push([x, hi, lo, mean]);
        series.push({ label: `${source.label} max`, stroke: "transparent", points: { show: false } },
          { label: `${source.label} min`, stroke: "transparent", points: { show: false } },
          { label: source.label, stroke: color, width: 1.5, points: { show: false } });
        bands.push({ series: [first, first + 1], fill: hexAlpha(color, 0.18) });
        this.lines.push({ source, index: first + 2, color, raw: null });
        continue;
      }
      const raw = order.map((i) => ok(finite(main.value[i])));
      const cols = [x, raw, smooth(raw, w)];
      series.push({ label: `${source.label} (raw)`, stroke: hexAlpha(color, w > 0 ? 0.28 : 1), width: 1, points: { show: false } },
        { label: source.label, stroke: color, width: 1.5, points: { show: false }, show: w > 0 });
      if (main.min) {
        downsampled = true;
        cols.push(order.map((i) => ok(main.max[i])), order.map((i) => ok(main.min[i])));
        series.push({ label: `${source.label} max`, stroke: "transparent", points: { show: false } },
          { label: `${source.label} min`, stroke: "transparent", points: { show: false } });
        bands.push({ series: [first + 2, first + 3], fill: hexAlpha(color, 0.12) });
      }
      tables.push(cols);
      this.lines.push({ source, index: first + 1, rawIndex: first, color, raw: main });
    }
    const h3 = this.card.querySelector("h3");
    h3.querySelector(".nonfinite")?.remove();
    if (nonfinite > 0) h3.insertAdjacentHTML("beforeend", `<span class="nonfinite" title="NaN or ±∞ values: gaps in the line">⚠ ${nonfinite} NaN/∞</span>`);
    const foot = this.card.querySelector(".foot");
    if (tables.length === 0) {
      this.plot?.destroy();
      this.plot = null;
      this.card.querySelector(".plot").innerHTML = `<div class="empty">No points on this axis.</div>`;
      foot.textContent = "";
      return;
    }
    foot.innerHTML = `${tables.length} line${tables.length > 1 ? "s" : ""}, ${total.toLocaleString()} points` + (downsampled ? `, drawn as ${shown.toLocaleString()} min–max buckets (spikes kept)` : "") +
      (this.zoom ? ` · <span class="zoomed">zoomed: steps ${Math.floor(this.zoom.from)}–${Math.ceil(this.zoom.to)}</span>` : "");
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    const key = `${state.x}|${state.logy}|${w > 0}|${series.length}|${series.map((s) => s.label).join("\u0001")}|${bands.length}`;
    if (this.plot && this.plotKey === key) {
      this.busy = true;
      this.plot.setData(data, !this.zoom);
      this.busy = false;
      return;
    }
    this.plot?.destroy();
    this.plotKey = key;
    const el = this.card.querySelector(".plot");
    el.innerHTML = "";
    const width = Math.max(200, Math.floor(this.card.getBoundingClientRect().width) - 16);
    this.plot = new uPlot({
      width, height: 240,
      legend: { show: false },
      cursor: { sync: { key: "trainlog" }, drag: { x: true, y: false } },
      scales: { x: { time: state.x === "wall" }, y: { distr: state.logy ? 3 : 1 } },
      axes: [
        { values: state.x === "relative" ? (u, v) => v.map(fmtSeconds) : undefined, grid: { stroke: "#eee" } },
        { size: 64, grid: { stroke: "#eee" }, values: (u, ticks) => fmtTicks(ticks) },
      ],
      series, bands,
      hooks: {
        setSelect: [(u) => this.zoomTo(u)],
        setCursor: [(u) => tooltip(this, u)],
      },
    }, data, el);
    this.plot.over.addEventListener("dblclick", () => { if (this.zoom) { this.zoom = null; this.dirtyAll = true; this.load(); } });
    this.plot.over.addEventListener("mouseenter", () => { hovered = this; });
    this.plot.over.addEventListener("mouseleave", () => { hovered = null; $("tooltip").hidden = true; });
  }

  // A drag selects an x range: ask for that window's points at full resolution.
  zoomTo(u) {
    if (u.select.width < 2) return;
    const lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
    let from = Infinity, to = -Infinity;
    for (const { source, data } of this.series) {
      const main = data.filter(Boolean)[0];
      if (!main || main.error) continue;
      const xs = this.xs(main, source);
      // A bucket stands for the steps since the previous one: take its start too.
      for (let i = 0; i < xs.length; i++) {
        if (xs[i] !== null && xs[i] >= lo && xs[i] <= hi) {
          from = Math.min(from, i > 0 ? main.step[i - 1] : main.step[i]);
          to = Math.max(to, i + 1 < xs.length ? main.step[i + 1] : main.step[i]);
        }
      }
    }
    if (from <= to) {
      this.zoom = { from, to };
      this.dirtyAll = true;
      this.load();
    }
  }
}

function finite(v) {
  const x = num(v);
  return x === null || !Number.isFinite(x) ? null : x;
}

// Y ticks with as many decimals as their spacing needs, so neighbours never print the same
// (uPlot's own would print 0.99915 and 0.9992 both as 0.9992, or 1e-4 steps as 0.000).
function fmtTicks(ticks) {
  const finite = ticks.filter((v) => v !== null && Number.isFinite(v));
  let step = Infinity;
  for (let i = 1; i < finite.length; i++) step = Math.min(step, Math.abs(finite[i] - finite[i - 1]));
  const big = Math.max(...finite.map(Math.abs), 0);
  const exponential = big >= 1e6 || (big > 0 && big < 1e-3);
  const spaced = Number.isFinite(step) && step > 0;
  const digits = spaced ? Math.min(6, Math.max(0, Math.ceil(Math.log10(big / step) - 1e-9))) : 2;
  return ticks.map((v) => {
    if (v === null || v === undefined) return "";
    if (v === 0) return "0";
    // Log y: ticks a decade (or a few steps) apart, each short.
    if (state.logy) return String(+v.toPrecision(3));
    if (exponential) return v.toExponential(digits);
    const decimals = spaced ? Math.min(12, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9))) : 2;
    return v.toFixed(decimals);
  });
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "";
  if (Math.abs(s) < 120) return `${+s.toFixed(2)} s`;
  if (Math.abs(s) < 7200) return `${+(s / 60).toFixed(1)} min`;
  return `${+(s / 3600).toFixed(2)} h`;
}

function hexAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

function fmtX(x) {
  return state.x === "step" ? `step ${x}` : state.x === "relative" ? fmtSeconds(x) : fmtTime(x);
}

// The index nearest `i` where `column` has a point (null is a gap: a point), or null.
function nearest(column, i) {
  if (!column) return null;
  for (let d = 0; d < column.length; d++) {
    if (i - d >= 0 && column[i - d] !== undefined) return i - d;
    if (i + d < column.length && column[i + d] !== undefined) return i + d;
    if (i - d < 0 && i + d >= column.length) break;
  }
  return null;
}

// Hover: each line's value at the cursor (smoothed and raw), for the chart under the
// mouse (the others follow its cursor, synced).
let hovered = null;
function tooltip(chart, u) {
  if (chart !== hovered) return;
  const tip = $("tooltip");
  const i = u.cursor.idx;
  if (i === null || i === undefined || u.cursor.left < 0) { tip.hidden = true; return; }
  const xText = fmtX(u.data[0][i]);
  const rows = [];
  for (const line of chart.lines || []) {
    // Lines of several runs are joined on x: a line may have no point at this exact x;
    // its nearest one is shown.
    const j = nearest(u.data[line.index], i);
    if (j === null) continue;
    const v = u.data[line.index][j];
    const raw = line.rawIndex !== undefined ? u.data[line.rawIndex][j] : undefined;
    const at = j === i ? "" : ` <span class="muted">@ ${fmtX(u.data[0][j])}</span>`;
    rows.push(`<tr><td><span class="swatch" style="background:${line.color}"></span>${escapeHtml(line.source.label)}</td>` +
      `<td>${v === null ? "<span class=bad>gap</span>" : fmt(v)}${at}</td>` +
      (raw !== undefined && state.smoothing > 0 ? `<td class="muted">raw ${raw === null ? "gap" : fmt(raw)}</td>` : "") + "</tr>");
  }
  if (rows.length === 0) { tip.hidden = true; return; }
  tip.innerHTML = `<div>${escapeHtml(chart.spec.title)} · ${xText}</div><table>${rows.join("")}</table>`;
  const rect = u.over.getBoundingClientRect();
  tip.hidden = false;
  const left = rect.left + u.cursor.left + 16;
  tip.style.left = `${Math.min(left, window.innerWidth - tip.offsetWidth - 8)}px`;
  tip.style.top = `${rect.top + u.cursor.top + 16}px`;
}

// ---- data and live updates ----

async function refreshRuns() {
  const runs = await getJson("/api/runs");
  const known = new Set(state.runs.map((r) => r.name));
  const first = state.runs.length === 0;
  state.runs = runs;
  state.byName = new Map(runs.map((r) => [r.name, r]));
  for (const name of [...state.selected]) if (!state.byName.has(name)) state.selected.delete(name);
  if (first || !state.touched) {
    // The most recent runs, and any new one while the user has not chosen.
    const recent = [...runs].filter((r) => !r.error).sort((a, b) => (b.start ?? 0) - (a.start ?? 0));
    for (const r of recent) {
      if (state.selected.size >= FIRST_SELECTED) break;
      if (first || !known.has(r.name)) state.selected.add(r.name);
    }
  }
  renderMetricColumn();
  renderRuns();
}

let pending = null;
let changedRuns = new Set();
function onChange(message) {
  for (const name of message.changed || []) changedRuns.add(name);
  if (message.gone) changedRuns.add("\u0000all");
  if (pending) return;
  pending = setTimeout(async () => {
    pending = null;
    const changed = changedRuns;
    changedRuns = new Set();
    try {
      await refreshRuns();
    } catch (e) {
      setLive(false, `cannot read runs: ${e.message}`);
      return;
    }
    const all = changed.has("\u0000all");
    for (const chart of charts.values()) {
      if (all) chart.dirtyAll = true;
      for (const name of changed) chart.dirty.add(name);
    }
    renderCharts(); // new metrics, new runs; visible charts fetch what changed
  }, 200);
}

function setLive(on, why) {
  const live = $("live");
  live.classList.toggle("off", !on);
  live.textContent = on ? "live" : why || "reconnecting…";
}

function listen() {
  const events = new EventSource("/api/events");
  events.onopen = () => setLive(true);
  events.onmessage = (e) => onChange(JSON.parse(e.data));
  events.onerror = () => setLive(false);
}

function bind() {
  $("run-filter").addEventListener("input", (e) => { state.runFilter = regex(e.target.value); renderRuns(); });
  $("metric-filter").addEventListener("input", (e) => { state.metricFilter = regex(e.target.value); renderCharts(); });
  $("metric-col").addEventListener("change", (e) => { state.metricCol = e.target.value; renderRuns(); });
  $("smoothing").addEventListener("input", (e) => {
    state.smoothing = +e.target.value;
    $("smoothing-value").textContent = state.smoothing.toFixed(2);
    for (const c of charts.values()) if (c.series.length) c.draw();
  });
  $("logy").addEventListener("change", (e) => { state.logy = e.target.checked; for (const c of charts.values()) if (c.series.length) c.draw(); });
  $("xaxis").addEventListener("change", (e) => {
    state.x = e.target.value;
    for (const c of charts.values()) {
      if (c.zoom) { c.zoom = null; c.dirtyAll = true; c.stale = true; if (c.visible) c.load(); } else if (c.series.length) c.draw();
    }
  });
  $("all-ranks").addEventListener("change", (e) => { state.allRanks = e.target.checked; renderCharts(); });
  $("select-shown").addEventListener("click", () => { state.touched = true; for (const r of shownRuns()) if (!r.error) state.selected.add(r.name); renderRuns(); renderCharts(); });
  $("select-none").addEventListener("click", () => { state.touched = true; state.selected.clear(); renderRuns(); renderCharts(); });
  $("runs").tHead.addEventListener("click", (e) => {
    const key = e.target.closest("th")?.dataset.key;
    if (!key) return;
    state.sort = { key, desc: state.sort.key === key ? !state.sort.desc : key === "start" };
    renderRuns();
  });
  $("runs").tBodies[0].addEventListener("click", (e) => {
    const row = e.target.closest("tr[data-run]");
    if (!row) return;
    const name = row.dataset.run;
    if (state.byName.get(name)?.error) return;
    state.touched = true;
    if (state.selected.has(name)) state.selected.delete(name); else state.selected.add(name);
    renderRuns();
    renderCharts();
  });
}

async function main() {
  bind();
  try {
    await refreshRuns();
  } catch (e) {
    $("charts").innerHTML = `<div class="empty bad">Cannot read the runs: ${escapeHtml(e.message)}</div>`;
    return;
  }
  renderCharts();
  listen();
}

// For tests and the browser console: the charts as drawn.
window.trainlogDebug = { state, charts };

main();
