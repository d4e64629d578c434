// The console's page: plain DOM over the console's HTTP API (docs/console.md), hash routing,
// no build step and nothing fetched but the console's own paths. Every value shown is set as
// text, never as HTML: bodies, headers and subjects are whatever a sender chose.
"use strict";

const POLL_MS = 2000;
const CHART_REFRESH_MS = 10000;
// Live updates ask for entries newer than the newest shown, less this margin: the index may
// take an entry a little after a newer one, and rows inside the margin get their delivery
// status refreshed.
const LIVE_MARGIN_SECONDS = 60;
const PAGE_SIZE = 50;
const VERDICT_COLORS = { accept: "#2e7d32", reject: "#c62828", failed: "#ef6c00" };
const SERIES_COLORS = ["#1565c0", "#6a1b9a", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593", "#f9a825"];

let stopView = () => {};

// --- small helpers --------------------------------------------------------------------------

function h(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "testid") node.dataset.testid = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
  append(node, children);
  return node;
}

function pad(number) {
  return String(number).padStart(2, "0");
}

function formatTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const date = new Date(seconds * 1000);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "unknown size";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// <input type="datetime-local"> value to Unix seconds, or null.
function inputSeconds(value) {
  if (!value) return null;
  const moment = new Date(value).getTime();
  return Number.isNaN(moment) ? null : moment / 1000;
}

function say(text) {
  document.getElementById("status").textContent = text;
}

class ApiError extends Error {
  constructor(status, reason, detail) {
    super(detail || reason);
    this.status = status;
    this.reason = reason;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    window.location.assign("/login");
    throw new ApiError(401, "unauthorized", "signed out");
  }
  const document = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, document.error || "error", document.detail || "");
  return document;
}

function query(parameters) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function failure(error) {
  return h("p", { class: "error", role: "alert" }, `The console could not answer: ${error.message}`);
}

// A repeating task that stops with the view that started it.
function every(milliseconds, task) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    try {
      await task();
    } catch (error) {
      say(`Live update failed: ${error.message}`);
    }
    if (!stopped) timer = window.setTimeout(run, milliseconds);
  };
  timer = window.setTimeout(run, milliseconds);
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}

function field(label, control) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

function select(id, testid, label, values) {
  const control = h("select", { id, testid, name: id }, h("option", { value: "" }, "any"),
    values.map((value) => h("option", { value }, value)));
  return field(label, control);
}

