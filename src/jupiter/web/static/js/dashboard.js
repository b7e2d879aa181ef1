// The dashboard at "/": chat, threat feed, community pulse, system status, scan findings
// (findings.js) and the error-rate chart, all fed by one reconnecting WebSocket (plus REST for
// the chart and the findings).
import {
  $, el, replaceChildren, formatAge, formatTime, featureInfo, breakerState, failureCount, safeUrl, FEATURES,
} from "./dom.js";
import { JupiterSocket } from "./socket.js";
import { toast } from "./toast.js";
import { requestJson, ClientBreaker } from "./api.js";
import { normaliseTimeseries, renderChart } from "./chart.js";
import { initFindings } from "./findings.js";
import { JupiterSession, describe, signInErrorText } from "./session.js";

const socket = new JupiterSocket();
const session = new JupiterSession();
const MAX_THREAT_ROWS = 200;
const STATUS_POLL_MS = 10000;
const CHART_POLL_MS = 30000;

// ---------------------------------------------------------------- connection
const connectionPill = $("#connection");
const healthPill = $("#health");
const banner = $("#reconnect-banner");
const bannerText = $("#reconnect-text");
let countdownTimer = null;

socket.addEventListener("statechange", (event) => {
  const { state, attempt, nextRetryAt } = event.detail;
  document.body.dataset.connection = state;
  connectionPill.className = `pill pill-${state}`;
  clearInterval(countdownTimer);
  if (state === "open") {
    connectionPill.textContent = "Live";
    banner.hidden = true;
    return;
  }
  if (state === "denied") {
    // Refused for want of a credential: no reconnect loop; the sign-in banner says what to do.
    connectionPill.textContent = "Sign in for live data";
    banner.hidden = true;
    return;
  }
  if (state === "reconnecting" && awaitingChat.size) {
    // Every unanswered question gets its own error and its own Retry.
    const unanswered = [...awaitingChat.values()];
    awaitingChat.clear();
    setThinking(false);
    for (const message of unanswered) {
      appendChat("assistant", "The connection dropped before Jupiter answered.", {
        isError: true,
        suggestion: "Press Retry once the connection is back.",
        retry: message,
      });
    }
  }
  if (state === "reconnecting") {
    // What the panels show may be out of date while the socket is down; say so.
    healthPill.className = "pill pill-unknown";
    healthPill.textContent = "Health: unknown (offline)";
    healthPill.dataset.health = "unknown";
  }
  if (state === "connecting") {
    connectionPill.textContent = "Connecting…";
    return;
  }
  connectionPill.textContent = "Reconnecting…";
  banner.hidden = false;
  const tick = () => {
    const wait = nextRetryAt ? Math.max(0, Math.ceil((nextRetryAt - Date.now()) / 1000)) : 0;
    bannerText.textContent =
      wait > 0
        ? `Connection lost. Reconnecting… (attempt ${attempt}, next try in ${wait} s)`
        : `Connection lost. Reconnecting… (attempt ${attempt})`;
  };
  tick();
  countdownTimer = setInterval(tick, 500);
});
$("#reconnect-now").addEventListener("click", () => socket.reconnectNow());

socket.on("open", ({ reconnected }) => {
  if (reconnected) toast("Live updates are back.", "success", { title: "Reconnected" });
  socket.send("request_status");
  socket.send("request_threats");
  socket.send("request_pulse");
  refreshChart();
});

socket.on("error", (data) => {
  // A protocol error from the server (bad input): show it, the socket stays up.
  toast(String(data.message || data.error || "The server refused a message."), "error");
});

// ---------------------------------------------------------------- chat
const chatLog = $("#chat-log");
const chatForm = $("#chat-form");
const chatInput = $("#chat-input");
const chatThinking = $("#chat-thinking");
const chatFeature = $("#chat-feature");
// Each question goes out with its own id, which the server echoes as reply_to: an answer or
// error is matched to the question it is about, so Retry resends that question even when
// others were sent after it.
const awaitingChat = new Map(); // id -> message, until its answer or error arrives
const retryButtons = new Map(); // id of a retried send -> the Retry button that sent it
let chatSequence = 0;
let lastChatMessage = null; // only for replies without reply_to (an older server)

