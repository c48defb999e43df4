// The /ui dashboard: plain browser JavaScript over the /v1 API, no build step.
// The API key lives in sessionStorage (localStorage if "remember on this device" was ticked at
// log-in) and travels only in the Authorization header: streams are read with fetch() rather than
// EventSource, which cannot send headers.
"use strict";

const KEY = "epochly.api_key";
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const ACTIVE = new Set(["queued", "running"]);
// Fallback re-list while the live stream is down, and a slow catch-up while it is up (a stream
// may drop events under load; the list is the record).
const FALLBACK_POLL_MS = 15000;
const CATCH_UP_MS = 60000;
const COLORS = ["#2f6fed", "#e8590c", "#12805c", "#c2255c", "#7048e8", "#0c8599", "#d9480f", "#5c940d", "#862e9c", "#495057"];

const $ = (sel, root = document) => root.querySelector(sel);
const main = () => document.getElementById("main");

// DOM's append() would print null and undefined as words; h(), svg() and fill() leave them out.
const present = (children) => children.flat().filter((c) => c !== null && c !== undefined && c !== false);
const fill = (el, ...children) => el.replaceChildren(...present(children));

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  el.append(...present(children));
  return el;
}

// ---- key and API -----------------------------------------------------------------------------

// A tab's own log-in wins over a key that another tab remembered after it.
const apiKey = () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
const forgetKey = () => { sessionStorage.removeItem(KEY); localStorage.removeItem(KEY); };

function toLogin() {
  forgetKey();
  const next = location.pathname === "/ui/login" ? "/ui" : location.pathname + location.search;
  location.replace("/ui/login?next=" + encodeURIComponent(next));
}

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

async function api(method, path, { json, form, raw } = {}) {
  const headers = { Authorization: "Bearer " + apiKey() };
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form) body = form;
  const res = await fetch(path, { method, headers, body, cache: "no-store" });
  if (res.status === 401) { toLogin(); throw new ApiError(401); }
  if (raw && res.ok) return res;
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { /* not problem+json: the status says enough */ }
    throw new ApiError(res.status, problem);
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

// Server-Sent Events over fetch(): sends the key as a header and, on reconnect, Last-Event-ID.
function stream(path, { onEvent, onOpen, onDrop, onEnd, onGone }) {
  let lastId = null, stopped = false, controller = null, retryMs = 1000;
  const dispatch = (block) => {
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") lastId = value;
      else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (!data && event === "message") return;
    if (event === "end") { stopped = true; onEnd && onEnd(JSON.parse(data)); return; }
    onEvent(event, data ? JSON.parse(data) : {});
  };
  (async () => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const headers = { Authorization: "Bearer " + apiKey(), Accept: "text/event-stream" };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
        if (res.status === 401) { toLogin(); return; }
        if (!res.ok) throw new ApiError(res.status);
        onOpen && onOpen();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        while (!stopped) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            dispatch(block);
          }
        }
        if (stopped) controller.abort();
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) { stopped = true; onGone && onGone(); return; }
      }
      if (stopped) return;
      onDrop && onDrop();
      await new Promise((r) => setTimeout(r, retryMs));
    }
  })();
  return { close() { stopped = true; controller && controller.abort(); } };
}

function setLive(on, text) {
  const el = document.getElementById("live");
  el.hidden = false;
  el.classList.toggle("on", on);
  el.textContent = text || (on ? "live" : "reconnecting…");
}

// ---- formatting ------------------------------------------------------------------------------

