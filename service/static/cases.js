// The follow-up queue: reads and changes /v1/cases*; overdue cases first, each case linked to its
// feedback and to the customer's history (#case=ID, #customer=DATASET/ID). No libraries.
"use strict";

const PAGE = 50;
const state = { offset: 0, rules: null, current: null };

const day = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) : "–");
const query = (params) => {
  const out = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined && v !== false) out.append(k, v);
  return out.toString();
};
const caseLink = (c) => el("a", { href: `#case=${c.id}` }, `#${c.id}`);
const customerLink = (dataset, customer) =>
  customer ? el("a", { href: `#customer=${encodeURIComponent(dataset)}/${encodeURIComponent(customer)}` }, customer) : "–";

async function api(path, options = {}) {
  const init = { ...options };
  if (options.body !== undefined) {
    init.method = init.method || "POST";
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(options.body);
  }
  return getJson(path, init);
}

function fill(select, values) {
  for (const v of values) select.append(el("option", { value: v }, v));
}

async function loadMenus() {
  const [rules, options] = await Promise.all([api("/v1/cases/rules"), api("/v1/stats/options")]);
  state.rules = rules;
  fill($("f-dataset"), options.datasets);
  fill($("f-status"), rules.statuses);
  fill($("f-priority"), Object.keys(rules.priorities));
  fill($("f-team"), [...new Set(Object.values(rules.teams))].sort());
}

function readFilter() {
  return {
    dataset: $("f-dataset").value,
    status: $("f-status").value,
    priority: $("f-priority").value,
    team: $("f-team").value,
    owner: $("f-owner").value.trim(),
    open: $("f-open").checked ? "true" : "",
    overdue: $("f-overdue").checked ? "true" : "",
  };
}

function queueRow(c) {
  return el("tr", { class: [c.overdue ? "overdue" : "", state.current === c.id ? "current" : ""].join(" ").trim() || null, "data-id": c.id },
    el("td", {}, caseLink(c)),
    el("td", { class: c.overdue ? "flag" : "" }, c.overdue ? "overdue" : c.escalated ? "escalated" : ""),
    el("td", {}, c.priority),
    el("td", {}, c.status),
    el("td", {}, c.team),
    el("td", {}, c.owner || "–"),
    el("td", {}, customerLink(c.dataset, c.customer_id)),
    el("td", {}, c.reason, c.topic ? el("span", { class: "chip negative" }, c.topic) : null),
    el("td", {}, day(c.opened_at)),
    el("td", { class: c.overdue ? "flag" : "" }, day(c.due_at)),
    el("td", { class: "num" }, c.item_count),
  );
}