function definitions(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function badge(kind, text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

// --- the request list -----------------------------------------------------------------------

const REQUEST_FILTERS = ["source", "provider", "verdict", "reason", "type", "status", "since", "until", "q"];

function requestFilters(form) {
  const value = (name) => form.elements.namedItem(`filter-${name}`).value.trim();
  return {
    source: value("source"),
    provider: value("provider"),
    verdict: value("verdict"),
    reason: value("reason"),
    type: value("type"),
    status: value("status"),
    since: inputSeconds(value("since")),
    until: inputSeconds(value("until")),
    q: value("q"),
  };
}

function requestRow(item) {
  const link = h("a", { href: `#/requests/${encodeURIComponent(item.id)}` }, formatTime(item.time));
  return h("tr", { testid: "request-row", "data-id": item.id, "data-time": item.time },
    h("td", {}, link),
    h("td", {}, item.source),
    h("td", {}, item.provider || "—"),
    h("td", {}, badge(item.verdict, item.verdict), item.reason ? ` ${item.reason}` : ""),
    h("td", { class: "number" }, item.status),
    h("td", {}, item.event_type || ""),
    h("td", { class: "subject" }, item.subject || ""),
    h("td", {}, item.delivery ? badge(item.delivery, item.delivery) : "—"),
    h("td", { class: "number" }, formatSize(item.size)));
}

async function showRequests(view) {
  const values = await api("/api/v1/filters").catch(() => ({}));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter requests" },
    select("filter-source", "filter-source", "Source", values.sources || []),
    select("filter-provider", "filter-provider", "Provider", values.providers || []),
    select("filter-verdict", "filter-verdict", "Verdict", ["accept", "reject", "failed"]),
    select("filter-reason", "filter-reason", "Reason", values.reasons || []),
    select("filter-type", "filter-type", "Event type", values.types || []),
    field("Status", h("input", { id: "filter-status", name: "filter-status", testid: "filter-status", type: "number",
      min: 100, max: 599, inputmode: "numeric" })),
    field("Since", h("input", { id: "filter-since", name: "filter-since", testid: "filter-since",
      type: "datetime-local", step: 1 })),
    field("Until", h("input", { id: "filter-until", name: "filter-until", testid: "filter-until",
      type: "datetime-local", step: 1 })),
    field("Search (ingest id, event id or subject)", h("input", { id: "filter-q", name: "filter-q", testid: "search",
      type: "search", autocomplete: "off" })));
  const body = h("tbody", {});
  const empty = h("p", { class: "empty", hidden: true }, "No request matches.");
  const more = h("button", { type: "button", hidden: true }, "Older requests");
  const table = h("table", { class: "list" },
    h("caption", {}, "Requests the gateway answered, newest first; new ones appear as they arrive."),
    h("thead", {}, h("tr", {}, ["Time", "Source", "Provider", "Verdict", "Status", "Event type", "Subject",
      "Delivery", "Size"].map((name) => h("th", { scope: "col" }, name)))),
    body);
  view.replaceChildren(h("h1", {}, "Requests"), form, h("div", { class: "scroll" }, table), empty, more);

  let rows = new Map();
  let next = null;
  let generation = 0;

  const place = (items, { atTop }) => {
    const fresh = [];
    for (const item of items) {
      const row = requestRow(item);
      const shown = rows.get(item.id);
      if (shown) shown.replaceWith(row);
      else fresh.push(row);
      rows.set(item.id, row);
    }
    if (atTop) body.prepend(...fresh);
    else body.append(...fresh);
    empty.hidden = rows.size > 0;
  };

  const load = async () => {
    const mine = ++generation;
    const page = await api(`/api/v1/requests${query({ ...requestFilters(form), limit: PAGE_SIZE })}`);
    if (mine !== generation) return;
    rows = new Map();
    body.replaceChildren();
    place(page.items, { atTop: false });
    next = page.next;
    more.hidden = !next;
  };

  const newest = () => {
    let time = null;
    for (const row of rows.values()) time = Math.max(time ?? 0, Number(row.dataset.time));
    return time;
  };

  const refresh = async () => {
    const mine = generation;
    const latest = newest();
    const after = latest === null ? null : latest - LIVE_MARGIN_SECONDS;
    const page = await api(`/api/v1/requests${query({ ...requestFilters(form), after, limit: 500 })}`);
    if (mine !== generation) return;
    // Oldest first, so that each new row goes on top of the ones before it.
    place([...page.items].reverse().filter((item) => !rows.has(item.id)), { atTop: true });
    place(page.items.filter((item) => rows.has(item.id)), { atTop: false });
  };

  more.addEventListener("click", async () => {
    const page = await api(`/api/v1/requests${query({ ...requestFilters(form), limit: PAGE_SIZE, before: next })}`);
    place(page.items, { atTop: false });
    next = page.next;
    more.hidden = !next;
  });
  let typing = null;
  form.addEventListener("input", (event) => {
    window.clearTimeout(typing);
    const delay = event.target.type === "search" ? 300 : 0;
    typing = window.setTimeout(() => load().catch((error) => view.append(failure(error))), delay);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load().catch((error) => view.append(failure(error)));
  });
  await load();
  return every(POLL_MS, refresh);
}

// --- one request ----------------------------------------------------------------------------

function headersTable(headers) {
  const names = Object.keys(headers || {}).sort();
  return h("table", { class: "headers", testid: "request-headers" },
    h("caption", {}, "Headers as kept: secrets, signatures and API keys are redacted."),
    h("tbody", {}, names.map((name) => h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, headers[name])))));
}