function setThinking(on) {
  chatThinking.hidden = !on;
  $("#chat-panel").setAttribute("aria-busy", on ? "true" : "false");
}

/** The question a reply answers, and forget it: by reply_to, else the oldest unanswered. */
function settleChat(data) {
  const id = data && data.reply_to !== undefined && data.reply_to !== null ? String(data.reply_to) : null;
  let message = null;
  if (id !== null && awaitingChat.has(id)) {
    message = awaitingChat.get(id);
    awaitingChat.delete(id);
  } else if (id === null && awaitingChat.size) {
    const [oldest, text] = awaitingChat.entries().next().value;
    awaitingChat.delete(oldest);
    message = text;
  }
  const button = id !== null ? retryButtons.get(id) : null;
  if (button) {
    button.textContent = "Retried";
    retryButtons.delete(id);
  }
  setThinking(awaitingChat.size > 0);
  return message ?? lastChatMessage;
}

function appendChat(role, text, extra = {}) {
  const item = el(
    "li",
    { class: `msg msg-${role}${extra.isError ? " msg-error" : ""}`, dataset: { role } },
    el("span", { class: "msg-who", text: role === "user" ? "You" : "Jupiter" }),
    el("p", { class: "msg-text", text }),
  );
  if (extra.suggestion) {
    item.append(el("p", { class: "msg-suggestion" }, el("strong", { text: "Suggestion: " }), el("span", { text: extra.suggestion })));
  }
  if (extra.meta) item.append(el("p", { class: "msg-meta", text: extra.meta }));
  if (extra.retry) {
    const button = el("button", { type: "button", class: "btn btn-small btn-retry", text: "Retry" });
    button.addEventListener("click", () => {
      button.disabled = true;
      button.textContent = "Retrying…";
      sendChat(extra.retry, { retryButton: button });
    });
    item.append(button);
  }
  chatLog.querySelector(".chat-empty")?.remove();
  chatLog.append(item);
  chatLog.scrollTop = chatLog.scrollHeight;
  return item;
}

function sendChat(message, { retryButton = null } = {}) {
  const id = `chat-${++chatSequence}`;
  lastChatMessage = message;
  awaitingChat.set(id, message);
  if (retryButton) retryButtons.set(id, retryButton);
  else appendChat("user", message);
  setThinking(true);
  socket.send("chat_message", { message, id });
}

chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const message = chatInput.value.trim();
  if (!message) {
    chatInput.focus();
    return;
  }
  chatInput.value = "";
  sendChat(message);
});
chatInput.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter adds a line, as in most chat tools.
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    chatForm.requestSubmit();
  }
});

socket.on("chat_thinking", () => setThinking(true));
socket.on("chat_response", (data) => {
  const question = settleChat(data);
  const text = String(data.response ?? data.message ?? data.content ?? "");
  const meta = [data.provider, data.model].filter(Boolean).join(" · ");
  const error = data.error && typeof data.error === "object" ? data.error : null;
  if (error) {
    // The call failed: the error is the reply, the fallback text is shown beneath it.
    appendChat("assistant", String(error.message ?? "Jupiter could not answer."), {
      isError: true,
      suggestion: error.suggestion ? String(error.suggestion) : null,
      retry: error.recoverable !== false ? question : null,
      meta: text ? `Fallback: ${text}` : "",
    });
  } else if (data.is_error) {
    const disabled = data.degraded || (data.feature_status && data.feature_status.enabled === false);
    appendChat("assistant", text, {
      isError: true,
      suggestion: data.suggestion ? String(data.suggestion) : disabled ? "Chat is switched off for now; the other panels still work." : null,
      retry: !disabled && data.recoverable !== false ? question : null,
      meta,
    });
  } else {
    appendChat("assistant", text, { meta });
  }
  if (data.feature_status) showChatFeature(data.feature_status);
});
socket.on("chat_error", (data) => {
  const question = settleChat(data);
  const message = String(data.message ?? data.error ?? "Jupiter could not answer.");
  const recoverable = data.recoverable !== false;
  appendChat("assistant", message, {
    isError: true,
    suggestion: data.suggestion ? String(data.suggestion) : null,
    retry: recoverable && question ? question : null,
    meta: data.fallback ? `Fallback: ${data.fallback}` : "",
  });
  if (data.feature_status) showChatFeature(data.feature_status);
});

