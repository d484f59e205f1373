// Sluice dashboard: polls /api/data and redraws; charts are inline SVG (no library).
"use strict";

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function fmt(n, digits) {
  if (n === null || n === undefined) return "-";
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits ?? 1 });
}

// series: [{label, points: [[t, v], ...]}]; one line per series, shared axes.
function lineChart(title, series, width, height) {
  const pad = { l: 48, r: 8, t: 16, b: 18 };
  const svg = svgEl("svg", { width, height, class: "chart", role: "img", "aria-label": title });
  const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null));
  const title_ = svgEl("text", { x: pad.l, y: 11 });
  title_.textContent = title;
  svg.append(title_);
  if (all.length === 0) return svg;
  const t0 = Math.min(...all.map((p) => p[0]));
  const t1 = Math.max(...all.map((p) => p[0]), t0 + 1);
  const vmax = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => height - pad.b - (v / vmax) * (height - pad.t - pad.b);
  svg.append(svgEl("line", { x1: pad.l, y1: y(0), x2: width - pad.r, y2: y(0), stroke: "#bbb" }));
  const top = svgEl("text", { x: 2, y: pad.t + 8 });
  top.textContent = fmt(vmax, 1);
  const zero = svgEl("text", { x: 2, y: y(0) });
  zero.textContent = "0";
  const span = svgEl("text", { x: pad.l, y: height - 4 });
  span.textContent = `${Math.round((t1 - t0) / 60)} min`;
  svg.append(top, zero, span);
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[1] !== null).map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    if (pts.length === 0) return;
    svg.append(svgEl("polyline", {
      points: pts.join(" "), fill: "none", stroke: COLOURS[i % COLOURS.length], "stroke-width": 1.5,
    }));
  });
  return svg;
}

function legend(labels) {
  return el("div", { class: "legend" }, ...labels.map((l, i) =>
    el("span", {}, el("span", { class: "swatch", style: `background:${COLOURS[i % COLOURS.length]}` }), l)));
}

function table(headers, rows, numeric) {
  const head = el("tr", {}, ...headers.map((h, i) => el("th", numeric.has(i) ? { class: "num" } : {}, h)));
  const body = rows.map((r) => el("tr", {}, ...r.map((c, i) => el("td", numeric.has(i) ? { class: "num" } : {}, c))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function renderGroup(g) {
  const box = el("div", { class: "group", "data-group": g.group });
  if (!g.lag) {
    box.append(el("h3", {}, g.group, el("span", { class: "status" }, "no data yet")));
    return box;
  }
  const lag = g.lag;
  box.setAttribute("data-status", lag.status);
  box.append(el("h3", {},
    el("span", { class: "name" }, `group ${g.group}`),
    el("span", { class: `status status-${lag.status}`, "data-testid": "status" }, lag.status),
    el("span", {}, "lag ", el("b", { class: "total-records", "data-testid": "total-records" }, String(lag.total_lag_records)), " records"),
    el("span", {}, "oldest ", el("b", { class: "max-seconds" }, fmt(lag.max_lag_seconds, 1)), " s")));
  for (const s of g.streams) {
    const parts = g.partitions.filter((p) => p.backend === s.backend && p.stream === s.stream);
    box.append(el("div", { class: "stream" }, `${s.backend} stream `, el("code", {}, s.stream)));
    const charts = el("div", { class: "charts" },
      lineChart("lag (records)", parts.map((p) => ({ label: p.partition, points: p.points.map((q) => [q[0], q[1]]) })), 420, 140),
      lineChart("lag (seconds)", parts.map((p) => ({ label: p.partition, points: p.points.map((q) => [q[0], q[2]]) })), 420, 140));
    box.append(charts, legend(parts.map((p) => p.partition)));
  }
  const byKey = new Map(g.partitions.map((p) => [`${p.backend}/${p.stream}/${p.partition}`, p]));
  box.append(table(
    ["stream", "partition", "lag", "lag s", "committed", "last commit", "owner", "status", "reason"],
    lag.partitions.map((r) => [r.stream, r.partition, `${r.lag_records}${r.exact ? "" : "+"}`, fmt(r.lag_seconds, 1),
      r.committed ?? "-", r.last_commit_at ? r.last_commit_at.slice(11, 19) : "-", r.owner ?? "-", r.status,
      (byKey.get(`${r.backend}/${r.stream}/${r.partition}`) || {}).reason || ""]),
    new Set([2, 3])));
  for (const p of lag.problems) box.append(el("div", { class: "problems" }, p));
  return box;
}

function renderThroughput(t) {
  const stages = Object.entries(t.stages);
  if (t.metrics.length === 0) {
    return el("p", {}, "no Prometheus endpoints configured (sluice dashboard --metrics URL)");
  }
  const wrap = el("div", {});
  wrap.append(table(["stage", "per second"], stages.map(([k, v]) => [k.replace(/_/g, " "), fmt(v.rate, 2)]), new Set([1])));
  wrap.append(lineChart("per second", stages.map(([k, v]) => ({ label: k, points: v.points })), 860, 160),
    legend(stages.map(([k]) => k.replace(/_/g, " "))));
  return wrap;
}

function renderReasons(r) {
  const wrap = el("div", {});
  const blocks = [["dead-lettered (DLQ)", r.dead_lettered], ["API rejected", r.api_rejected], ["S3 error prefix", r.error_prefix]];
  for (const [title, counts] of blocks) {
    const rows = counts ? Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, fmt(v, 0)]) : [];
    wrap.append(el("div", { "data-reasons": title }, el("b", {}, title),
      counts === null ? el("p", {}, "not read yet") : rows.length ? table(["reason", "count"], rows, new Set([1])) : el("p", {}, "none")));
  }
  return wrap;
}

function renderReconcile(rec) {
  if (!rec) return el("p", {}, "not run yet");
  const wrap = el("div", {});
  wrap.append(el("p", {}, `at ${rec.at}: `, el("b", { class: rec.ok ? "ok" : "mismatch" }, rec.ok ? "OK, nothing missing" : "MISMATCH")));
  wrap.append(table(["stage", "events", "distinct", "diff", "dups", "missing"],
    rec.stages.map((s) => s.available ? [s.stage, s.total, s.distinct, s.difference, s.duplicates, s.missing] : [s.stage, "n/a", "", "", "", ""]),
    new Set([1, 2, 3, 4, 5])));
  for (const s of rec.stages) {
    if (s.missing_ids.length) wrap.append(el("p", {}, `missing at ${s.stage}: `, el("code", {}, s.missing_ids.slice(0, 50).join(" "))));
  }
  if (rec.lost.length) wrap.append(el("p", {}, "lost: ", el("code", {}, rec.lost.slice(0, 50).join(" "))));
  return wrap;
}

function render(data) {
  document.getElementById("updated").textContent = `updated ${data.at} (${data.samples} samples)`;
  document.getElementById("groups").replaceChildren(...data.groups.map(renderGroup));
  document.getElementById("throughput").replaceChildren(renderThroughput(data.throughput));
  document.getElementById("reasons").replaceChildren(renderReasons(data.reasons));
  document.getElementById("reconcile").replaceChildren(renderReconcile(data.reconcile));
  document.getElementById("problems").replaceChildren(...data.problems.map((p) => el("li", {}, p)));
}

let period = 2000;
async function poll() {
  try {
    const response = await fetch("/api/data", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    period = Math.max(500, Math.min(5000, data.refresh_s * 1000));
    render(data);
  } catch (err) {
    document.getElementById("updated").textContent = `cannot reach the dashboard: ${err}`;
  }
  setTimeout(poll, period);
}
poll();