async function loadQueue(append = false) {
  if (!append) state.offset = 0;
  const filter = readFilter();
  const page = await api(`/v1/cases?${query({ ...filter, limit: PAGE, offset: state.offset })}`);
  const rows = page.cases.map(queueRow);
  const box = $("queue");
  if (append) box.querySelector("tbody").append(...rows);
  else if (!rows.length) box.replaceChildren(el("p", { class: "empty" }, "No case under this filter."));
  else {
    const head = el("tr", {}, ...["case", "", "priority", "status", "team", "owner", "customer", "reason", "opened", "due", "items"].map((h) => el("th", { class: h === "items" ? "num" : null }, h)));
    box.replaceChildren(el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
  }
  state.offset += page.cases.length;
  $("queue-count").textContent = `· ${page.total.toLocaleString()} cases`;
  $("more").hidden = state.offset >= page.total;
  $("export").href = `/v1/cases/export.csv?${query(filter)}`;
}

function feedbackList(items, emptyText) {
  if (!items.length) return el("p", { class: "empty" }, emptyText);
  return el("ol", { class: "feedback" }, ...items.map((f) =>
    el("li", {},
      el("div", { class: "text", dir: "auto" }, f.text || ""),
      el("div", { class: "meta muted" },
        f.sentiment ? el("span", { class: `badge ${f.sentiment}` }, f.sentiment) : null,
        ` ${day(f.created_at)} · id ${f.item_id}`,
        f.score !== null && f.score !== undefined ? ` · score ${f.score}` : "",
        f.urgency_level && f.urgency_level !== "none" ? ` · urgency ${f.urgency_level}` : ""),
    )));
}

function actions(c) {
  const owner = el("input", { type: "text", value: c.owner || "", placeholder: "owner" });
  const status = el("select", {}, ...state.rules.statuses.map((s) => el("option", { value: s, selected: s === c.status ? "selected" : null }, s)));
  const cause = el("input", { type: "text", placeholder: "root cause (to close)" });
  const resolved = el("select", {}, el("option", { value: "" }, "resolved?"), el("option", { value: "true" }, "yes"), el("option", { value: "false" }, "no"));
  const note = el("textarea", { placeholder: "note" });
  const closing = el("span", { hidden: state.rules.closed_statuses.includes(c.status) ? null : "hidden" }, cause, " ", resolved);
  status.addEventListener("change", () => { closing.hidden = !state.rules.closed_statuses.includes(status.value); });
  const message = el("p", { class: "muted", role: "status" });
  const run = (path, body) => api(`/v1/cases/${c.id}/${path}`, { body })
    .then((detail) => { renderCase(detail); loadQueue(); })
    .catch((e) => { message.textContent = e.message; message.className = "flag"; });
  return el("div", { class: "actions" },
    el("div", {}, owner, el("button", { type: "button", onclick: () => run("assign", { owner: owner.value.trim() || null }) }, "Assign")),
    el("div", {}, status, closing, el("button", { type: "button", onclick: () => run("status", {
      status: status.value, note: note.value.trim() || null, root_cause: cause.value.trim() || null,
      resolved: resolved.value === "" ? null : resolved.value === "true",
    }) }, "Change status")),
    note,
    el("div", {}, el("button", { type: "button", class: "secondary", onclick: () => note.value.trim() && run("comments", { note: note.value.trim() }) }, "Add note")),
    message,
  );
}

function renderCase(c) {
  state.current = c.id;
  $("case-title").textContent = `#${c.id} · ${c.status}`;
  const field = (k, v) => [el("dt", {}, k), el("dd", {}, v ?? "–")];
  const fields = el("dl", { class: "fields" },
    ...field("dataset", c.dataset), ...field("customer", customerLink(c.dataset, c.customer_id)),
    ...field("reason", `${c.reason}${c.topic ? ` · ${c.topic}` : ""}`), ...field("team", c.team),
    ...field("owner", c.owner), ...field("priority", c.priority),
    ...field("due", el("span", { class: c.overdue ? "flag" : null }, `${day(c.due_at)}${c.overdue ? " (overdue)" : ""}`)),
    ...field("escalated", c.escalated ? `yes, to ${c.escalation_owner || "–"}` : "no"),
    ...field("first response", day(c.first_response_at)), ...field("resolved at", day(c.resolved_at)),
    ...(c.root_cause ? [...field("root cause", c.root_cause), ...field("issue resolved", c.resolved ? "yes" : "no")] : []),
  );
  const events = el("ol", { class: "events" }, ...c.events.map((e) =>
    el("li", {}, el("span", { class: "muted" }, `${day(e.at)} `), e.kind,
      e.to_status ? ` ${e.from_status || ""} → ${e.to_status}` : "", e.actor ? ` · ${e.actor}` : "", e.note ? ` · ${e.note}` : "")));
  $("case").replaceChildren(fields, actions(c), el("h3", {}, "Feedback in this case"), feedbackList(c.feedback, "No feedback."), el("h3", {}, "History of changes"), events);
  if (c.history) renderHistory(c.dataset, c.history);
  else {
    $("history-title").textContent = "";
    $("history").replaceChildren(el("p", { class: "empty" }, "This case has no customer id."));
  }
  for (const row of document.querySelectorAll("#queue tr[data-id]")) row.classList.toggle("current", Number(row.dataset.id) === c.id);
}

function renderHistory(dataset, h) {
  $("history-title").textContent = `· ${h.customer_id}`;
  const cases = h.cases.length
    ? el("ul", { class: "events" }, ...h.cases.map((c) => el("li", {}, caseLink(c), ` ${c.reason} · ${c.status} · opened ${day(c.opened_at)}`, c.resolved === null ? "" : ` · resolved: ${c.resolved ? "yes" : "no"}`)))
    : el("p", { class: "empty" }, "No cases.");
  $("history").replaceChildren(el("h3", {}, "Cases"), cases, el("h3", {}, "Feedback (newest first)"), feedbackList(h.feedback, "No feedback."));
}

async function route() {
  const hash = window.location.hash.slice(1);
  try {
    if (hash.startsWith("case=")) renderCase(await api(`/v1/cases/${Number(hash.slice(5))}`));
    else if (hash.startsWith("customer=")) {
      // Both parts were encoded apart (encodeURIComponent turns "/" into %2F).
      const [dataset, customer] = hash.slice(9).split("/").map(decodeURIComponent);
      renderHistory(dataset, await api(`/v1/cases/customers/${encodeURIComponent(customer)}?${query({ dataset })}`));
    }
  } catch (error) {
    $("case").replaceChildren(el("p", { class: "empty", role: "alert" }, `Could not load: ${error.message}`));
  }
}

async function escalate() {
  const result = await api("/v1/cases/escalate", { method: "POST" });
  $("source").textContent = `${result.escalated.length} case(s) escalated`;
  await loadQueue();
}

document.addEventListener("DOMContentLoaded", () => {
  $("apply").addEventListener("click", () => loadQueue());
  $("more").addEventListener("click", () => loadQueue(true));
  $("escalate").addEventListener("click", () => escalate().catch((e) => { $("source").textContent = e.message; }));
  window.addEventListener("hashchange", route);
  loadMenus().then(() => loadQueue()).then(route)
    .catch((e) => $("queue").replaceChildren(el("p", { class: "empty", role: "alert" }, e.message)));
});