function featureCondition(entry) {
  if (!entry) return { key: "unknown", label: "unknown" };
  if (entry.enabled === false) return { key: "disabled", label: "Disabled" };
  const state = breakerState(entry);
  if (state === "open") return { key: "degraded", label: "Degraded (breaker open)" };
  if (state === "half_open") return { key: "degraded", label: "Degraded (recovering)" };
  return { key: "ok", label: "Available" };
}

function showChatFeature(entry) {
  // chat_response carries the chat feature alone or the whole map: accept both.
  const own = entry && entry.grok_chat ? entry.grok_chat : entry;
  if (own && typeof own === "object" && ("enabled" in own || "circuit_breaker" in own)) {
    const { key, label } = featureCondition(own);
    chatFeature.className = `badge badge-${key}`;
    chatFeature.textContent = `Chat: ${label}`;
    chatFeature.dataset.state = key;
  } else if (typeof entry === "string") {
    chatFeature.className = "badge badge-neutral";
    chatFeature.textContent = `Chat: ${entry}`;
  }
}

// ---------------------------------------------------------------- system status
const statusRows = $("#status-rows");
let previousFeatures = null;

function renderStatus(data) {
  const features = data.features || {};
  const names = Object.keys(features);
  const ordered = [
    ...FEATURES.map((f) => f.feature).filter((n) => names.includes(n)),
    ...names.filter((n) => !FEATURES.some((f) => f.feature === n)),
  ];
  replaceChildren(
    statusRows,
    ordered.length
      ? ordered.map((name) => {
          const entry = features[name];
          const info = featureInfo(name);
          const state = breakerState(entry);
          const condition = featureCondition(entry);
          return el(
            "tr",
            { dataset: { feature: name, breaker: state, condition: condition.key } },
            el("th", { scope: "row", text: info.label }),
            el("td", {}, el("span", { class: `badge badge-${condition.key}`, text: condition.label })),
            el("td", {}, el("span", { class: `badge breaker breaker-${state}`, text: state })),
            el("td", { class: "num", text: String(failureCount(entry)) }),
          );
        })
      : el("tr", {}, el("td", { colspan: 4, class: "muted", text: "No features reported." })),
  );
  const health = String(data.health || "unknown");
  healthPill.className = `pill pill-health-${health}`;
  healthPill.textContent = `Health: ${health}`;
  healthPill.dataset.health = health;
  const stamp = data.timestamp ? formatTime(data.timestamp) : formatTime(Date.now());
  $("#status-updated").textContent = `updated ${stamp}`;
  const errors = data.errors || {};
  if (errors.total_errors !== undefined) {
    $("#error-summary").textContent =
      `${errors.total_errors} error${errors.total_errors === 1 ? "" : "s"} in the last ${errors.window_minutes ?? 60} min` +
      (errors.error_rate !== undefined ? ` · ${Number(errors.error_rate).toFixed(2)} per min` : "");
  }
  if (features.grok_chat) showChatFeature(features.grok_chat);
  announceChanges(previousFeatures, features);
  previousFeatures = features;
}