function bodyView(id, body) {
  const download = h("a", { href: `/api/v1/requests/${encodeURIComponent(id)}/body`, download: "" }, "Download the body");
  const origin = body.source === "refused_prefix" ? "The first bytes the gateway kept of a refused request." : null;
  const facts = [body.content_type || "no content type", body.file_type, formatSize(body.size)]
    .filter(Boolean).join(", ");
  const parts = [h("p", { class: "body-facts" }, facts, body.truncated ? " (cut: only the start is shown)" : "")];
  if (origin) parts.push(h("p", {}, origin));
  if (body.kind === "none") parts.push(h("p", {}, "No body is kept for this request."));
  else if (body.kind === "binary") parts.push(h("p", {}, `Binary: ${body.file_type || "unknown file type"}, ` +
    `${formatSize(body.size)}.`), download);
  else parts.push(h("pre", { class: `code body-${body.kind}`, tabindex: 0 }, body.text ?? ""), download);
  return h("div", { testid: "request-body", "data-kind": body.kind }, parts);
}

function explanationView(explanation) {
  return h("div", { testid: "verdict-explanation", class: "explanation" },
    h("p", { class: "explanation-title" }, explanation.title),
    h("p", {}, explanation.text),
    explanation.hints && explanation.hints.length ? h("ul", {}, explanation.hints.map((hint) => h("li", {}, hint))) : null);
}

function timelineView(deliveries, deadLetters) {
  const bySink = new Map();
  for (const report of deliveries) {
    if (!bySink.has(report.sink)) bySink.set(report.sink, []);
    bySink.get(report.sink).push(report);
  }
  const normalizerLetters = deadLetters.filter((letter) => letter.stage === "normalizer");
  const parts = [];
  if (normalizerLetters.length) {
    parts.push(h("p", { class: "error" }, "The normalizer dead-lettered this request: ",
      normalizerLetters.map((letter) => `${letter.reason} (${letter.detail || "no detail"})`).join("; "), ". ",
      h("a", { href: "#/dead-letters" }, "Dead letters")));
  }
  if (!bySink.size && !normalizerLetters.length) parts.push(h("p", {}, "No sink has reported on this event yet."));
  for (const [sink, reports] of bySink) {
    parts.push(h("section", { class: "sink", "aria-label": `Sink ${sink}` }, h("h3", {}, `Sink ${sink}`),
      h("ol", { class: "timeline" }, reports.map((report) =>
        h("li", { testid: "delivery-entry", "data-sink": report.sink, "data-outcome": report.outcome },
          h("time", {}, formatTime(report.time)), " ", badge(report.outcome, report.outcome),
          ` attempt ${report.attempt}`,
          report.reason ? `, ${report.reason}` : "",
          report.detail ? `: ${report.detail}` : "",
          report.dead_letter_topic ? ` (dead letter in ${report.dead_letter_topic})` : "")))));
  }
  return h("div", { testid: "delivery-timeline" }, parts);
}

function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), children);
}