const fmt = (v, digits = 4) => (typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "—");
function age(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
// Decimal places that write a tick step exactly: 0.25 → 2, 5 → 0.
function decimals(step) {
  let d = 0;
  while (d < 15 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6 * step * 10 ** d) d++;
  return d;
}
// Tick labels, each as precise as the step between ticks. uPlot's own keep 3 decimals, which
// labelled every tick of a 1e-4 learning rate "0"; steps under 0.001 are written 1e-4, 1.5e-4.
function ticks(u, splits, axis, space, step) {
  if (step >= 1e-3) return splits.map((v) => v.toFixed(decimals(step)));
  const magnitude = Math.floor(Math.log10(step));
  const stepDigits = decimals(step / 10 ** magnitude);
  return splits.map((v) => {
    if (Math.abs(v) < step / 2) return "0";
    const digits = Math.max(0, Math.floor(Math.log10(Math.abs(v))) - magnitude + stepDigits);
    return v.toExponential(digits).replace(/\.?0+e/, "e");
  });
}
// Four significant digits: 0.6623, 0.0001, 2.5e-7 (the legend's value under the cursor).
const sig = (v) => String(+v.toPrecision(4));
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const badge = (status) => h("span", { class: "badge " + status }, status);
function bar(fraction, sub) {
  const pct = Math.max(0, Math.min(1, fraction || 0)) * 100;
  return h("div", { class: "bar" + (sub ? " sub" : "") }, h("span", { style: `width:${pct.toFixed(1)}%` }));
}
function bytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
// Keras' verbose=2 line, ordered as the server's /log orders it: loss first, val_ last.
function kerasLine(row, total) {
  const keys = Object.keys(row.logs).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const values = keys.map((k) => `${k}: ${fmt(row.logs[k])}`).join(" - ");
  return `Epoch ${row.epoch}/${total} - ${Math.round(row.duration_s)}s - ${values}`;
}
const rank = (k) => (k === "loss" ? 0 : k.startsWith("val_") ? 2 : 1);
// Metric names grouped with their val_ twins: ["loss", "accuracy", …].
function baseMetrics(keys) {
  const bases = [];
  for (const k of keys) {
    const base = k.startsWith("val_") ? k.slice(4) : k;
    if (!bases.includes(base)) bases.push(base);
  }
  return bases.sort((a, b) => rank(a) - rank(b));
}

// JSON for the editor: anything that fits on a line stays on one (a layer, a shape).
function pretty(value, indent = "") {
  const flat = JSON.stringify(value);
  if (value === null || typeof value !== "object" || flat.length + indent.length <= 72) return flat;
  const inner = indent + "  ";
  const items = Array.isArray(value) ? value.map((v) => inner + pretty(v, inner))
    : Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pretty(v, inner)}`);
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return `${open}\n${items.join(",\n")}\n${indent}${close}`;
}

// "sweep swp_… · trial N" for a job that is a sweep's trial; nothing for an ordinary job.
function sweepLink(job) {
  if (!job.sweep_id) return null;
  return h("a", { class: "sweep-link small", href: "/ui/sweeps/" + encodeURIComponent(job.sweep_id) },
    h("span", { class: "mono" }, "sweep " + job.sweep_id), ` · trial ${job.trial}`);
}

// A rerun's page: its original, and whether it repeated it (same versions and device kind, every
// epoch's loss equal), which the service decides once both have finished.
function rerunLine(job) {
  const same = job.same_as_original;
  const verdict = same === true ? "yes" : same === false ? "no" : "not known until both have finished";
  const differ = (job.versions_differ || []).map((d) => `${d.name} ${d.original} → ${d.rerun}`).join(", ");
  return h("div", { class: "muted" }, "Rerun of ", h("a", { class: "mono", href: "/ui/jobs/" + encodeURIComponent(job.rerun_of) }, job.rerun_of),
    " · same as the original: ", h("strong", { id: "same-as-original", dataset: { same: same === null || same === undefined ? "pending" : same ? "yes" : "no" } }, verdict),
    differ ? ` (differs: ${differ})` : "");
}

function notFound(what) {
  main().replaceChildren(h("div", { class: "panel notice", id: "not-found" },
    h("h1", {}, "Not found"),
    h("p", { class: "muted" }, what),
    h("a", { class: "btn", href: "/ui" }, "Back to jobs")));
  document.title = "Not found · Epochly";
}

function showError(err) {
  main().replaceChildren(h("div", { class: "panel notice" }, h("h1", {}, "Something went wrong"), h("p", { class: "muted" }, err.message)));
}

// ---- charts ----------------------------------------------------------------------------------

// One uPlot chart whose data grows in place. setData keeps hidden series and, once the user has
// zoomed (drag to zoom, double-click to reset), the zoom: new epochs never reset the view.
class LiveChart {
  constructor(container, title, series) {
    this.container = container;
    this.zoomed = false;
    this.epochs = 0;
    container.dataset.epochs = "0";
    const target = h("div");
    // uPlot draws no axes without data, which would leave a blank panel.
    this.waiting = h("p", { class: "muted waiting" }, "No epochs yet.");
    container.append(h("h2", {}, title), this.waiting, target);
    const width = () => Math.max(280, target.clientWidth);
    const opts = {
      width: width(),
      height: 240,
      scales: { x: { time: false } },
      cursor: { drag: { x: true, y: false } },
      axes: [{ label: "epoch", grid: { stroke: "#eef0f3" }, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] }, { grid: { stroke: "#eef0f3" }, size: 60, values: ticks }],
      series: [{ label: "epoch" }, ...series.map((s) => ({ label: s.label, stroke: s.color, width: s.width || 2, dash: s.dash, spanGaps: true,
        points: { size: s.pointSize || 4 }, value: (u, v) => (v === null || v === undefined ? "--" : sig(v)) }))],
      hooks: { setSelect: [(u) => { if (u.select.width > 4) this.zoomed = true; }] },
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])], target);
    this.plot.over.addEventListener("dblclick", () => { this.zoomed = false; });
    this.resize = () => this.plot.setSize({ width: width(), height: 240 });
    window.addEventListener("resize", this.resize);
  }
  set(data, epochs) {
    this.plot.setData(data, !this.zoomed);
    this.epochs = epochs;
    this.container.dataset.epochs = String(epochs);
    this.waiting.hidden = epochs > 0;
  }
  destroy() {
    window.removeEventListener("resize", this.resize);
    this.plot.destroy();
    this.container.replaceChildren();
  }
}

// Coalesces many updates into one redraw per animation frame (a replayed history arrives at once).
function frameScheduler(draw) {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; draw(); });
  };
}

// ---- pages -----------------------------------------------------------------------------------

function loginPage() {
  const params = new URLSearchParams(location.search);
  const error = h("div", { class: "field-error", id: "login-error" });
  const input = h("input", { type: "password", name: "api_key", id: "api_key", placeholder: "ek_…", autocomplete: "off", required: true });
  const remember = h("input", { type: "checkbox", name: "remember", id: "remember" });
  const form = h("form", { class: "panel login", onsubmit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    const key = input.value.trim();
    const res = await fetch("/v1/jobs?limit=1", { headers: { Authorization: "Bearer " + key }, cache: "no-store" });
    if (res.status === 401) { error.textContent = "That API key is not valid."; input.focus(); return; }
    if (!res.ok) { error.textContent = `The API answered ${res.status}.`; return; }
    forgetKey();  // a log-in that does not ask to be remembered also ends an earlier remembered one
    (remember.checked ? localStorage : sessionStorage).setItem(KEY, key);
    const next = params.get("next");
    location.assign(next && next.startsWith("/ui") ? next : "/ui");
  } },
    h("h1", {}, "Log in"),
    h("p", { class: "muted" }, "Use an Epochly API key."),
    h("div", { class: "field" }, h("label", { for: "api_key" }, "API key"), input, error,
      h("div", { class: "hint" }, "Create one with ", h("code", {}, "epochly keys create --owner NAME"), "; ", h("code", {}, "make run"), " saves one in ", h("code", {}, "var/local-api-key"), ".")),
    h("div", { class: "field" }, h("label", { class: "check", for: "remember" }, remember, "Remember on this device"),
      h("div", { class: "hint" }, "The key then stays in this browser, for every tab, until you log out. ",
        "Unticked, it is kept in this tab only, and a link opened in a new tab asks for it again.")),
    h("button", { class: "btn primary", type: "submit" }, "Log in"));
  main().replaceChildren(form);
  input.focus();
}

function jobsPage() {
  document.title = "Jobs · Epochly";
  const jobs = new Map();
  const rows = new Map();
  const selected = new Set();
  const tbody = h("tbody");
  const compareBtn = h("a", { class: "btn disabled", id: "compare-selected", href: "#" }, "Compare selected");
  const empty = h("div", { class: "empty", hidden: true }, "No jobs yet. ", h("a", { href: "/ui/new" }, "Submit the tutorial"), ".");
  main().replaceChildren(
    h("div", { class: "pagehead" }, h("h1", {}, "Jobs"), h("span", { class: "spacer" }), compareBtn, h("a", { class: "btn primary", href: "/ui/new" }, "New job")),
    h("div", { class: "panel flush" },
      h("table", { id: "jobs" },
        h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Name"), h("th", {}, "Status"), h("th", {}, "Epoch"),
          h("th", { class: "num" }, "Loss"), h("th", { class: "num" }, "Accuracy"), h("th", {}, "Age"))),
        tbody),
      empty));

  const updateCompare = () => {
    const ok = selected.size >= 2 && selected.size <= 10;
    compareBtn.classList.toggle("disabled", !ok);
    compareBtn.href = ok ? "/ui/compare?jobs=" + [...selected].join(",") : "#";
    compareBtn.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  };

  const render = (job) => {
    let tr = rows.get(job.id);
    if (!tr) {
      const box = h("input", { type: "checkbox", "aria-label": "select for compare", onchange: () => {
        box.checked ? selected.add(job.id) : selected.delete(job.id);
        updateCompare();
      } });
      tr = h("tr", {}, h("td", {}, box), h("td"), h("td"), h("td"), h("td", { class: "num" }), h("td", { class: "num" }), h("td", { class: "muted" }));
      rows.set(job.id, tr);
    }
    tr.dataset.jobId = job.id;
    tr.dataset.status = job.status;
    const [, name, status, epoch, loss, acc, ageCell] = tr.children;
    fill(name, h("a", { href: "/ui/jobs/" + job.id }, job.name || "Untitled job"), h("div", { class: "muted small mono" }, job.id), sweepLink(job));
    status.replaceChildren(badge(job.status));
    const running = job.status === "running" && job.batches_per_epoch;
    epoch.replaceChildren(h("div", { class: "epochcell" },
      h("span", { class: "k" }, `${job.epochs_completed}/${job.epochs_total}`),
      bar(job.epochs_total ? job.epochs_completed / job.epochs_total : 0),
      running ? bar(job.batch / job.batches_per_epoch, true) : null));
    loss.textContent = fmt(job.latest && job.latest.loss);
    acc.textContent = fmt(job.latest && job.latest.accuracy);
    ageCell.textContent = age(job.created_at);
    ageCell.title = when(job.created_at);
  };

  const renderAll = () => {
    const ordered = [...jobs.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
    ordered.forEach(render);
    tbody.replaceChildren(...ordered.map((j) => rows.get(j.id)));
    empty.hidden = ordered.length > 0;
  };

  let loading = null;
  const load = () => (loading ??= api("GET", "/v1/jobs?limit=200").then((page) => {
    jobs.clear();
    for (const j of page.items) jobs.set(j.id, j);
    renderAll();
  }).catch(() => {}).finally(() => { loading = null; }));

  let poll = null;
  stream("/v1/events", {
    onEvent(type, e) {
      if (type === "ready") { setLive(true); clearInterval(poll); poll = null; load(); return; }
      const job = jobs.get(e.job_id);
      if (!job) { load(); return; }  // a job submitted elsewhere
      if (type === "status") {
        job.status = e.status;
        if (e.status !== "running") job.batch = job.batches_per_epoch = null;
      } else if (type === "epoch") {
        job.epochs_completed = Math.max(job.epochs_completed, e.epoch);
        job.latest = e.logs;
        job.batch = null;
      } else if (type === "progress") {
        job.batch = e.batch;
        job.batches_per_epoch = e.batches;
      }
      render(job);
    },
    onDrop() { setLive(false); if (!poll) poll = setInterval(load, FALLBACK_POLL_MS); },
  });
  setInterval(load, CATCH_UP_MS);
  setInterval(() => jobs.forEach((j) => { const tr = rows.get(j.id); if (tr) tr.lastElementChild.textContent = age(j.created_at); }), 10000);
  load();
}

async function jobPage(jobId) {
  let job;
  try {
    job = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId));
  } catch (err) {
    if (err.status === 404) return notFound(`There is no job with id ${jobId}.`);
    return showError(err);
  }
  document.title = `${job.name || job.id} · Epochly`;

  const statusEl = h("span");
  const cancelBtn = h("button", { class: "btn danger", id: "cancel", onclick: async () => {
    if (!confirm("Cancel this job? A running job stops at the next step and keeps its finished epochs.")) return;
    cancelBtn.disabled = true;
    try { Object.assign(job, await api("POST", `/v1/jobs/${job.id}/cancel`)); } catch (err) { alert(err.message); }
    refresh();
  } }, "Cancel");
  // A new job from this one's record (same dataset, spec with the recorded seed, queue): opens its page.
  const rerunBtn = h("button", { class: "btn", id: "rerun", onclick: async () => {
    rerunBtn.disabled = true;
    try { location.assign("/ui/jobs/" + (await api("POST", `/v1/jobs/${job.id}/rerun`)).id); }
    catch (err) { alert(err.message); rerunBtn.disabled = false; }
  } }, "Rerun");
  const download = h("a", { class: "btn", id: "download", href: `/v1/jobs/${job.id}/model`, download: `${job.id}.keras`, onclick: async (e) => {
    e.preventDefault();
    const res = await api("GET", `/v1/jobs/${job.id}/model`, { raw: true });
    const url = URL.createObjectURL(await res.blob());
    const a = h("a", { href: url, download: `${job.id}.keras` });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } }, "Download model");
  const epochStat = h("div", { class: "value" });
  const epochBars = h("div");
  const lossStat = h("div", { class: "value" });
  const accStat = h("div", { class: "value" });
  const errorBox = h("div");
  const stopBox = h("div", { id: "stop-reason" });
  const rerunBox = h("div", { id: "rerun-of" });
  const details = h("dl", { class: "kv" });
  const attempts = h("tbody");
  const history = h("tbody");
  const log = h("pre", { class: "log", id: "log" });
  const charts = h("div", { class: "charts", id: "charts" });

  main().replaceChildren(
    h("div", { class: "pagehead" },
      h("h1", {}, job.name || "Untitled job"), statusEl, h("span", { class: "muted mono small" }, job.id), sweepLink(job),
      h("span", { class: "spacer" }),
      h("a", { class: "btn", href: "/ui/compare?jobs=" + job.id }, "Compare…"), download, rerunBtn, cancelBtn),
    errorBox, stopBox, rerunBox,
    h("div", { class: "panel stats" },
      h("div", { class: "stat" }, h("div", { class: "label" }, "Epoch"), epochStat, epochBars),
      h("div", { class: "stat" }, h("div", { class: "label" }, "Loss"), lossStat),
      h("div", { class: "stat" }, h("div", { class: "label" }, "Accuracy"), accStat),
      h("div", { class: "stat" }, h("div", { class: "label" }, "Attempts"), h("div", { class: "value", id: "attempt-count" }))),
    charts,
    h("div", { class: "panel" }, h("h2", {}, "Log"), log),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("h2", {}, "Details"), details),
      h("div", { class: "panel" }, h("h2", {}, "Attempts"),
        h("table", { id: "attempts" }, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Worker"), h("th", {}, "Started"), h("th", {}, "Outcome"))), attempts),
        h("h2", { style: "margin-top:18px" }, "History"),
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Status"), h("th", {}, "Message"), h("th", {}, "At"))), history))));

  const rows = [];
  const chartFor = new Map();
  let progress = null;

  // Every fit reports loss, so its chart stands from the start: a queued job's page already has
  // the .chart[data-epochs] that scripts wait on.
  const draw = frameScheduler(() => {
    const keys = [...new Set(["loss", ...rows.flatMap((r) => Object.keys(r.logs))])];
    for (const base of baseMetrics(keys)) {
      const names = [base, "val_" + base].filter((k) => keys.includes(k));
      let entry = chartFor.get(base);
      if (!entry || entry.names.length !== names.length) {
        const box = entry ? entry.chart.container : h("div", { class: "panel chart", "data-metric": base });
        if (entry) entry.chart.destroy(); else charts.append(box);
        const series = names.map((n, i) => ({ label: n, color: COLORS[i ? 1 : 0], dash: i ? [6, 4] : undefined }));
        entry = { names, chart: new LiveChart(box, base, series) };
        chartFor.set(base, entry);
      }
      const data = [rows.map((r) => r.epoch), ...names.map((n) => rows.map((r) => r.logs[n] ?? null))];
      entry.chart.set(data, rows.length);
    }
  });

  const refresh = async () => {
    try { job = await api("GET", "/v1/jobs/" + job.id); } catch { return; }
    renderJob();
  };
  const renderLog = async () => {
    if (TERMINAL.has(job.status)) log.textContent = await api("GET", `/v1/jobs/${job.id}/log`).catch(() => log.textContent);
    else log.textContent = rows.map((r) => kerasLine(r, job.epochs_total)).join("\n");
    if (!log.textContent) log.textContent = job.status === "queued" ? (job.waiting_reason ? `Waiting: ${job.waiting_reason}.` : "Waiting for a worker…") : "No epochs yet.";
  };
  const renderProgress = () => {
    const done = Math.max(job.epochs_completed, rows.length);
    epochStat.textContent = `${done}/${job.epochs_total}`;
    const inEpoch = job.status === "running" && progress && progress.batches ? progress.batch / progress.batches : null;
    epochBars.replaceChildren(bar(done / (job.epochs_total || 1)), inEpoch !== null ? bar(inEpoch, true) : "");
    const latest = rows.length ? rows[rows.length - 1].logs : job.latest || {};
    lossStat.textContent = fmt(latest.loss);
    accStat.textContent = fmt(latest.accuracy);
  };
  const renderJob = () => {
    statusEl.replaceChildren(badge(job.status));
    document.body.dataset.status = job.status;
    cancelBtn.hidden = !ACTIVE.has(job.status);
    cancelBtn.disabled = !!job.cancel_requested_at;
    cancelBtn.textContent = job.cancel_requested_at ? "Cancelling…" : "Cancel";
    download.hidden = job.status !== "succeeded";
    rerunBtn.hidden = !(TERMINAL.has(job.status) && job.record);
    rerunBox.replaceChildren(job.rerun_of ? rerunLine(job) : "");
    errorBox.replaceChildren(job.error ? h("div", { class: "errorbox", id: "job-error" },
      h("strong", {}, job.error.type), ": ", job.error.message, job.error.epoch ? h("span", { class: "muted" }, ` (epoch ${job.error.epoch})`) : "") : "");
    // Why training ended (stop_reason), and the best epoch by the job's EarlyStopping rule.
    const stopWords = { completed: "completed all epochs", early_stopping: `stopped early by EarlyStopping after epoch ${job.epochs_completed} of ${job.epochs_total}`,
      nan_loss: "stopped: the loss became NaN or infinite", cancelled: "cancelled" };
    stopBox.replaceChildren(job.stop_reason ? h("div", { class: "muted" }, "Stop reason: ", h("strong", {}, stopWords[job.stop_reason] || job.stop_reason),
      job.best_epoch ? ` · best epoch ${job.best_epoch}` : "") : "");
    $("#attempt-count").textContent = String(job.attempts.length);
    const spec = job.spec || {};
    const devices = (job.worker_devices || []).map((d) => d.name ? `${d.kind} ${d.name}` : d.kind).join(", ");
    const pairs = [["Dataset", job.dataset_id || "—"], ["Queue", job.queue],
      ["Worker", job.worker ? (devices ? `${job.worker} (${devices})` : job.worker) : "—"], ["Created", when(job.created_at)],
      ["Started", when(job.started_at)], ["Finished", when(job.finished_at)],
      ["Optimizer", JSON.stringify((spec.compile || {}).optimizer)], ["Loss function", JSON.stringify((spec.compile || {}).loss)],
      ["Fit", JSON.stringify(spec.fit)]];
    details.replaceChildren(...pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "Fit" || k === "Optimizer" ? "mono" : "" }, v)]));
    attempts.replaceChildren(...(job.attempts.length ? job.attempts.map((a) => h("tr", {},
      h("td", {}, a.attempt), h("td", { class: "mono small" }, a.worker), h("td", {}, when(a.started_at)), h("td", {}, a.outcome || "running")))
      : [h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Not started yet."))]));
    history.replaceChildren(...job.history.map((e) => h("tr", {}, h("td", {}, badge(e.status)), h("td", {}, e.message), h("td", { class: "muted small" }, when(e.at)))));
    renderProgress();
    renderLog();
  };
  renderJob();
  draw();

  // The stream replays every epoch, then goes live; a reconnect resumes after the last event id.
  stream(`/v1/jobs/${job.id}/events`, {
    onOpen() { setLive(true); },
    onDrop() { setLive(false); },
    onEvent(type, e) {
      if (type === "epoch") {
        if (rows.length && e.epoch <= rows[rows.length - 1].epoch) return;
        rows.push(e);
        progress = null;
        if (!TERMINAL.has(job.status)) log.textContent = rows.map((r) => kerasLine(r, job.epochs_total)).join("\n");
        renderProgress();
        draw();
      } else if (type === "progress") {
        progress = e;
        renderProgress();
      } else if (type === "status") {
        job.status = e.status;
        refresh();
      }
    },
    onEnd() { setLive(false, "finished"); refresh(); },
  });
}

// ---- sweeps ----------------------------------------------------------------------------------

// The sweep page's fallback when its stream is unavailable, and the list's refresh.
const SWEEP_POLL_MS = 2000;
const SWEEP_LIST_POLL_MS = 5000;
const BEST_COLOR = COLORS[0];
const OTHER_COLOR = "#a3abb8";
const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, v);
  el.append(...present(children));
  return el;
}

// Pruned trials end "succeeded", so these three are every trial that has ended.
const trialsDone = (s) => s.counts.succeeded + s.counts.failed + s.counts.cancelled;
const directionWord = (s) => (s.objective.direction === "maximize" ? "max" : "min");
const paramText = (v) => (typeof v === "number" ? sig(v) : v === undefined ? "—" : JSON.stringify(v));

function sweepsPage() {
  document.title = "Sweeps · Epochly";
  const tbody = h("tbody");
  const empty = h("div", { class: "empty", hidden: true }, "No sweeps yet. Start one with ", h("code", {}, "POST /v1/sweeps"),
    " (see the ", h("a", { href: "/docs" }, "API docs"), ").");
  main().replaceChildren(
    h("div", { class: "pagehead" }, h("h1", {}, "Sweeps")),
    h("div", { class: "panel flush" },
      h("table", { id: "sweeps" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Trials"),
          h("th", { scope: "col" }, "Objective"), h("th", { scope: "col", class: "num" }, "Best"), h("th", { scope: "col" }, "Created"))),
        tbody),
      empty));
  const row = (s) => {
    const done = trialsDone(s);
    return h("tr", { "data-sweep-id": s.id, "data-status": s.status },
      h("td", {}, h("a", { href: "/ui/sweeps/" + encodeURIComponent(s.id) }, s.name || s.id), h("div", { class: "muted small mono" }, s.id)),
      h("td", {}, badge(s.status)),
      h("td", {}, h("div", { class: "epochcell" }, h("span", { class: "k trials" }, `${done}/${s.trials}`), bar(s.trials ? done / s.trials : 0))),
      h("td", { class: "mono small" }, `${s.objective.metric} (${directionWord(s)})`),
      h("td", { class: "num best-objective" }, fmt(s.best && s.best.objective)),
      h("td", { class: "muted", title: when(s.created_at) }, age(s.created_at)));
  };
  const load = async () => {
    const page = await api("GET", "/v1/sweeps?limit=200");
    tbody.replaceChildren(...page.items.map(row));
    empty.hidden = page.items.length > 0;
  };
  setInterval(() => load().catch(() => {}), SWEEP_LIST_POLL_MS);
  return load();
}

// One parameter against the objective, a point per trial that has an objective. Numbers get a
// linear axis, or a log one where the values span a decade or more (learning rates); anything
// else is placed by category, in the order the search space lists it.
function scatterPlot(path, distribution, points, metric, bestId) {
  const W = 340, H = 210, L = 56, R = 14, T = 12, B = 30;
  const numeric = points.every((p) => typeof p.x === "number");
  let xPos, xTicks;
  if (numeric) {
    const xs = points.map((p) => p.x);
    const lo = Math.min(...xs), hi = Math.max(...xs);
    const log = lo > 0 && (distribution.type === "loguniform" || hi / lo >= 10);
    const f = log ? Math.log10 : (v) => v;
    let [a, b] = [f(lo), f(hi)];
    if (a === b) { a -= 1; b += 1; }
    const pad = (b - a) * 0.08;
    xPos = (v) => L + ((f(v) - a + pad) / (b - a + 2 * pad)) * (W - L - R);
    const distinct = [...new Set(xs)].sort((m, n) => m - n);
    xTicks = distinct.length <= 5 ? distinct : [lo, hi];
  } else {
    const listed = distribution.type === "choice" ? distribution.values.map((v) => JSON.stringify(v)) : [];
    const cats = [...new Set([...listed, ...points.map((p) => JSON.stringify(p.x))])];
    xPos = (v) => L + ((cats.indexOf(JSON.stringify(v)) + 0.5) / cats.length) * (W - L - R);
    xTicks = cats.map((c) => JSON.parse(c));
  }
  const ys = points.map((p) => p.y);
  let [c, d] = [Math.min(...ys), Math.max(...ys)];
  if (c === d) { c -= 0.5; d += 0.5; }
  const yPad = (d - c) * 0.1;
  const yPos = (v) => T + (1 - (v - c + yPad) / (d - c + 2 * yPad)) * (H - T - B);
  const ordered = [...points].sort((p, q) => (p.jobId === bestId) - (q.jobId === bestId));
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${metric} against ${path}, ${points.length} trials` },
    svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }),
    svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }),
    xTicks.map((v) => svg("text", { x: xPos(v), y: H - B + 16, "text-anchor": "middle" }, paramText(v))),
    [Math.min(...ys), Math.max(...ys)].map((v) => svg("text", { x: L - 6, y: yPos(v) + 4, "text-anchor": "end" }, fmt(v, 3))),
    ordered.map((p) => svg("circle", { class: p.jobId === bestId ? "point best" : "point", "data-trial": p.trial, cx: xPos(p.x), cy: yPos(p.y), r: p.jobId === bestId ? 6 : 4.5 },
      svg("title", {}, `trial ${p.trial}: ${path} = ${paramText(p.x)}, ${metric} = ${fmt(p.y)}`))));
}