function announceChanges(before, after) {
  if (!before) return;
  for (const [name, entry] of Object.entries(after)) {
    const old = before[name];
    if (!old) continue;
    const label = featureInfo(name).label;
    const was = featureCondition(old).key;
    const now = featureCondition(entry).key;
    if (was === now) continue;
    if (now === "disabled") toast(`${label} was switched off; a fallback is served.`, "warning", { title: `${label} is disabled` });
    else if (now === "degraded") toast(`${label} is failing; Jupiter serves a fallback until it recovers.`, "warning", { title: `${label} is degraded` });
    else if (now === "ok" && was === "disabled") toast(`${label} is switched on again.`, "success", { title: `${label} is back` });
    else if (now === "ok") toast(`${label} is answering normally again.`, "success", { title: `${label} recovered` });
  }
}

socket.on("status_update", (data) => {
  renderStatus(data);
  scheduleChartRefresh();
});
setInterval(() => {
  if (socket.state === "open") socket.send("request_status");
}, STATUS_POLL_MS);

// ---------------------------------------------------------------- threat feed
// The socket brings the newest items of every source; a filter asks the server
// (GET /api/threats?source=&severity=) so it covers every stored item, not just those loaded.
const threatsPanel = $("#threats-panel");
const threatRows = $("#threats-rows");
const sourceFilter = $("#filter-source");
const severityFilter = $("#filter-severity");
const SEVERITIES = ["critical", "high", "medium", "low", "info"];
const threatBreaker = new ClientBreaker({ failureThreshold: 3, openMs: 15000 });
let latest = { items: [], count: 0 }; // the last threats_update
let filtered = null; // the last filtered answer, while a filter is chosen
let filterRequest = 0;

function threatField(item, ...names) {
  for (const name of names) if (item[name] !== undefined && item[name] !== null && item[name] !== "") return item[name];
  return "";
}

function severityOf(item) {
  return String(threatField(item, "severity", "priority") || "unknown").toLowerCase();
}

function fillSelect(select, values, allLabel) {
  const current = select.value;
  const all = current && !values.includes(current) ? [...values, current] : values;
  replaceChildren(select, el("option", { value: "", text: allLabel }), all.map((v) => el("option", { value: v, text: v })));
  select.value = current;
}

function threatRow(item) {
  const id = String(threatField(item, "id", "cve_id", "cve"));
  const refs = Array.isArray(item.references) ? item.references : [];
  const candidates = [item.url, item.link, ...refs.map((r) => (typeof r === "string" ? r : r && r.url))];
  const link = candidates.map(safeUrl).find(Boolean);
  const date = threatField(item, "added", "published", "date_added", "dateAdded", "date", "modified", "updated");
  const sev = severityOf(item);
  return el(
    "tr",
    { dataset: { source: String(item.source ?? ""), severity: sev } },
    // data-label names each cell where the narrow layout stacks them without the header row.
    el("td", { class: "mono threat-id" }, link ? el("a", { href: link, rel: "noopener noreferrer", target: "_blank", text: id }) : id),
    el("td", { class: "threat-title", text: String(threatField(item, "title", "name", "description")) }),
    el("td", { class: "threat-severity" }, el("span", { class: `badge sev sev-${sev.replace(/[^a-z]/g, "")}`, text: sev })),
    el("td", { class: "threat-source", dataset: { label: "Source" }, text: String(item.source ?? "") }),
    el("td", { class: "nowrap threat-date", dataset: { label: "Date" }, text: date ? String(date).slice(0, 10) : "" }),
  );
}