async function showRequest(view, id) {
  const render = async () => {
    const detail = await api(`/api/v1/requests/${encodeURIComponent(id)}`);
    const request = detail.request;
    return h("article", { testid: "request-detail", "data-id": id },
      h("p", {}, h("a", { href: "#/requests" }, "← All requests")),
      h("h1", {}, `${request.method} /webhooks/${request.source}`, " ", badge(request.verdict, request.verdict)),
      definitions([
        ["Time", formatTime(request.time)], ["Source", request.source], ["Provider", request.provider],
        ["Status", request.status], ["Reason", request.reason], ["Size", formatSize(request.size)],
        ["Client", request.client_addr], ["Ingest id", request.ingest_id],
        ["Event id", detail.event ? detail.event.id : null], ["Took", `${request.duration_ms} ms`]]),
      section("Verdict", explanationView(detail.explanation)),
      section("Delivery", timelineView(detail.deliveries, detail.dead_letters)),
      section("CloudEvent", detail.event
        // The server's text, not JSON.stringify(detail.event): JavaScript numbers would round long integers.
        ? h("pre", { class: "code", testid: "cloudevent", tabindex: 0 }, detail.event_text)
        : h("p", { testid: "cloudevent", "data-empty": "" }, "No CloudEvent was made from this request.")),
      section("Trace context", detail.trace
        ? h("div", { testid: "trace" }, definitions([["traceparent", detail.trace.traceparent],
          ["tracestate", detail.trace.tracestate]]))
        : h("p", { testid: "trace", "data-empty": "" }, "The request carried no traceparent.")),
      section("Headers", headersTable(request.headers)),
      section("Body", bodyView(id, detail.body)));
  };
  view.replaceChildren(await render());
  // Deliveries arrive after the page opens (and again after a replay): keep it current.
  return every(POLL_MS, async () => {
    const fresh = await render();
    const shown = view.querySelector("[data-testid=delivery-timeline]");
    if (shown) shown.replaceWith(fresh.querySelector("[data-testid=delivery-timeline]"));
    const event = view.querySelector("[data-testid=cloudevent]");
    if (event && event.dataset.empty !== undefined) view.replaceChildren(fresh);
  });
}

// --- dead letters and replays ---------------------------------------------------------------

function letterFilters(form) {
  const value = (name) => form.elements.namedItem(`letters-${name}`).value.trim();
  return {
    stage: value("stage"),
    reason: value("reason"),
    source: value("source"),
    since: inputSeconds(value("since")),
    until: inputSeconds(value("until")),
  };
}

function countText(answer) {
  const reasons = Object.entries(answer.by_reason || {}).map(([reason, count]) => `${reason}: ${count}`).join(", ");
  return `${answer.selected} dead ${answer.selected === 1 ? "letter" : "letters"} would be replayed` +
    (reasons ? ` (dead-lettered for ${reasons})` : "") +
    (answer.still_failing ? `; ${answer.still_failing} would fail again` : "") + ".";
}

function resultText(answer) {
  return `Replayed ${answer.replayed} of ${answer.selected}` +
    (answer.still_failing ? `; ${answer.still_failing} still failing` : "") + ".";
}

// The replay panel: a dry run first, its count shown, then the real replay on confirmation.
function replayPanel(title, request, { editable = null } = {}) {
  const dialog = h("section", { class: "panel replay", role: "dialog", "aria-modal": "false", "aria-label": title });
  const count = h("p", { testid: "replay-dry-run-count", "aria-live": "polite" });
  const result = h("p", { testid: "replay-result", "aria-live": "polite" });
  const confirm = h("button", { type: "button", testid: "replay-confirm", disabled: true }, "Replay");
  const cancel = h("button", { type: "button", class: "secondary", onclick: () => dialog.remove() }, "Close");
  const editor = editable === null ? null
    : h("textarea", { id: "replay-body", testid: "replay-body", rows: 12, spellcheck: "false" }, editable);
  const answer = () => request(editor ? editor.value : null);
  const dryRun = async () => {
    confirm.disabled = true;
    count.textContent = "Counting…";
    try {
      const counted = await answer()(true);
      count.textContent = countText(counted);
      confirm.disabled = counted.selected === 0;
    } catch (error) {
      count.textContent = `The dry run failed: ${error.message}`;
    }
  };
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    result.textContent = "Replaying…";
    try {
      result.textContent = resultText(await answer()(false));
      say(result.textContent);
    } catch (error) {
      result.textContent = `The replay failed: ${error.message}`;
    }
  });
  const check = h("button", { type: "button", class: "secondary", onclick: dryRun }, "Count again (dry run)");
  append(dialog, [h("h2", {}, title),
    editor ? [h("label", { for: "replay-body" }, "Corrected body (replayed flagged as edited; the original dead letter is kept)"),
      editor] : null,
    count, h("div", { class: "actions" }, check, confirm, cancel), result]);
  if (editor) {
    // A changed body is counted again before it can be replayed.
    let editing = null;
    editor.addEventListener("input", () => {
      confirm.disabled = true;
      count.textContent = "The body changed: counting again…";
      window.clearTimeout(editing);
      editing = window.setTimeout(dryRun, 500);
    });
  }
  dryRun();
  return dialog;
}

