// The cxnlp dashboard: reads /v1/stats* under the filter chosen here and draws cards, SVG charts
// and tables; no libraries, no network beyond this server. Every number follows the filter.
"use strict";

const SENTIMENTS = ["negative", "neutral", "positive"];
const COLORS = { negative: "#c7372f", neutral: "#8a8f98", positive: "#2e8b57" };

const state = { filter: {}, drill: {}, offset: 0, options: null };
// The words of the chosen language (/dashboard/i18n/<lang>): UI strings, topic labels from the
// taxonomy, direction, locale and calendar (Jalali for Persian, Hijri on request for Arabic).
const words = { dir: "ltr", locale: "en-GB", calendar: "gregory", topics: {} };
const tr = (key) => words[key] || key;
const topicLabel = (name) => (words.topics && words.topics[name]) || name;

async function loadWords(lang) {
  const response = await fetch(`/dashboard/i18n/${lang}`, { credentials: "same-origin" });
  if (!response.ok) return;
  Object.assign(words, await response.json());
  const hijri = new URLSearchParams(window.location.search).get("calendar") === "hijri";
  if (hijri && words.hijri_calendar) words.calendar = words.hijri_calendar;
  document.documentElement.lang = lang;
  document.documentElement.dir = words.dir;
  document.querySelectorAll("[data-i18n]").forEach((node) => { node.textContent = tr(node.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((node) => { node.placeholder = tr(node.dataset.i18nPlaceholder); });
  document.title = `cxnlp · ${tr("title")}`;
  localStorage.setItem("cxnlp-lang", lang);
}

// Numbers in the language's digits (Persian digits for fa), dates in its calendar.
const fmt = (x, digits) => new Intl.NumberFormat(words.locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x);
function day(iso) {
  const [y, m, d] = iso.slice(0, 10).split("-").map(Number);
  return new Intl.DateTimeFormat(`${words.locale}-u-ca-${words.calendar}`, { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" }).format(new Date(Date.UTC(y, m - 1, d)));
}

// --- helpers ------------------------------------------------------------------------------

const pct = (x, digits = 1) => (x === null || x === undefined ? "–" : new Intl.NumberFormat(words.locale, { style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits }).format(x));
const num = (x, digits = 2) => (x === null || x === undefined ? "–" : fmt(Number(x), digits));

function query(filter, extra = {}) {
  const params = new URLSearchParams();
  const all = { ...filter, ...extra };
  for (const [key, value] of Object.entries(all)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => params.append(key, v));
    else params.append(key, value);
  }
  return params.toString();
}

async function api(path, filter, extra) {
  return getJson(`/v1/stats${path}?${query(filter, extra)}`);
}

function setBusy(busy) {
  document.body.dataset.loading = busy ? "true" : "false";
}

// --- filters ------------------------------------------------------------------------------

function fillSelect(select, values, keep) {
  const current = keep ? select.value : "";
  select.replaceChildren(el("option", { value: "" }, select.id === "f-dim-key" ? "—" : tr("all")));
  for (const v of values) select.append(el("option", { value: v }, select.id === "f-topic" ? topicLabel(v) : v));
  if (values.includes(current)) select.value = current;
}

async function loadOptions() {
  const dataset = $("f-dataset").value;
  const options = await api("/options", dataset ? { dataset } : {});
  state.options = options;
  fillSelect($("f-dataset"), options.datasets, true);
  for (const name of ["lang", "channel", "product", "topic"]) fillSelect($(`f-${name}`), options[name], true);
  fillSelect($("f-dim-key"), Object.keys(options.dims), true);
  fillDimValues();
  $("f-start").min = $("f-end").min = options.first_day || "";
  $("f-start").max = $("f-end").max = options.last_day || "";
}

function fillDimValues() {
  const key = $("f-dim-key").value;
  fillSelect($("f-dim-value"), key && state.options ? state.options.dims[key] || [] : [], true);
}

function readFilter() {
  const f = {};
  for (const name of ["dataset", "start", "end", "lang", "channel", "product", "sentiment", "topic"]) {
    const value = $(`f-${name}`).value;
    if (value) f[name] = value;
  }
  const key = $("f-dim-key").value, value = $("f-dim-value").value;
  if (key && value) f.dim = `${key}:${value}`;
  return f;
}

function drillFilter() {
  // The drill-down narrows the main filter; its topic / dates / channel replace the filter's.
  const f = { ...state.filter, ...state.drill };
  const q = $("search").value.trim();
  if (q) f.q = q;
  return f;
}

// --- views --------------------------------------------------------------------------------

function card(name, label, value, display, sub, cls) {
  return el(
    "div",
    { class: `card ${cls || ""}`, "data-card": name, "data-value": value === null ? "" : String(value) },
    el("div", { class: "label" }, label),
    el("div", { class: "value" }, display),
    sub ? el("div", { class: "sub" }, sub) : null,
  );
}

function ci(interval) {
  return interval ? `${tr("ci")} ${pct(interval[0])}–${pct(interval[1])}` : "";
}

function scale(score) {
  // The answers' scale, declared per dataset (CSAT's top two boxes are counted on it).
  return score.scale ? ` (${fmt(score.scale[0], 0)}–${fmt(score.scale[1], 0)})` : "";
}

function renderCards(s) {
  const cards = [
    card("n", tr("volume"), s.n, fmt(s.n, 0), s.errors ? `${fmt(s.errors, 0)} ${tr("not_classified")}` : tr("classified")),
  ];
  for (const label of ["positive", "neutral", "negative"]) {
    cards.push(card(`share_${label}`, tr(label), s.shares[label], pct(s.shares[label]), ci(s.ci95[label]), label));
  }
  cards.push(card("net_sentiment", tr("net_sentiment"), s.net_sentiment, s.net_sentiment === null ? "–" : num(100 * s.net_sentiment, 1), ""));
  cards.push(card("ratio_pos_neg", tr("ratio"), s.ratio_pos_neg, s.ratio_pos_neg === null ? "–" : `${num(s.ratio_pos_neg)} : ${fmt(1, 0)}`, ""));
  for (const [kind, score] of Object.entries(s.scores)) {
    if (kind === "nps") cards.push(card("nps", "NPS", score.nps, num(score.nps, 1), `${fmt(score.n, 0)} ${tr("answers")} · CI ${num(score.ci95[0], 1)} to ${num(score.ci95[1], 1)}`));
    else if (kind === "csat") cards.push(card("csat", "CSAT", score.csat, pct(score.csat), `${fmt(score.n, 0)} ${tr("answers")} · ${tr("mean")} ${num(score.mean)}${scale(score)}`));
    else cards.push(card("ces", "CES", score.mean, num(score.mean), `${fmt(score.n, 0)} ${tr("answers")} · ${tr("sd")} ${num(score.sd)}${scale(score)}`));
  }
  $("cards").replaceChildren(...cards);
  $("source").textContent = `${tr("read_from")} ${s.source}`;
}

function renderTrend(t) {
  const periods = t.periods;
  const box = $("trend");
  if (!periods.length) return box.replaceChildren(el("p", { class: "empty" }, tr("no_items")));
  const W = Math.max(640, box.clientWidth || 900), H = 230, left = 40, right = 64, top = 12, bottom = 34;
  const width = W - left - right, height = H - top - bottom;
  const step = width / periods.length;
  const maxN = Math.max(1, ...periods.map((p) => p.n));
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": "trend" });
  for (const y of [0, 0.25, 0.5, 0.75, 1]) {
    const yy = top + height * (1 - y);
    svg.append(el("svg:line", { x1: left, x2: left + width, y1: yy, y2: yy, stroke: "#eceef1" }));
    svg.append(el("svg:text", { x: left - 6, y: yy + 4, "text-anchor": "end" }, `${100 * y}%`));
  }
  periods.forEach((p, i) => {
    const h = (p.n / maxN) * height * 0.35;
    const bar = el("svg:rect", {
      x: left + i * step + step * 0.15, y: top + height - h, width: Math.max(1, step * 0.7), height: h,
      fill: "#dfe6f5", class: "clickable period", "data-period": p.period,
      onclick: () => drill({ start: p.start, end: p.end }, `${t.period} ${p.period}`),
    });
    bar.append(el("svg:title", {}, `${p.period}: ${p.n} items, negative ${pct(p.shares.negative)}`));
    svg.append(bar);
  });
  for (const label of SENTIMENTS) {
    const points = periods
      .map((p, i) => (p.n ? `${left + i * step + step / 2},${top + height * (1 - p.shares[label])}` : null))
      .filter(Boolean);
    svg.append(el("svg:polyline", { points: points.join(" "), fill: "none", stroke: COLORS[label], "stroke-width": 2 }));
  }
  const nps = periods.map((p) => (p.scores.nps && p.scores.nps.n ? p.scores.nps.nps : null));
  if (nps.some((v) => v !== null)) {
    const points = nps
      .map((v, i) => (v === null ? null : `${left + i * step + step / 2},${top + height * (1 - (v + 100) / 200)}`))
      .filter(Boolean);
    svg.append(el("svg:polyline", { points: points.join(" "), fill: "none", stroke: "#7b4fd6", "stroke-width": 2, "stroke-dasharray": "4 3" }));
    svg.append(el("svg:text", { x: left + width + 6, y: top + 4 }, "NPS 100"));
    svg.append(el("svg:text", { x: left + width + 6, y: top + height + 4 }, "−100"));
  }
  const every = Math.ceil(periods.length / 12);
  periods.forEach((p, i) => {
    if (i % every) return;
    svg.append(el("svg:text", { x: left + i * step + step / 2, y: H - 14, "text-anchor": "middle", class: "period-label" }, t.period === "month" ? p.period : day(p.start)));
  });
  const legend = el("div", { class: "legend" },
    ...SENTIMENTS.map((s) => el("span", {}, el("i", { style: `background:${COLORS[s]}` }), `${tr(s)} · ${tr("share")}`)),
    el("span", {}, el("i", { style: "background:#dfe6f5" }), tr("legend_volume")),
    nps.some((v) => v !== null) ? el("span", {}, el("i", { style: "background:#7b4fd6" }), "NPS") : null,
  );
  box.replaceChildren(svg, legend);
  $("trend-note").textContent = words[t.period] || t.period;
}

function topicBars(items, value, label, target, color) {
  const box = $(target);
  if (!items.length) return box.replaceChildren(el("p", { class: "empty" }, tr("no_topics")));
  const rowH = 22, W = 460, labelW = 130, H = items.length * rowH + 8;
  const max = Math.max(1e-9, ...items.map(value));
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": target });
  items.forEach((t, i) => {
    const y = 4 + i * rowH, w = ((W - labelW - 70) * value(t)) / max;
    const g = el("svg:g", { class: "clickable topic", "data-topic": t.topic, onclick: () => drill({ topic: t.topic }, `topic ${t.topic}`) });
    g.append(el("svg:text", { x: labelW - 6, y: y + 14, "text-anchor": "end", class: "topic-label" }, topicLabel(t.topic)));
    g.append(el("svg:rect", { x: labelW, y: y + 3, width: Math.max(1, w), height: rowH - 8, fill: color(t), rx: 2 }));
    g.append(el("svg:text", { x: labelW + w + 5, y: y + 14 }, label(t)));
    g.append(el("svg:title", {}, `${t.topic}: ${t.mentions} mentions, ${pct(t.negative_share)} negative (CI ${ci(t.negative_ci95)})`));
    svg.append(g);
  });
  box.replaceChildren(svg);
}

function negColor(share) {
  const a = Math.min(1, Math.max(0, share));
  const r = Math.round(235 - 36 * a), g = Math.round(238 - 183 * a), b = Math.round(243 - 196 * a);
  return `rgb(${r},${g},${b})`;
}

function renderTopics(t) {
  topicBars(t.items.slice(0, 15), (x) => x.mentions, (x) => `${fmt(x.mentions, 0)} · ${pct(x.share)}`, "topics-volume", (x) => negColor(x.negative_share));
  const ranked = t.ranked_by_negative_share.map((name) => t.items.find((x) => x.topic === name));
  topicBars(ranked.slice(0, 15), (x) => x.negative_share, (x) => `${pct(x.negative_share)} / ${fmt(x.mentions, 0)}`, "topics-negative", () => COLORS.negative);
}

function renderTopicBy(m) {
  const box = $("topic-channel");
  if (!m.cells.length) return box.replaceChildren(el("p", { class: "empty" }, tr("no_topics")));
  const values = m.values.slice(0, 12);
  const topics = [...new Set(m.cells.map((c) => c.topic))].sort();
  const cells = new Map(m.cells.map((c) => [`${c.topic}\u0000${c.value}`, c]));
  const head = el("tr", {}, el("th", {}, tr("topic")), ...values.map((v) => el("th", { class: "num" }, `${v} (${fmt(m.totals[v], 0)})`)));
  const rows = topics.map((topic) =>
    el("tr", {}, el("th", {}, topicLabel(topic)), ...values.map((v) => {
      const c = cells.get(`${topic}\u0000${v}`);
      if (!c) return el("td", { class: "cell" }, "");
      const extra = v === "(missing)" ? {} : { channel: v };
      return el("td", {
        class: "cell", style: `background:${negColor(c.negative_share)}`,
        title: `${c.mentions} mentions, ${pct(c.share)} of ${v}, ${pct(c.negative_share)} negative`,
        onclick: () => drill({ topic, ...extra }, `topic ${topic} · channel ${v}`),
      }, fmt(c.mentions, 0));
    })),
  );
  box.replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
}

function renderAlerts(a) {
  const box = $("alerts");
  // Which period the tests reach (the report prints the same line): partial periods are not tested.
  const scope = el("p", { class: "muted", id: "alerts-scope" }, a.last_complete ? a.last_complete.note : "");
  if (!a.flagged.length) return box.replaceChildren(scope, el("p", { class: "empty" }, `${tr("no_alerts")} (α = ${fmt(a.alpha, 2)})`));
  const what = (x) => (x.kind === "topic_share" ? `${tr("topic")} ${topicLabel(x.value)}` : x.column ? `${tr("negative")} · ${tr(x.column === "lang" ? "language" : x.column)} ${x.value}` : tr("negative"));
  const head = el("tr", {}, ...["period", "what", "before", "now", "change", "p", "p (Holm)", "Cohen's h"].map((h, i) => el("th", { class: i > 1 ? "num" : "" }, h)));
  const rows = a.flagged.map((x) =>
    el("tr", { class: "alert" },
      el("td", {}, day(x.period_start)),
      el("td", { class: "flag" }, what(x)),
      el("td", { class: "num" }, `${pct(x.baseline_share)} / ${fmt(x.baseline_n, 0)}`),
      el("td", { class: "num" }, `${pct(x.current_share)} / ${fmt(x.current_n, 0)}`),
      el("td", { class: "num" }, `+${num(100 * x.difference, 1)}`),
      el("td", { class: "num" }, x.p_value.toExponential(1)),
      el("td", { class: "num" }, x.p_adjusted.toExponential(1)),
      el("td", { class: "num" }, num(x.cohens_h)),
    ),
  );
  box.replaceChildren(scope, el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
}

// --- evidence -------------------------------------------------------------------------------
// A topic's evidence is {start, end, text}: offsets into the comment counted in code points (the
// server's Python string indices). A JavaScript string indexes UTF-16 units, in which a character
// outside the Basic Multilingual Plane (an emoji, say) counts two, so the offsets are mapped
// before slicing. A span whose offsets do not hold its text is looked for by its text.

// units[k]: the UTF-16 index of code point k (units[length in code points] = text.length).
function codeUnits(text) {
  const units = [0];
  for (const ch of text) units.push(units[units.length - 1] + ch.length);
  return units;
}

// [start, end) of `evidence` in `text` as UTF-16 indices, or null where it is not in the text.
function evidenceRange(text, units, evidence) {
  if (!evidence) return null;
  const { start, end } = evidence;
  const quoted = typeof evidence.text === "string" && evidence.text ? evidence.text : null;
  if (Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start < end && end < units.length) {
    const range = [units[start], units[end]];
    if (quoted === null || text.slice(...range) === quoted) return range;
  }
  if (quoted !== null) {
    const at = text.indexOf(quoted);
    if (at >= 0) return [at, at + quoted.length];
  }
  return null;
}

// The comment's text with each topic's evidence in a <mark> (as text nodes: nothing is parsed as
// HTML). Overlapping spans are cut where each begins and ends, so no mark holds another; a mark
// names its topics in data-topics and takes their polarity as its class ("mixed" where they
// differ). A mark sets no direction: Persian and Arabic run as they would without it.
function highlighted(text, topics) {
  const units = codeUnits(text);
  const spans = [];
  for (const t of topics) {
    const range = evidenceRange(text, units, t.evidence);
    if (range) spans.push({ start: range[0], end: range[1], topic: t.topic, polarity: t.polarity || "" });
  }
  const cuts = [...new Set([0, text.length, ...spans.flatMap((s) => [s.start, s.end])])].sort((a, b) => a - b);
  const pieces = [];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [a, b] = [cuts[i], cuts[i + 1]];
    const covering = spans.filter((s) => s.start <= a && b <= s.end);
    if (!covering.length) {
      pieces.push(text.slice(a, b));
      continue;
    }
    const names = [...new Set(covering.map((s) => s.topic))];
    const polarities = new Set(covering.map((s) => s.polarity));
    pieces.push(el("mark", {
      class: `evidence ${polarities.size === 1 ? covering[0].polarity : "mixed"}`,
      "data-topics": names.join(" "),
      title: names.map(topicLabel).join(", "),
    }, text.slice(a, b)));
  }
  return pieces;
}

// Pointing at a topic's chip lights its evidence in the comment.
function lightEvidence(li, topic, on) {
  li.querySelectorAll("mark.evidence").forEach((mark) => {
    if (mark.dataset.topics.split(" ").includes(topic)) mark.classList.toggle("lit", on);
  });
}

function comment(item) {
  const badge = item.sentiment
    ? el("span", { class: `badge ${item.sentiment}` }, tr(item.sentiment))
    : el("span", { class: "badge error", title: item.error || "" }, tr("not_classified"));
  // Mixed: a confidently positive and a confidently negative clause or topic in the comment.
  const mixed = item.mixed ? el("span", { class: "badge mixed", "data-mixed": "true", title: tr("mixed_note") }, tr("mixed")) : null;
  const text = item.text || "";
  const topics = item.topics || [];
  const li = el("li", { class: "comment", "data-id": item.id });
  const chips = topics.map((x) => {
    const chip = el("span", { class: `chip ${x.polarity || ""}`, "data-topic": x.topic, title: x.evidence ? x.evidence.text : "", tabindex: "0" }, topicLabel(x.topic));
    for (const [event, on] of [["mouseenter", true], ["mouseleave", false], ["focus", true], ["blur", false]]) {
      chip.addEventListener(event, () => lightEvidence(li, x.topic, on));
    }
    return chip;
  });
  const where = [day(item.created_at), item.channel, item.product, item.lang, item.dataset].filter(Boolean).join(" · ");
  li.append(
    el("div", { class: "text", dir: "auto" }, ...highlighted(text, topics)),
    el("div", { class: "meta" }, badge, mixed, ...chips, ` ${where} · id ${item.id}`),
  );
  return li;
}

async function loadComments(append = false) {
  if (!append) state.offset = 0;
  const page = await api("/items", drillFilter(), { limit: 25, offset: state.offset });
  const list = $("comments");
  const items = page.items.map(comment);
  if (append) list.append(...items);
  else list.replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, tr("no_items"))]));
  state.offset += page.items.length;
  $("drill-count").textContent = `${fmt(page.total, 0)} ${tr("comments_n")}`;
  $("more").hidden = state.offset >= page.total;
  $("export").href = `/v1/stats/items.csv?${query(drillFilter())}`;
}