function renderThreats() {
  const view = filtered || latest;
  const items = view.items.slice(0, MAX_THREAT_ROWS);
  const total = Math.max(Number(view.count) || 0, view.items.length);
  const rows = items.map(threatRow);
  if (!rows.length) {
    const text = filtered ? "No items match the filters." : "No threat data yet.";
    rows.push(el("tr", {}, el("td", { colspan: 5, class: "muted", text })));
  } else if (total > items.length) {
    rows.push(el("tr", {}, el("td", { colspan: 5, class: "muted", text: `Showing the newest ${items.length} of ${total}; narrow them with the filters.` })));
  }
  replaceChildren(threatRows, rows);
  const count = $("#threats-count");
  count.textContent = filtered ? `${total} matching` : `${total} item${total === 1 ? "" : "s"}`;
  count.dataset.count = String(total);
}

async function applyThreatFilters() {
  const source = sourceFilter.value;
  const severity = severityFilter.value;
  const ticket = ++filterRequest;
  if (!source && !severity) {
    filtered = null;
    renderThreats();
    return;
  }
  const query = new URLSearchParams({ limit: String(MAX_THREAT_ROWS) });
  if (source) query.set("source", source);
  if (severity) query.set("severity", severity);
  threatsPanel.setAttribute("aria-busy", "true");
  try {
    const answer = await threatBreaker.call(() => requestJson(`/api/threats?${query}`));
    if (ticket !== filterRequest) return; // a newer choice is already on its way
    filtered = { items: Array.isArray(answer.items) ? answer.items : [], count: answer.count ?? 0 };
    showNotice($("#threats-message"), "");
  } catch (error) {
    if (ticket !== filterRequest) return;
    // Filter what is loaded rather than show nothing; say so.
    const items = latest.items.filter(
      (item) => (!source || String(item.source) === source) && (!severity || severityOf(item) === severity),
    );
    filtered = { items, count: items.length };
    showNotice($("#threats-message"), `Filtering only the loaded items: ${error.message}`, "warning");
  } finally {
    if (ticket === filterRequest) threatsPanel.setAttribute("aria-busy", "false");
  }
  renderThreats();
}

sourceFilter.addEventListener("change", applyThreatFilters);
severityFilter.addEventListener("change", applyThreatFilters);
$("#threats-refresh").addEventListener("click", () => socket.send("request_threats"));

function showNotice(node, text, kind = "info") {
  if (!text) {
    node.hidden = true;
    node.textContent = "";
    return;
  }
  node.hidden = false;
  node.className = `notice notice-${kind}`;
  node.textContent = text;
}

function renderThreatSources(sources) {
  const entries = Object.entries(sources && typeof sources === "object" ? sources : {});
  replaceChildren(
    $("#threats-sources"),
    entries.length ? el("span", { class: "muted small", text: "Sources: " }) : null,
    entries.map(([name, info]) => {
      const status = String((info && info.status) || "live").toLowerCase();
      const age = info && info.age_seconds !== null && info.age_seconds !== undefined && status !== "live" ? ` · ${formatAge(info.age_seconds)}` : "";
      return el("span", { class: `badge badge-${status}`, dataset: { source: name, status }, text: `${name} ${status}${age}` });
    }),
  );
}