function replayer(payload) {
  return (body) => (dryRun) => api("/api/v1/replays", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...payload, dry_run: dryRun, ...(body === null ? {} : { body }) }),
  });
}

async function originalBody(letter) {
  if (!letter.request_id) return "";
  try {
    const detail = await api(`/api/v1/requests/${encodeURIComponent(letter.request_id)}`);
    return detail.body && detail.body.text !== null ? detail.body.text : "";
  } catch {
    return "";
  }
}

function letterRow(letter, openPanel) {
  const replayOne = h("button", { type: "button", testid: "replay-one",
    onclick: () => openPanel(replayPanel(`Replay dead letter ${letter.id}`, replayer({ dead_letters: [letter.id] }))) },
  "Replay");
  const replayEdited = h("button", { type: "button", class: "secondary", testid: "replay-edit",
    onclick: async () => openPanel(replayPanel(`Replay ${letter.id} with a corrected body`,
      replayer({ dead_letters: [letter.id] }), { editable: await originalBody(letter) })) },
  "Replay with a corrected body");
  return h("tr", { testid: "dead-letter-row", "data-id": letter.id },
    h("td", {}, formatTime(letter.time)),
    h("td", {}, letter.stage),
    h("td", {}, letter.reason),
    h("td", { class: "detail" }, letter.detail || ""),
    h("td", {}, letter.source || ""),
    h("td", {}, letter.request_id
      ? h("a", { href: `#/requests/${encodeURIComponent(letter.request_id)}` }, letter.request_id) : "—"),
    h("td", {}, letter.edited ? badge("edited", "edited") : ""),
    h("td", { class: "actions" }, replayOne, replayEdited));
}

async function showDeadLetters(view) {
  const values = await api("/api/v1/filters").catch(() => ({}));
  const stages = h("datalist", { id: "stages" }, h("option", { value: "normalizer" }));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter dead letters" },
    field("Stage (normalizer or sink:<name>)", h("input", { id: "letters-stage", name: "letters-stage",
      list: "stages", autocomplete: "off" })),
    field("Reason", h("input", { id: "letters-reason", name: "letters-reason", autocomplete: "off" })),
    select("letters-source", null, "Source", values.sources || []),
    field("Since", h("input", { id: "letters-since", name: "letters-since", type: "datetime-local", step: 1 })),
    field("Until", h("input", { id: "letters-until", name: "letters-until", type: "datetime-local", step: 1 })),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Show")), stages);
  const panels = h("div", {});
  const openPanel = (panel) => {
    panels.replaceChildren(panel);
    panel.querySelector("textarea, button")?.focus();
  };
  const replayFiltered = h("button", { type: "button", testid: "replay-filtered", onclick: () => {
    const { stage, reason, source, since, until } = letterFilters(form);
    const chosen = Object.fromEntries(Object.entries({ stage, reason, source, since, until })
      .filter(([, value]) => value !== null && value !== ""));
    openPanel(replayPanel("Replay every dead letter the filter shows", replayer({ filter: chosen })));
  } }, "Replay all shown…");
  const body = h("tbody", {});
  const empty = h("p", { class: "empty", hidden: true }, "No dead letter matches.");
  const table = h("table", { class: "list" },
    h("caption", {}, "Dead letters of the normalizer and of every sink, newest first."),
    h("thead", {}, h("tr", {}, ["Time", "Stage", "Reason", "Detail", "Source", "Request", "Edited", "Replay"]
      .map((name) => h("th", { scope: "col" }, name)))), body);
  view.replaceChildren(h("h1", {}, "Dead letters"), form, h("div", { class: "actions" }, replayFiltered), panels,
    h("div", { class: "scroll" }, table), empty);
  const load = async () => {
    const page = await api(`/api/v1/dead-letters${query({ ...letterFilters(form), limit: 200 })}`);
    for (const letter of page.items) {
      if (!stages.querySelector(`option[value="${CSS.escape(letter.stage)}"]`)) {
        stages.append(h("option", { value: letter.stage }));
      }
    }
    body.replaceChildren(...page.items.map((letter) => letterRow(letter, openPanel)));
    empty.hidden = page.items.length > 0;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load().catch((error) => view.append(failure(error)));
  });
  form.addEventListener("change", () => load().catch((error) => view.append(failure(error))));
  await load();
  return () => {};
}