async function sweepPage(sweepId) {
  const path = "/v1/sweeps/" + encodeURIComponent(sweepId);
  let sweep;
  try {
    sweep = await api("GET", path);
  } catch (err) {
    if (err.status === 404) return notFound(`There is no sweep with id ${sweepId}.`);
    return showError(err);
  }
  document.title = `${sweep.name || sweep.id} · Epochly`;
  const metric = sweep.objective.metric;
  const maximize = sweep.objective.direction === "maximize";
  const params = Object.keys(sweep.search);
  const baseEpochs = ((sweep.spec || {}).fit || {}).epochs;
  // The objective metric by job id, then epoch: what the curves are drawn from.
  const curves = new Map();

  const statusEl = h("span");
  const cancelBtn = h("button", { class: "btn danger", id: "cancel-sweep", onclick: async () => {
    if (!confirm("Cancel this sweep? No new trials start, queued ones are cancelled and running ones stop at their next batch.")) return;
    cancelBtn.disabled = true;
    try { apply(await api("POST", path + "/cancel")); } catch (err) { alert(err.message); cancelBtn.disabled = false; }
  } }, "Cancel sweep");
  const trialsStat = h("div", { class: "value", id: "trials-done" });
  const trialsBar = h("div");
  const runningStat = h("div", { class: "value" });
  const prunedStat = h("div", { class: "value" });
  const bestStat = h("div", { class: "value", id: "best-objective" });
  const bestWhich = h("div", { class: "muted small" });
  const board = h("tbody");
  const curvesBox = h("div", { class: "panel chart", id: "curves", "data-metric": metric, "data-series": "0", "data-epochs": "0" });
  const scatters = h("div", { class: "scatters", id: "scatters" });
  const importanceBody = h("div");
  const details = h("dl", { class: "kv" });

  main().replaceChildren(
    h("div", { class: "pagehead" },
      h("h1", {}, sweep.name || "Untitled sweep"), statusEl, h("span", { class: "muted mono small" }, sweep.id),
      h("span", { class: "spacer" }), cancelBtn),
    h("div", { class: "panel stats" },
      h("div", { class: "stat" }, h("div", { class: "label" }, "Trials done"), trialsStat, trialsBar),
      h("div", { class: "stat" }, h("div", { class: "label" }, "Running"), runningStat),
      h("div", { class: "stat" }, h("div", { class: "label" }, "Pruned"), prunedStat),
      h("div", { class: "stat" }, h("div", { class: "label" }, `Best ${metric} (${directionWord(sweep)})`), bestStat, bestWhich)),
    h("div", { class: "panel flush" },
      h("table", { id: "leaderboard" },
        h("caption", {}, "Leaderboard, best first"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Trial"), h("th", { scope: "col" }, "Status"),
          ...params.map((p) => h("th", { scope: "col", class: "param mono" }, p)),
          h("th", { scope: "col", class: "num param" }, metric), h("th", { scope: "col", class: "num" }, "Epochs"), h("th", { scope: "col" }, "Stop reason"))),
        board)),
    curvesBox,
    scatters,
    h("div", { class: "grid2" },
      h("div", { class: "panel", id: "importance" }, h("h2", {}, "Parameter importance"), importanceBody),
      h("div", { class: "panel" }, h("h2", {}, "Details"), details)));

  const bestId = () => (sweep.best ? sweep.best.job_id : null);
  // The server's leaderboard order, kept between refreshes while epochs arrive over the stream.
  const ranked = () => [...sweep.leaderboard].sort((a, b) =>
    (a.objective === null) - (b.objective === null) || (maximize ? b.objective - a.objective : a.objective - b.objective) || a.trial - b.trial);

  const renderHead = () => {
    statusEl.replaceChildren(badge(sweep.status));
    document.body.dataset.status = sweep.status;
    cancelBtn.hidden = !ACTIVE.has(sweep.status);
    cancelBtn.disabled = !!sweep.cancelled_at;
    const done = trialsDone(sweep);
    trialsStat.textContent = `${done}/${sweep.trials}`;
    trialsBar.replaceChildren(bar(sweep.trials ? done / sweep.trials : 0));
    runningStat.textContent = String(sweep.counts.running);
    prunedStat.textContent = String(sweep.counts.pruned);
    bestStat.textContent = fmt(sweep.best && sweep.best.objective);
    bestWhich.replaceChildren(sweep.best ? h("a", { href: "/ui/jobs/" + sweep.best.job_id }, `trial ${sweep.best.trial}`) : "no objective yet");
    const pairs = [["Dataset", sweep.dataset_id || "—"], ["Sampler", sweep.sampler], ["Pruner", sweep.pruner],
      ["Parallel", String(sweep.parallel)], ["Seed", String(sweep.seed)], ["Created", when(sweep.created_at)], ["Finished", when(sweep.finished_at)],
      ...Object.entries(sweep.search).map(([p, dist]) => [p, JSON.stringify(dist)])];
    details.replaceChildren(...pairs.flatMap(([k, v]) => [h("dt", { class: k in sweep.search ? "mono" : "" }, k), h("dd", { class: k in sweep.search ? "mono" : "" }, v)]));
  };

  const renderBoard = () => {
    const best = bestId();
    const rows = ranked().map((t) => {
      const total = t.params["fit.epochs"] ?? baseEpochs;
      return h("tr", { class: t.job_id === best ? "best" : null, "data-job-id": t.job_id, "data-trial": t.trial, "data-status": t.status,
        "data-epochs": t.epochs_completed, "data-objective": t.objective ?? "", "data-best": t.job_id === best ? "true" : null },
        h("td", {}, h("a", { href: "/ui/jobs/" + t.job_id }, `trial ${t.trial}`), t.job_id === best ? h("span", { class: "badge best" }, "best") : ""),
        h("td", {}, badge(t.status)),
        ...params.map((p) => h("td", { class: "mono" }, paramText(t.params[p]))),
        h("td", { class: "num objective" }, fmt(t.objective)),
        h("td", { class: "num epochs" }, total ? `${t.epochs_completed}/${total}` : String(t.epochs_completed)),
        h("td", {}, t.stop_reason === "pruned" ? h("span", { class: "badge pruned" }, "pruned") : t.stop_reason || "—"));
    });
    board.replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", { colspan: params.length + 5, class: "empty" }, "No trials yet."))]));
  };

  const renderScatters = () => {
    const best = bestId();
    const scored = sweep.leaderboard.filter((t) => typeof t.objective === "number");
    scatters.replaceChildren(...params.map((p) => {
      const points = scored.filter((t) => p in t.params && t.params[p] !== null).map((t) => ({ x: t.params[p], y: t.objective, trial: t.trial, jobId: t.job_id }));
      return h("div", { class: "panel scatter", "data-param": p, "data-points": points.length },
        h("h2", { class: "mono" }, p), h("div", { class: "muted small" }, `each trial's ${metric} against its value`),
        points.length ? scatterPlot(p, sweep.search[p], points, metric, best) : h("p", { class: "muted" }, "No trial has an objective yet."));
    }));
  };

  // One series per trial that has epochs; the best trial's is drawn last, thick and in color, so
  // the thin grey ones never hide it. uPlot fixes a series' style when it is made, so a new best
  // or a new trial rebuilds the chart.
  let chart = null, chartKey = null;
  const drawCurves = frameScheduler(() => {
    const best = bestId();
    const shown = sweep.leaderboard.filter((t) => (curves.get(t.job_id) || new Map()).size)
      .sort((a, b) => (a.job_id === best) - (b.job_id === best) || a.trial - b.trial);
    const key = shown.map((t) => t.job_id).join(",") + "|" + best;
    if (key !== chartKey) {
      if (chart) chart.destroy();
      curvesBox.replaceChildren();
      chartKey = key;
      chart = shown.length ? new LiveChart(curvesBox, `${metric} per epoch, every trial`, shown.map((t) => (t.job_id === best
        ? { label: `trial ${t.trial} (best)`, color: BEST_COLOR, width: 3 }
        : { label: `trial ${t.trial}`, color: OTHER_COLOR, width: 1, pointSize: 3 }))) : null;
      if (!chart) curvesBox.replaceChildren(h("h2", {}, `${metric} per epoch, every trial`), h("p", { class: "muted" }, "No epochs yet."));
    }
    curvesBox.dataset.series = String(shown.length);
    curvesBox.dataset.bestJobId = best || "";
    if (!chart) return;
    const maxEpoch = Math.max(0, ...shown.flatMap((t) => [...curves.get(t.job_id).keys()]));
    const xs = Array.from({ length: maxEpoch }, (_, i) => i + 1);
    chart.set([xs, ...shown.map((t) => xs.map((x) => curves.get(t.job_id).get(x) ?? null))], maxEpoch);
  });

  const addEpoch = (jobId, epoch, logs) => {
    if (!curves.has(jobId)) curves.set(jobId, new Map());
    curves.get(jobId).set(epoch, logs && typeof logs[metric] === "number" ? logs[metric] : null);
  };
  // Fetches only the epochs a trial has that the page lacks, so a missed stream event or a poll
  // catches up without re-reading whole histories.
  const fetching = new Set();
  const syncCurves = () => {
    for (const t of sweep.leaderboard) {
      const have = curves.get(t.job_id);
      const last = have && have.size ? Math.max(...have.keys()) : 0;
      if (t.epochs_completed <= last || fetching.has(t.job_id)) continue;
      fetching.add(t.job_id);
      api("GET", `/v1/jobs/${t.job_id}/metrics?after=${last}`)
        .then((m) => { for (const e of m.epochs) addEpoch(t.job_id, e.epoch, e.logs); })
        .catch(() => {})
        .finally(() => { fetching.delete(t.job_id); drawCurves(); });
    }
  };

  let importanceFor = null;
  const loadImportance = async () => {
    let result;
    try { result = await api("GET", path + "/importance"); } catch (err) {
      importanceBody.replaceChildren(h("p", { class: "muted" }, `Not available: ${err.message}`));
      return;
    }
    const entries = Object.entries(result.importances);
    importanceBody.replaceChildren(entries.length
      ? h("table", { id: "importances" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Parameter"), h("th", { scope: "col" }, "Share"), h("th", { scope: "col", class: "num" }, "%"))),
        h("tbody", {}, entries.map(([p, v]) => h("tr", { "data-param": p }, h("td", { class: "mono" }, p), h("td", {}, bar(v)), h("td", { class: "num" }, (v * 100).toFixed(1))))))
      : h("p", { class: "muted" }, `Needs at least 2 finished trials with an objective (${result.trials_used} so far).`),
      h("p", { class: "muted small" }, `Optuna's PED-ANOVA over ${result.trials_used} finished trials.`));
  };

  const render = () => {
    renderHead();
    renderBoard();
    renderScatters();
    drawCurves();
    syncCurves();
    // Importances change only when a trial ends.
    const done = trialsDone(sweep);
    if (done !== importanceFor) { importanceFor = done; loadImportance(); }
  };
  const renderLive = frameScheduler(() => { renderHead(); renderBoard(); renderScatters(); });
  const apply = (next) => { sweep = next; render(); };

  let refreshing = null, again = false;
  const refresh = () => {
    if (refreshing) { again = true; return; }
    refreshing = api("GET", path).then(apply).catch(() => {}).finally(() => {
      refreshing = null;
      if (again) { again = false; refresh(); }
    });
  };
  let poll = null;
  const stopPolling = () => { clearInterval(poll); poll = null; };
  const startPolling = () => {
    setLive(false, "polling");
    poll ??= setInterval(() => {
      if (TERMINAL.has(sweep.status)) { stopPolling(); setLive(false, "finished"); return; }
      refresh();
    }, SWEEP_POLL_MS);
  };

  render();
  if (TERMINAL.has(sweep.status)) return;
  stream(path + "/events", {
    onOpen() { setLive(true); stopPolling(); },
    onDrop: startPolling,
    onGone: startPolling,
    onEvent(type, e) {
      if (type === "sweep") return apply(e);
      if (type === "best") { sweep.best = e; renderLive(); drawCurves(); return; }
      if (type !== "epoch") return refresh();  // trial_started, pruned, finished: the sweep is the record
      const trial = sweep.leaderboard.find((t) => t.job_id === e.job_id);
      if (!trial) return refresh();
      addEpoch(e.job_id, e.epoch, e.logs);
      trial.epochs_completed = Math.max(trial.epochs_completed, e.epoch);
      if (typeof e.objective === "number" && (trial.objective === null || (maximize ? e.objective > trial.objective : e.objective < trial.objective))) trial.objective = e.objective;
      renderLive();
      drawCurves();
    },
    onEnd() { stopPolling(); setLive(false, "finished"); refresh(); },
  });
}