socket.on("threats_loading", () => {
  threatsPanel.setAttribute("aria-busy", "true");
  threatsPanel.classList.add("loading");
  if (!latest.items.length) {
    replaceChildren(threatRows, el("tr", { class: "loading-row" }, el("td", { colspan: 5, text: "Loading threat intelligence…" })));
  }
  showNotice($("#threats-message"), "Loading threat intelligence…");
});
socket.on("threats_update", (data) => {
  threatsPanel.setAttribute("aria-busy", "false");
  threatsPanel.classList.remove("loading");
  latest = { items: Array.isArray(data.items) ? data.items : [], count: data.count ?? 0 };
  const sourceNames = new Set([
    ...Object.keys(data.sources && typeof data.sources === "object" ? data.sources : {}),
    ...latest.items.map((i) => String(i.source ?? "")).filter(Boolean),
  ]);
  fillSelect(sourceFilter, [...sourceNames].sort(), "All sources");
  const extra = [...new Set(latest.items.map(severityOf))].filter((s) => !SEVERITIES.includes(s) && s !== "unknown");
  fillSelect(severityFilter, [...SEVERITIES, ...extra], "All severities");
  renderThreatSources(data.sources);
  const stale = $("#threats-stale");
  if (data.stale) {
    // The age of what is stale: an offline source loaded once (ATT&CK) is old but not stale.
    const staleAges = Object.values(data.sources && typeof data.sources === "object" ? data.sources : {})
      .filter((info) => info && info.status === "stale" && info.age_seconds !== null && info.age_seconds !== undefined)
      .map((info) => Number(info.age_seconds));
    const age = staleAges.length ? Math.max(...staleAges) : data.age_seconds;
    stale.hidden = false;
    stale.textContent = age !== undefined && age !== null ? `stale · ${formatAge(age)}` : "stale";
    stale.title = "A source failed; this is its last good data.";
  } else {
    stale.hidden = true;
  }
  const problem = data.success === false ? String(data.error?.message ?? data.error ?? data.message ?? "The threat sources could not be reached.") : "";
  const suggestion = data.suggestion ? ` ${data.suggestion}` : "";
  showNotice($("#threats-message"), problem ? problem + suggestion : "", "warning");
  if (sourceFilter.value || severityFilter.value) applyThreatFilters();
  else renderThreats();
});
socket.on("threats_error", (data) => {
  threatsPanel.setAttribute("aria-busy", "false");
  threatsPanel.classList.remove("loading");
  const message = String(data.message ?? data.error?.message ?? data.error ?? "Threat intelligence is unavailable.");
  showNotice($("#threats-message"), data.suggestion ? `${message} ${data.suggestion}` : message, "error");
  renderThreats();
});

// ---------------------------------------------------------------- community pulse
function renderPulse(data) {
  const items = Array.isArray(data.items) ? data.items : [];
  const sources = data.sources && typeof data.sources === "object" ? data.sources : {};
  // Items name their feed by the same key as "sources" (the feed URL, query string redacted).
  const feedOf = (item) => String(item.feed ?? item.source ?? "unknown");
  const names = [...new Set([...Object.keys(sources), ...items.map(feedOf)])];
  const cards = names.map((name) => {
    const info = sources[name] || {};
    const status = String(info.status || "live").toLowerCase();
    const own = items.filter((i) => feedOf(i) === name).slice(0, 6);
    const detail = [];
    if (info.age_seconds !== undefined && info.age_seconds !== null && status !== "live") detail.push(formatAge(info.age_seconds));
    if ((status === "error" || status === "stale") && (info.error || info.message)) detail.push(String(info.error || info.message));
    if (status === "pending") detail.push("not fetched yet");
    return el(
      "article",
      { class: `pulse-source pulse-${status}`, dataset: { source: name, status } },
      el(
        "header",
        {},
        el("h3", { text: String(info.title || info.name || name) }),
        el("span", { class: `badge badge-${status}`, text: status }),
      ),
      detail.length ? el("p", { class: "muted small", text: detail.join(" · ") }) : null,
      own.length
        ? el(
            "ul",
            { class: "pulse-items" },
            own.map((item) => {
              const title = String(item.title ?? "(untitled)");
              const link = safeUrl(item.link ?? item.url);
              return el(
                "li",
                {},
                link ? el("a", { href: link, rel: "noopener noreferrer", target: "_blank", text: title }) : el("span", { text: title }),
                item.published ? el("span", { class: "muted small", text: ` · ${formatTime(item.published, true)}` }) : null,
              );
            }),
          )
        : el("p", { class: "muted small", text: "No items." }),
    );
  });
  replaceChildren($("#pulse-sources"), cards.length ? cards : el("p", { class: "muted", text: "No feeds configured." }));
  const trending = Array.isArray(data.trending) ? data.trending : [];
  replaceChildren(
    $("#pulse-trending"),
    trending.length ? el("span", { class: "muted small", text: "Trending: " }) : null,
    trending.slice(0, 12).map((t) => {
      const topic = typeof t === "string" ? t : String(t.topic ?? t.term ?? t.name ?? "");
      const sourcesCount = t && typeof t === "object" ? (Array.isArray(t.sources) ? t.sources.length : t.sources) : undefined;
      const label = sourcesCount !== undefined ? `${topic} · ${sourcesCount} sources` : topic;
      return el("span", { class: "chip", title: t && t.mentions ? `${t.mentions} mentions` : null, text: label });
    }),
  );
  const problem = data.error ? String(data.error.message ?? data.error) : data.success === false || data.status === "empty" ? String(data.message ?? "") : "";
  const suggestion = data.suggestion || data.error?.suggestion;
  showNotice($("#pulse-message"), problem ? `${problem}${suggestion ? ` ${suggestion}` : ""}` : "", "warning");
}