// --- charts ---------------------------------------------------------------------------------

const CHART = { width: 760, height: 240, left: 48, right: 175, top: 16, bottom: 36 };

// Stacked bars, one per minute, split by `key` (verdict or source); `colors` maps each key.
function stackedChart(title, rows, key, colors) {
  const minutes = [...new Set(rows.map((row) => row.minute))].sort((a, b) => a - b);
  const keys = [...new Set(rows.map((row) => row[key]))].sort();
  const totals = new Map(minutes.map((minute) => [minute, 0]));
  for (const row of rows) totals.set(row.minute, totals.get(row.minute) + row.count);
  const highest = Math.max(1, ...totals.values());
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const plotHeight = CHART.height - CHART.top - CHART.bottom;
  const slot = minutes.length ? plotWidth / minutes.length : plotWidth;
  const barWidth = Math.max(2, Math.min(24, slot * 0.8));
  const scale = (count) => (count / highest) * plotHeight;
  const chart = svg("svg", { viewBox: `0 0 ${CHART.width} ${CHART.height}`, role: "img", class: "chart",
    "aria-label": title });
  chart.append(svg("title", {}, title));
  for (const tick of [0, Math.ceil(highest / 2), highest]) {
    const y = CHART.top + plotHeight - scale(tick);
    chart.append(svg("line", { x1: CHART.left, x2: CHART.left + plotWidth, y1: y, y2: y, class: "grid" }),
      svg("text", { x: CHART.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, tick));
  }
  minutes.forEach((minute, index) => {
    let base = CHART.top + plotHeight;
    const x = CHART.left + index * slot + (slot - barWidth) / 2;
    for (const name of keys) {
      const count = rows.filter((row) => row.minute === minute && row[key] === name)
        .reduce((sum, row) => sum + row.count, 0);
      if (!count) continue;
      const height = scale(count);
      base -= height;
      chart.append(svg("rect", { x, y: base, width: barWidth, height, fill: colors(name) },
        svg("title", {}, `${formatTime(minute)}: ${count} ${name}`)));
    }
  });
  const labelEvery = Math.max(1, Math.ceil(minutes.length / 6));
  minutes.forEach((minute, index) => {
    if (index % labelEvery) return;
    const date = new Date(minute * 1000);
    chart.append(svg("text", { x: CHART.left + index * slot + slot / 2, y: CHART.height - 14, "text-anchor": "middle",
      class: "tick" }, `${pad(date.getHours())}:${pad(date.getMinutes())}`));
  });
  keys.forEach((name, index) => {
    const y = CHART.top + index * 20;
    chart.append(svg("rect", { x: CHART.width - CHART.right + 16, y, width: 12, height: 12, fill: colors(name) }),
      svg("text", { x: CHART.width - CHART.right + 34, y: y + 11, class: "legend" }, name));
  });
  if (!minutes.length) {
    chart.append(svg("text", { x: CHART.left + plotWidth / 2, y: CHART.top + plotHeight / 2, "text-anchor": "middle",
      class: "legend" }, "No requests in this window"));
  }
  return h("figure", {}, chart, h("figcaption", {}, title));
}

function lagChart(lag) {
  const title = "Consumer lag per stage (records not yet processed)";
  const barHeight = 22;
  const height = Math.max(1, lag.length) * (barHeight + 10) + 20;
  const label = 220;
  const width = CHART.width;
  const highest = Math.max(1, ...lag.map((row) => row.lag));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart", "aria-label": title });
  chart.append(svg("title", {}, title));
  lag.forEach((row, index) => {
    const y = 10 + index * (barHeight + 10);
    const length = (row.lag / highest) * (width - label - 80);
    chart.append(svg("text", { x: label - 8, y: y + 15, "text-anchor": "end", class: "legend" }, row.stage),
      svg("rect", { x: label, y, width: Math.max(1, length), height: barHeight,
        fill: row.lag ? "#ef6c00" : "#2e7d32" }, svg("title", {}, `${row.stage} (${row.group}): ${row.lag}`)),
      svg("text", { x: label + Math.max(1, length) + 6, y: y + 15, class: "legend" }, row.lag));
  });
  if (!lag.length) chart.append(svg("text", { x: 20, y: 24, class: "legend" }, "No consumer group has committed yet"));
  return h("figure", {}, chart, h("figcaption", {}, title));
}

async function showCharts(view) {
  const minutes = h("select", { id: "chart-minutes" },
    [15, 60, 360, 1440].map((value) => h("option", { value, selected: value === 60 }, `last ${value} minutes`)));
  const requests = h("div", { testid: "chart-requests", class: "charts" });
  const lag = h("div", { testid: "chart-lag", class: "charts" });
  view.replaceChildren(h("h1", {}, "Charts"), h("form", { class: "filters" }, field("Window", minutes)),
    section("Requests per minute", requests), section("Lag", lag));
  const sourceColors = new Map();
  const sourceColor = (name) => {
    if (!sourceColors.has(name)) sourceColors.set(name, SERIES_COLORS[sourceColors.size % SERIES_COLORS.length]);
    return sourceColors.get(name);
  };
  const draw = async () => {
    const stats = await api(`/api/v1/stats${query({ minutes: minutes.value })}`);
    const rows = stats.requests_per_minute;
    requests.replaceChildren(
      stackedChart("Requests per minute by verdict", rows, "verdict", (name) => VERDICT_COLORS[name] || "#757575"),
      stackedChart("Requests per minute by source", rows, "source", sourceColor));
    requests.dataset.minutes = String(new Set(rows.map((row) => row.minute)).size);
    lag.replaceChildren(lagChart(stats.lag));
    lag.dataset.stages = String(stats.lag.length);
  };
  minutes.addEventListener("change", () => draw().catch((error) => view.append(failure(error))));
  await draw();
  return every(CHART_REFRESH_MS, draw);
}

// --- routing --------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/requests\/(.+)$/, (view, match) => showRequest(view, decodeURIComponent(match[1])), "nav-requests"],
  [/^#\/dead-letters$/, showDeadLetters, "nav-dead-letters"],
  [/^#\/charts$/, showCharts, "nav-charts"],
  [/^#\/requests$/, showRequests, "nav-requests"],
];

async function route() {
  stopView();
  stopView = () => {};
  const hash = window.location.hash || "#/requests";
  const [pattern, show, nav] = ROUTES.find(([pattern]) => pattern.test(hash)) || ROUTES[ROUTES.length - 1];
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.testid === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = document.getElementById("view");
  view.setAttribute("aria-busy", "true");
  const mine = {};
  route.current = mine;
  try {
    const stop = await show(view, hash.match(pattern));
    if (route.current === mine) stopView = stop;
    else stop();
  } catch (error) {
    if (error.status !== 401) view.replaceChildren(failure(error));
  } finally {
    view.removeAttribute("aria-busy");
  }
}

window.addEventListener("hashchange", () => {
  route();
  document.getElementById("view").focus({ preventScroll: true });
});
window.addEventListener("DOMContentLoaded", route);