// Flattens a spec into dotted paths, so two specs can be compared row by row.
function flatten(value, prefix = "", out = {}) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (Array.isArray(value) && value.some((v) => v && typeof v === "object")) {
    value.forEach((v, i) => flatten(v, `${prefix}[${i}]`, out));
  } else {
    out[prefix] = JSON.stringify(value);
  }
  return out;
}

async function comparePage() {
  document.title = "Compare · Epochly";
  const ids = [...new Set((new URLSearchParams(location.search).get("jobs") || "").split(",").map((s) => s.trim()).filter(Boolean))];
  if (ids.length < 2 || ids.length > 10) {
    main().replaceChildren(h("div", { class: "panel notice" }, h("h1", {}, "Compare runs"),
      h("p", { class: "muted" }, "Pick 2 to 10 jobs on the jobs page, then “Compare selected”."), h("a", { class: "btn", href: "/ui" }, "Jobs")));
    return;
  }
  const results = await Promise.all(ids.map((id) => Promise.all([api("GET", "/v1/jobs/" + id), api("GET", `/v1/jobs/${id}/metrics`)]).catch((err) => err)));
  const missing = ids.filter((id, i) => results[i] instanceof Error);
  if (missing.length) {
    if (results.some((r) => r instanceof ApiError && r.status !== 404)) return showError(results.find((r) => r instanceof Error));
    return notFound(`No job with id ${missing.join(", ")}.`);
  }
  const runs = results.map(([job, metrics], i) => ({ job, color: COLORS[i], rows: new Map(metrics.epochs.map((e) => [e.epoch, e.logs])) }));
  const byId = new Map(runs.map((r) => [r.job.id, r]));

  const charts = h("div", { class: "charts", id: "charts" });
  const summary = h("tbody");
  const specRows = h("tbody");
  const onlyDiff = h("input", { type: "checkbox", id: "only-diff", onchange: () => renderSpecs() });
  main().replaceChildren(
    h("div", { class: "pagehead" }, h("h1", {}, `Compare ${runs.length} runs`)),
    h("div", { class: "panel flush" }, h("table", { id: "runs" },
      h("thead", {}, h("tr", {}, h("th", {}, "Run"), h("th", {}, "Status"), h("th", { class: "num" }, "Epochs"), h("th", { class: "num" }, "Loss"), h("th", { class: "num" }, "Accuracy"))),
      summary)),
    charts,
    h("div", { class: "panel flush" },
      h("div", { class: "pagehead", style: "padding:14px 16px 0;margin:0" }, h("h2", { style: "margin:0" }, "Specs"), h("span", { class: "spacer" }),
        h("label", { style: "font-weight:400;margin:0" }, onlyDiff, " only differences")),
      h("table", { id: "specs" },
        h("thead", {}, h("tr", {}, h("th", {}, "Field"), ...runs.map((r) => h("th", {}, h("span", { class: "swatch", style: `background:${r.color}` }), r.job.name || r.job.id)))),
        specRows)));

  const label = (r) => `${r.job.name || "job"} · ${r.job.id.slice(-6)}`;
  const renderSummary = () => summary.replaceChildren(...runs.map((r) => {
    const last = r.rows.size ? r.rows.get(Math.max(...r.rows.keys())) : r.job.latest || {};
    return h("tr", { "data-job-id": r.job.id, "data-status": r.job.status },
      h("td", {}, h("span", { class: "swatch", style: `background:${r.color}` }), h("a", { href: "/ui/jobs/" + r.job.id }, label(r))),
      h("td", {}, badge(r.job.status)), h("td", { class: "num" }, `${r.rows.size}/${r.job.epochs_total}`),
      h("td", { class: "num" }, fmt(last.loss)), h("td", { class: "num" }, fmt(last.accuracy)));
  }));
  const renderSpecs = () => {
    const flat = runs.map((r) => flatten({ dataset_id: r.job.dataset_id, ...r.job.spec }));
    const paths = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
    specRows.replaceChildren(...paths.flatMap((p) => {
      const values = flat.map((f) => (p in f ? f[p] : "—"));
      const differs = new Set(values).size > 1;
      if (onlyDiff.checked && !differs) return [];
      return [h("tr", { class: differs ? "diff" : "" }, h("td", { class: "mono" }, p), ...values.map((v) => h("td", { class: "mono" }, v)))];
    }));
  };

  const chartFor = new Map();
  const draw = () => {
    performance.mark("epochly:draw-start");
    const keys = [...new Set(runs.flatMap((r) => [...r.rows.values()].flatMap((logs) => Object.keys(logs))))];
    const maxEpoch = Math.max(0, ...runs.flatMap((r) => [...r.rows.keys()]));
    const xs = Array.from({ length: maxEpoch }, (_, i) => i + 1);
    for (const metric of baseMetrics(keys).flatMap((b) => [b, "val_" + b]).filter((k) => keys.includes(k))) {
      let chart = chartFor.get(metric);
      if (!chart) {
        const box = h("div", { class: "panel chart", "data-metric": metric });
        charts.append(box);
        chart = new LiveChart(box, metric, runs.map((r) => ({ label: label(r), color: r.color })));
        chartFor.set(metric, chart);
      }
      chart.set([xs, ...runs.map((r) => xs.map((x) => { const logs = r.rows.get(x); return logs && metric in logs ? logs[metric] : null; }))], maxEpoch);
    }
    performance.measure("epochly:draw", "epochly:draw-start");
  };
  const scheduleDraw = frameScheduler(draw);
  renderSummary();
  renderSpecs();
  draw();

  // One owner stream for all the runs: a browser opens at most six connections to a host.
  stream("/v1/events", {
    onEvent(type, e) {
      const run = byId.get(e.job_id);
      if (type === "ready") { setLive(true); return; }
      if (!run) return;
      if (type === "epoch") { run.rows.set(e.epoch, e.logs); scheduleDraw(); renderSummary(); }
      else if (type === "status") { run.job.status = e.status; renderSummary(); }
    },
    onDrop() { setLive(false); },
  });
}