socket.on("pulse_update", renderPulse);
socket.on("pulse_error", (data) => {
  const message = String(data.message ?? data.error?.message ?? data.error ?? "Community pulse is unavailable.");
  showNotice($("#pulse-message"), data.suggestion ? `${message} ${data.suggestion}` : message, "error");
});
$("#pulse-refresh").addEventListener("click", () => socket.send("request_pulse"));

// ---------------------------------------------------------------- error-rate chart
const chartBox = $("#error-chart");
const chartNote = $("#error-chart-note");
const chartBreaker = new ClientBreaker({ failureThreshold: 3, openMs: 20000 });
let chartMinutes = 60;
let chartData = null;
let chartTimer = null;
let chartInFlight = false;

async function refreshChart() {
  if (chartInFlight) return;
  chartInFlight = true;
  try {
    const payload = await chartBreaker.call(() => requestJson(`/api/errors/timeseries?minutes=${chartMinutes}`));
    chartData = normaliseTimeseries(payload, chartMinutes);
    renderChart(chartBox, chartData, { minutes: chartData.times.length || chartMinutes });
    chartNote.textContent = chartData.capped
      ? `The server keeps ${chartData.times.length} minutes of errors; showing all of them. Updated ${formatTime(Date.now())}`
      : `Updated ${formatTime(Date.now())}`;
  } catch (error) {
    chartNote.textContent = chartData
      ? `Showing the last good data: ${error.message}`
      : `The error chart is unavailable: ${error.message}`;
  } finally {
    chartInFlight = false;
  }
}

function scheduleChartRefresh() {
  // Status bursts arrive together; one fetch per burst is enough.
  if (chartTimer) return;
  chartTimer = setTimeout(() => {
    chartTimer = null;
    refreshChart();
  }, 1000);
}

for (const button of document.querySelectorAll(".segmented .seg")) {
  button.addEventListener("click", () => {
    chartMinutes = Number(button.dataset.minutes);
    for (const other of document.querySelectorAll(".segmented .seg")) {
      other.setAttribute("aria-pressed", other === button ? "true" : "false");
    }
    refreshChart();
  });
}
setInterval(refreshChart, CHART_POLL_MS);
if ("ResizeObserver" in window) {
  let lastWidth = 0;
  new ResizeObserver(() => {
    const width = chartBox.clientWidth;
    if (chartData && Math.abs(width - lastWidth) > 8) {
      lastWidth = width;
      renderChart(chartBox, chartData, { minutes: chartData.times.length || chartMinutes });
    }
  }).observe(chartBox);
}

// ---------------------------------------------------------------- signing in
// Anonymous visitors may read while Jupiter listens on loopback only; what needs more (chat
// that reaches an LLM, importing scans, or every read when Jupiter is open to a network) says
// so and offers the sign-in dialog. Signing in sets an HttpOnly cookie; the token is not kept.
const whoami = $("#whoami");
const signinOpen = $("#signin-open");
const signoutButton = $("#signout");
const signinDialog = $("#signin-dialog");
const signinForm = $("#signin-form");
const signinToken = $("#signin-token");
const signinError = $("#signin-error");
const authBanner = $("#auth-banner");