function drill(extra, title) {
  state.drill = extra;
  $("drill-title").textContent = title ? `· ${title}` : "";
  loadComments().then(() => $("drill").scrollIntoView({ behavior: "smooth", block: "start" }));
}

async function refresh() {
  setBusy(true);
  state.filter = readFilter();
  const period = $("f-period").value;
  try {
    const [summary, trend, topics, byChannel, alerts] = await Promise.all([
      api("", state.filter),
      api("/trend", state.filter, { period }),
      api("/topics", state.filter),
      api("/topics/by", state.filter, { column: "channel" }),
      api("/alerts", state.filter, { period }),
    ]);
    renderCards(summary);
    renderTrend(trend);
    renderTopics(topics);
    renderTopicBy(byChannel);
    renderAlerts(alerts);
    await loadComments();
  } catch (error) {
    $("cards").replaceChildren(el("p", { class: "empty", role: "alert" }, `Could not load: ${error.message}`));
  } finally {
    setBusy(false);
  }
}

function reset() {
  for (const id of ["f-dataset", "f-start", "f-end", "f-lang", "f-channel", "f-product", "f-sentiment", "f-topic", "f-dim-key", "f-dim-value", "search"]) $(id).value = "";
  state.drill = {};
  $("drill-title").textContent = "";
  loadOptions().then(refresh);
}

document.addEventListener("DOMContentLoaded", () => {
  $("apply").addEventListener("click", refresh);
  $("reset").addEventListener("click", reset);
  $("f-dataset").addEventListener("change", () => loadOptions().then(refresh));
  $("f-dim-key").addEventListener("change", fillDimValues);
  $("f-period").addEventListener("change", refresh);
  $("search-go").addEventListener("click", () => loadComments());
  $("search").addEventListener("keydown", (e) => { if (e.key === "Enter") loadComments(); });
  $("drill-clear").addEventListener("click", () => { state.drill = {}; $("drill-title").textContent = ""; loadComments(); });
  $("more").addEventListener("click", () => loadComments(true));
  const lang = new URLSearchParams(window.location.search).get("lang") || localStorage.getItem("cxnlp-lang") || "en";
  $("ui-lang").value = lang;
  $("ui-lang").addEventListener("change", () => loadWords($("ui-lang").value).then(() => loadOptions()).then(refresh));
  loadWords(lang).then(loadOptions).then(refresh).catch((e) => $("cards").replaceChildren(el("p", { class: "empty" }, e.message)));
});