async function datasetsPage() {
  document.title = "Datasets · Epochly";
  const tbody = h("tbody");
  const status = h("div", { class: "field-error", id: "upload-error" });
  const target = h("input", { type: "text", name: "target", placeholder: "label (default: the last column)" });
  const name = h("input", { type: "text", name: "name", placeholder: "defaults to the file name" });
  const fileInput = h("input", { type: "file", accept: ".csv,.npz", hidden: true, onchange: () => fileInput.files[0] && upload(fileInput.files[0]) });
  const drop = h("div", { class: "dropzone", id: "dropzone", tabindex: 0, onclick: () => fileInput.click() },
    h("strong", {}, "Drop a .csv or .npz file here"), h("div", { class: "small" }, "or click to choose one"), fileInput);
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]); });

  const load = async () => {
    const page = await api("GET", "/v1/datasets?limit=200");
    tbody.replaceChildren(...(page.items.length ? page.items.map((d) => h("tr", { "data-dataset-id": d.id },
      h("td", {}, d.name, h("div", { class: "muted small mono" }, d.id)), h("td", {}, d.format), h("td", { class: "num" }, d.n_samples.toLocaleString()),
      h("td", { class: "mono" }, JSON.stringify(d.x_shape)), h("td", { class: "num" }, bytes(d.size_bytes)), h("td", { class: "muted" }, age(d.created_at)),
      h("td", { class: "num" }, h("a", { class: "btn", href: "/ui/new?dataset=" + d.id }, "Train"), " ",
        h("button", { class: "btn danger", onclick: async () => {
          if (!confirm(`Delete dataset ${d.name}?`)) return;
          try { await api("DELETE", "/v1/datasets/" + d.id); } catch (err) { alert(err.message); }
          load();
        } }, "Delete"))))
      : [h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No datasets yet: add the tutorial's example, or drop a file above."))]));
  };
  const upload = async (file) => {
    status.textContent = "";
    drop.querySelector("strong").textContent = `Uploading ${file.name}…`;
    const form = new FormData();
    form.append("file", file);
    if (name.value.trim()) form.append("name", name.value.trim());
    if (target.value.trim()) form.append("target", target.value.trim());
    try { await api("POST", "/v1/datasets", { form }); } catch (err) { status.textContent = err.message; }
    drop.querySelector("strong").textContent = "Drop a .csv or .npz file here";
    fileInput.value = "";
    load();
  };
  main().replaceChildren(
    h("div", { class: "pagehead" }, h("h1", {}, "Datasets"), h("span", { class: "spacer" }),
      h("button", { class: "btn", id: "add-example", onclick: async () => { await api("POST", "/v1/datasets/examples/side-effects"); load(); } }, "Add the tutorial's example data set")),
    h("div", { class: "panel" }, h("div", { class: "row" },
      h("div", { class: "field" }, h("label", {}, "Name"), name),
      h("div", { class: "field" }, h("label", {}, "Target column (CSV)"), target)), drop, status),
    h("div", { class: "panel flush" }, h("table", { id: "datasets" }, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Format"),
      h("th", { class: "num" }, "Samples"), h("th", {}, "Features"), h("th", { class: "num" }, "Size"), h("th", {}, "Added"), h("th", {}, ""))), tbody)));
  await load();
}