function openSignIn(reason = "") {
  signinError.hidden = !reason;
  signinError.textContent = reason;
  signinToken.value = "";
  if (!signinDialog.open) signinDialog.showModal();
  signinToken.focus();
}

function signInButton(label) {
  const button = el("button", { type: "button", class: "btn btn-small btn-primary", text: label });
  button.addEventListener("click", () => openSignIn());
  return button;
}

function showAuthNote(node, text) {
  node.hidden = !text;
  replaceChildren(node, text ? [el("span", { text }), signInButton(session.signedIn ? "Switch token" : "Sign in")] : []);
}

function showAccess(info) {
  whoami.textContent = describe(info);
  whoami.className = `pill ${info && info.authenticated ? "pill-open" : "pill-unknown"}`;
  whoami.dataset.role = (info && info.role) || "none";
  whoami.dataset.authenticated = String(Boolean(info && info.authenticated));
  signinOpen.hidden = Boolean(info && info.authenticated);
  signoutButton.hidden = !(info && info.authenticated);
  if (!info) return;
  const canRead = session.can("read");
  authBanner.hidden = canRead;
  $("#auth-banner-text").textContent = info.session_ended
    ? "Your session has ended (it expired, or its token was rotated or revoked). Sign in again to see Jupiter's data."
    : "This Jupiter shows its data to signed-in users only.";
  const canChat = session.can("chat");
  chatInput.disabled = !canChat;
  $("#chat-send").disabled = !canChat;
  showAuthNote(
    $("#chat-auth-note"),
    canChat ? "" : `Chat here reaches an LLM, which needs the ${session.needs("chat")} role.`,
  );
  const canImport = session.can("scan_import");
  findings.setUploadAllowed(canImport);
  showAuthNote($("#upload-auth-note"), canImport ? "" : `Importing a scan needs the ${session.needs("scan_import")} role.`);
}

session.on(({ info, changed }) => {
  showAccess(info);
  if (!changed) return;
  // The socket's handshake carries the cookie: connect again as the new identity.
  if (session.can("read")) socket.restart();
  findings.refresh();
  refreshChart();
});

signinOpen.addEventListener("click", () => openSignIn());
$("#auth-banner-signin").addEventListener("click", () => openSignIn());
$("#signin-cancel").addEventListener("click", () => signinDialog.close());
signinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = signinToken.value.trim();
  if (!token) return;
  const submit = $("#signin-submit");
  submit.disabled = true;
  try {
    const info = await session.signIn(token);
    signinToken.value = "";
    signinDialog.close();
    toast(`You can now do what the ${info.role} role allows.`, "success", { title: `Signed in as ${info.name}` });
  } catch (error) {
    signinError.hidden = false;
    signinError.textContent = signInErrorText(error);
    signinToken.select();
  } finally {
    submit.disabled = false;
  }
});
signoutButton.addEventListener("click", async () => {
  try {
    await session.signOut();
    toast("The session cookie is deleted.", "info", { title: "Signed out" });
  } catch (error) {
    toast(error.message, "error", { title: "Sign out failed" });
  }
});

window.addEventListener("jupiter:session-ended", () => session.refresh().catch(() => null));
socket.addEventListener("denied", () => {
  // The server refused (or ended) the socket: find out why and show it. A changed identity
  // reconnects through the session's change handler; nothing here retries a refusal.
  session.refresh().catch(() => null);
});

// ---------------------------------------------------------------- start
const findings = initFindings(socket);
window.jupiter = { socket, findings, session }; // handy in the console and for the browser tests
session
  .refresh()
  .catch(() => null) // unreachable: the socket's reconnect loop says so
  .finally(() => {
    if (!session.info || session.can("read")) socket.connect();
    else socket.setState("denied");
  });
refreshChart();