async function newJobPage() {
  document.title = "New job · Epochly";
  const tutorial = JSON.parse(document.getElementById("tutorial").textContent);
  const fields = {};
  const field = (key, labelText, control, hint) => {
    const error = h("div", { class: "field-error", "data-error-for": key });
    const wrap = h("div", { class: "field", "data-field": key }, h("label", { for: "f-" + key }, labelText), control, hint ? h("div", { class: "hint" }, hint) : "", error);
    control.id = "f-" + key;
    control.name = key;
    fields[key] = { wrap, error, control };
    return wrap;
  };
  const json = (v, rows) => h("textarea", { rows, spellcheck: "false" }, pretty(v));
  const datasetSelect = h("select");
  const general = h("div", { class: "field-error", id: "form-error" });
  const form = h("form", { class: "panel", id: "new-job", onsubmit: (e) => { e.preventDefault(); submit(); } },
    h("div", { class: "row" },
      field("name", "Name", h("input", { type: "text", value: tutorial.name })),
      field("dataset_id", "Dataset", datasetSelect)),
    field("model", "Model", json(tutorial.model, 14), "Keras layers, or {\"keras_json\": …} from model.to_json()."),
    h("div", { class: "grid2" }, field("compile", "Compile", json(tutorial.compile, 10)), field("fit", "Fit", json(tutorial.fit, 10))),
    general,
    h("button", { class: "btn primary", type: "submit", id: "submit" }, "Submit job"));
  main().replaceChildren(h("div", { class: "pagehead" }, h("h1", {}, "New job"), h("span", { class: "muted" }, "prefilled with the Keras tutorial")), form);

  const wanted = new URLSearchParams(location.search).get("dataset");
  const loadDatasets = async () => {
    let items = (await api("GET", "/v1/datasets?limit=200")).items;
    if (!items.length) items = [await api("POST", "/v1/datasets/examples/side-effects")];
    datasetSelect.replaceChildren(...items.map((d) => h("option", { value: d.id, selected: d.id === wanted }, `${d.name} (${d.n_samples.toLocaleString()} samples)`)));
  };
  await loadDatasets();

  const showErrors = (errors) => {
    for (const f of Object.values(fields)) { f.error.replaceChildren(); f.wrap.classList.remove("invalid"); }
    general.replaceChildren();
    for (const { path, message } of errors) {
      const top = path.split(/[.[]/)[0];
      const f = fields[top];
      const line = h("div", {}, path && path !== top ? h("code", {}, path) : "", path && path !== top ? ": " : "", message);
      if (f) { f.error.append(line); f.wrap.classList.add("invalid"); } else general.append(line);
    }
  };
  const submit = async () => {
    const body = { name: fields.name.control.value.trim() || null, dataset_id: datasetSelect.value };
    const errors = [];
    for (const key of ["model", "compile", "fit"]) {
      try { body[key] = JSON.parse(fields[key].control.value); } catch (err) { errors.push({ path: key, message: "not valid JSON: " + err.message }); }
    }
    showErrors(errors);
    if (errors.length) return;
    const button = $("#submit");
    button.disabled = true;
    button.textContent = "Checking the spec…";
    try {
      const job = await api("POST", "/v1/jobs", { json: body });
      location.assign("/ui/jobs/" + job.id);
    } catch (err) {
      showErrors(err.problem && err.problem.errors && err.problem.errors.length ? err.problem.errors : [{ path: "", message: err.message }]);
      button.disabled = false;
      button.textContent = "Submit job";
    }
  };
}

// ---- routing ---------------------------------------------------------------------------------

function route() {
  const path = location.pathname.replace(/\/+$/, "") || "/ui";
  if (path === "/ui/login") return loginPage();
  if (!apiKey()) return toLogin();
  document.getElementById("nav").hidden = false;
  const logout = document.getElementById("logout");
  logout.hidden = false;
  logout.onclick = () => { forgetKey(); location.assign("/ui/login"); };
  const section = path.startsWith("/ui/datasets") ? "datasets" : path.startsWith("/ui/new") ? "new" : path.startsWith("/ui/sweeps") ? "sweeps" : path === "/ui" ? "jobs" : "";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === section));
  const job = path.match(/^\/ui\/jobs\/([^/]+)$/);
  const sweep = path.match(/^\/ui\/sweeps\/([^/]+)$/);
  const run = path === "/ui" ? jobsPage()
    : job ? jobPage(decodeURIComponent(job[1]))
    : path === "/ui/sweeps" ? sweepsPage()
    : sweep ? sweepPage(decodeURIComponent(sweep[1]))
    : path === "/ui/compare" ? comparePage()
    : path === "/ui/datasets" ? datasetsPage()
    : path === "/ui/new" ? newJobPage()
    : notFound(`No page at ${location.pathname}.`);
  Promise.resolve(run).catch((err) => { if (err.status !== 401) showError(err); });
}

route();
