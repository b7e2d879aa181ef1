// The Admin Console at "/admin". Signing in trades the admin token for the same HttpOnly
// session cookie the dashboard uses (POST /api/session); the page never keeps the token, never
// puts it in a URL, and sends the session's CSRF token with every action (api.js).
// The console applies the dashboard's own patterns: its reads go through client-side breakers
// and keep the last good data, so a failing or disabled feature adds no new failures here.
import { $, el, replaceChildren, formatTime, featureInfo, breakerState, failureCount, FEATURES } from "./dom.js";
import { requestJson, ClientBreaker, ApiError } from "./api.js";
import { JupiterSocket } from "./socket.js";
import { toast } from "./toast.js";
import { SCAN_FORMATS, uploadScan, scanErrorBox, importSummary } from "./scans.js";
import { JupiterSession, signInErrorText } from "./session.js";

const session = new JupiterSession();
const POLL_MS = 10000;
const breakers = {
  features: new ClientBreaker(),
  stats: new ClientBreaker(),
  errors: new ClientBreaker(),
  scans: new ClientBreaker(),
};
const SECTION_LABELS = { features: "Features", stats: "Error stats", errors: "Recent errors", scans: "Scans" };
const SCANS_SHOWN = 100;
let socket = null;
let pollTimer = null;
let recentErrors = [];
let features = {};
let busy = false;

/** Whether the browser's session is an admin's (what the console needs). */
function isAdmin() {
  return session.signedIn && session.role === "admin";
}

/** Every console request: the session cookie (and CSRF token); a 401 signs the console out. */
async function adminRequest(url, options = {}) {
  try {
    return await requestJson(url, options);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showSignIn("Your session has ended (it expired, or the token was rotated or revoked). Sign in again.");
      session.refresh().catch(() => null);
    }
    throw error;
  }
}

// ---------------------------------------------------------------- sign in / out
const signinSection = $("#signin");
const consoleMain = $("#console");
const signinError = $("#signin-error");
const adminState = $("#admin-state");

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("#token-input");
  const candidate = input.value.trim();
  if (!candidate) return;
  const button = $("#signin-button");
  button.disabled = true;
  signinError.hidden = true;
  try {
    const info = await session.signIn(candidate);
    input.value = "";
    if (info.role !== "admin") {
      await session.signOut();
      showSignIn(`That token is ${info.name}'s, with the ${info.role} role; the Admin Console needs an admin token.`);
      return;
    }
    showConsole();
  } catch (error) {
    signinError.hidden = false;
    signinError.textContent = signInErrorText(error);
    input.focus();
    input.select();
  } finally {
    button.disabled = false;
  }
});

function showSignIn(message) {
  clearInterval(pollTimer);
  pollTimer = null;
  consoleMain.hidden = true;
  signinSection.hidden = false;
  adminState.textContent = "Signed out";
  adminState.className = "pill pill-unknown";
  $("#connection").hidden = true;
  signinError.hidden = !message;
  signinError.textContent = message || "";
  $("#token-input").focus();
}
$("#signout").addEventListener("click", async () => {
  try {
    await session.signOut();
  } finally {
    showSignIn();
  }
});

function showConsole() {
  signinSection.hidden = true;
  consoleMain.hidden = false;
  signinError.hidden = true;
  adminState.textContent = `Signed in as ${session.info?.name ?? "admin"}`;
  adminState.className = "pill pill-open";
  refreshAll();
  clearInterval(pollTimer);
  pollTimer = setInterval(refreshAll, POLL_MS);
  connectSocket();
}

// ---------------------------------------------------------------- confirmation
const dialog = $("#confirm-dialog");

function confirmAction(title, text, confirmLabel) {
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("#confirm-cancel").focus();
  });
}

// ---------------------------------------------------------------- section health
// Each section says whether its data is fresh, failing (last good data shown) or paused by its
// client-side breaker; a banner above the console names the paused ones.
function showSectionHealth(section, noteId, error = null, okText = "") {
  const note = $(noteId);
  const breaker = breakers[section];
  note.dataset.failures = String(breaker.failures);
  if (!error) {
    note.dataset.state = "ok";
    note.className = "muted small";
    note.textContent = okText;
  } else if (breaker.state === "open") {
    const seconds = Math.max(1, Math.ceil(breaker.retryAfterMs / 1000));
    note.dataset.state = "paused";
    note.className = "small note-warning";
    note.textContent = `Paused after ${breaker.failures} failed calls; trying again in ${seconds} s. Showing the last good data.`;
  } else {
    note.dataset.state = "failing";
    note.className = "small note-warning";
    note.textContent = `Showing the last good data (${error.message})`;
  }
  const paused = Object.keys(breakers).filter((name) => breakers[name].state === "open");
  const banner = $("#console-degraded");
  banner.hidden = paused.length === 0;
  banner.textContent = paused.length
    ? `Degraded: ${paused.map((name) => SECTION_LABELS[name]).join(", ")} paused after repeated failures. ` +
      "The console stops calling for a moment and retries by itself; what is shown may be out of date."
    : "";
}

// ---------------------------------------------------------------- features and breakers
function renderFeatures() {
  // Live updates rebuild the rows; keep what the operator is typing and where the focus is.
  const typed = Object.fromEntries([...document.querySelectorAll("#feature-list input.reason")].map((i) => [i.id, i.value]));
  const focused = document.activeElement && document.activeElement.closest("#feature-list") ? document.activeElement : null;
  const focusKey = focused ? focused.id || `${focused.dataset.action}:${focused.dataset.feature}` : null;
  const names = Object.keys(features);
  const ordered = [
    ...FEATURES.map((f) => f.feature).filter((n) => names.includes(n)),
    ...names.filter((n) => !FEATURES.some((f) => f.feature === n)),
  ];
  const rows = ordered.map((name) => {
    const entry = features[name] || {};
    const info = featureInfo(name);
    const alias = entry.alias || info.key;
    const state = breakerState(entry);
    const enabled = entry.enabled !== false;
    const reasonId = `reason-${alias}`;
    const reason = el("input", {
      type: "text",
      id: reasonId,
      class: "reason",
      maxlength: 300,
      placeholder: enabled ? "Reason for disabling" : "Reason for enabling",
    });
    const toggle = el("button", {
      type: "button",
      class: enabled ? "btn btn-small btn-danger" : "btn btn-small btn-primary",
      text: enabled ? "Disable" : "Enable",
      dataset: { action: enabled ? "disable" : "enable", feature: alias },
      "aria-label": `${enabled ? "Disable" : "Enable"} ${entry.label || info.label}`,
    });
    toggle.addEventListener("click", () => setFeature(alias, enabled ? "disable" : "enable", reason));
    const reset = el("button", {
      type: "button",
      class: "btn btn-small",
      text: "Reset breaker",
      dataset: { action: "reset", feature: alias },
      "aria-label": `Reset the circuit breaker of ${entry.label || info.label}`,
    });
    reset.addEventListener("click", () => resetBreaker(alias, entry.label || info.label));
    const forceOpen = el("button", {
      type: "button",
      class: "btn btn-small btn-danger",
      text: "Force open",
      disabled: state === "open",
      dataset: { action: "force-open", feature: alias },
      "aria-label": `Force open the circuit breaker of ${entry.label || info.label}`,
    });
    forceOpen.addEventListener("click", () => forceOpenBreaker(alias, entry.label || info.label));
    return el(
      "div",
      { class: "feature-row", dataset: { feature: name, alias, breaker: state, enabled: String(enabled) } },
      el(
        "div",
        {},
        el("h3", { text: entry.label || info.label }),
        el(
          "div",
          { class: "meta" },
          el("span", { class: `badge ${enabled ? "badge-ok" : "badge-disabled"}`, text: enabled ? "enabled" : "disabled" }),
          el("span", { class: `badge breaker breaker-${state}`, text: `breaker ${state}` }),
          el("span", { class: "muted small", text: `${failureCount(entry)} failures` }),
          !enabled && entry.reason ? el("span", { class: "muted small", text: `reason: ${entry.reason}` }) : null,
        ),
      ),
      el(
        "div",
        { class: "controls" },
        el("label", { for: reasonId, class: "visually-hidden", text: `Reason for the change to ${entry.label || info.label}` }),
        reason,
        toggle,
        reset,
        forceOpen,
      ),
    );
  });
  replaceChildren($("#feature-list"), rows.length ? rows : el("p", { class: "muted", text: "Loading features…" }));
  for (const [id, value] of Object.entries(typed)) {
    const input = document.getElementById(id);
    if (input) input.value = value;
  }
  if (focusKey) {
    const [action, feature] = focusKey.split(":");
    const target =
      document.getElementById(focusKey) ||
      document.querySelector(`#feature-list [data-feature="${CSS.escape(feature || "")}"][data-action="${CSS.escape(action)}"]`) ||
      document.querySelector(`#feature-list [data-feature="${CSS.escape(feature || "")}"][data-action]`);
    if (target && !target.disabled) target.focus();
  }
}

async function loadFeatures() {
  try {
    const payload = await breakers.features.call(() => adminRequest("/api/feature-status"));
    features = payload && payload.features ? payload.features : payload || {};
    if (!busy) renderFeatures();
    showSectionHealth("features", "#features-note", null, `updated ${formatTime(Date.now())}`);
  } catch (error) {
    showSectionHealth("features", "#features-note", error);
  }
}

async function runAction(label, fn) {
  busy = true;
  try {
    await fn();
    toast(label, "success");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      toast(`${error.message}${error.suggestion ? ` ${error.suggestion}` : ""}`, "error", { title: "Action failed" });
    }
  } finally {
    busy = false;
    await loadFeatures();
  }
}

function setFeature(alias, action, reasonInput) {
  const reason = reasonInput.value.trim() || `${action}d from the Admin Console`;
  return runAction(`${featureInfo(alias).label} ${action}d.`, () =>
    adminRequest(`/api/features/${encodeURIComponent(alias)}/${action}`, { method: "POST", body: { reason } }),
  );
}

async function resetBreaker(alias, label) {
  const ok = await confirmAction(
    `Reset the ${label} breaker?`,
    `The breaker closes and calls to ${label} go through again at once, even if the upstream is still failing.`,
    "Reset breaker",
  );
  if (!ok) return;
  await runAction(`${label} breaker reset.`, () =>
    adminRequest(`/api/reset-circuit-breaker/${encodeURIComponent(alias)}`, { method: "POST" }),
  );
}

async function forceOpenBreaker(alias, label) {
  const ok = await confirmAction(
    `Force open the ${label} breaker?`,
    `Every call to ${label} fails fast and the fallback is served until the breaker is reset or its timeout passes.`,
    "Force open",
  );
  if (!ok) return;
  await runAction(`${label} breaker forced open.`, () =>
    adminRequest(`/api/breakers/${encodeURIComponent(alias)}/force-open`, { method: "POST" }),
  );
}

// ---------------------------------------------------------------- error stats and recent errors
function renderStats(stats) {
  const cards = [
    ["Errors in window", stats.total_errors ?? 0],
    ["Per minute", Number(stats.error_rate ?? 0).toFixed(2)],
    ["Window", `${stats.window_minutes ?? 60} min`],
  ];
  replaceChildren(
    $("#stats"),
    cards.map(([label, value]) => el("div", { class: "stat" }, el("div", { class: "value", text: String(value) }), el("div", { class: "label", text: label }))),
  );
  const byType = Object.entries(stats.errors_by_type || {}).sort((a, b) => b[1] - a[1]);
  replaceChildren(
    $("#stats-types"),
    byType.length
      ? byType.map(([type, count]) => el("tr", {}, el("td", { class: "mono", text: type }), el("td", { class: "num", text: String(count) })))
      : el("tr", {}, el("td", { colspan: 2, class: "muted", text: "No errors in the window." })),
  );
}

async function loadStats() {
  try {
    const stats = await breakers.stats.call(() => adminRequest("/api/error-stats"));
    renderStats(stats || {});
    showSectionHealth("stats", "#stats-note", null, `updated ${formatTime(Date.now())}`);
  } catch (error) {
    showSectionHealth("stats", "#stats-note", error);
  }
}

function renderErrors() {
  const filter = $("#error-type-filter");
  const types = [...new Set(recentErrors.map((e) => String(e.type)))].sort();
  const current = filter.value;
  replaceChildren(filter, el("option", { value: "", text: "All types" }), types.map((t) => el("option", { value: t, text: t })));
  filter.value = types.includes(current) ? current : "";
  const shown = recentErrors.filter((e) => !filter.value || String(e.type) === filter.value);
  replaceChildren(
    $("#recent-errors"),
    shown.length
      ? shown.map((e) => {
          const context = e.context && Object.keys(e.context).length ? JSON.stringify(e.context, null, 2) : "";
          return el(
            "tr",
            { dataset: { type: String(e.type) } },
            el("td", { class: "nowrap small", text: formatTime(e.timestamp, true) }),
            el("td", { class: "mono", text: String(e.type) }),
            el("td", {}, el("div", { class: "error-message", text: String(e.message ?? "") }), context ? el("pre", { class: "context", text: context }) : null),
          );
        })
      : el("tr", {}, el("td", { colspan: 3, class: "muted", text: recentErrors.length ? "No errors of this type." : "No recent errors." })),
  );
}
$("#error-type-filter").addEventListener("change", renderErrors);

async function loadErrors() {
  try {
    const payload = await breakers.errors.call(() => adminRequest("/api/recent-errors?limit=100"));
    recentErrors = Array.isArray(payload) ? payload : (payload && payload.errors) || [];
    renderErrors();
    showSectionHealth("errors", "#recent-note", null, `${recentErrors.length} shown · updated ${formatTime(Date.now())}`);
  } catch (error) {
    showSectionHealth("errors", "#recent-note", error);
  }
}
$("#errors-refresh").addEventListener("click", () => {
  loadErrors();
  loadStats();
});

// ---------------------------------------------------------------- scans
// Listing needs viewer, importing analyst, deleting admin: the console's admin session has all.
let scanList = { items: [], total: 0 };

function scanRow(scan) {
  const id = String(scan.id);
  const summary = scan.summary || {};
  const kev = Number(summary.kev_exploited ?? 0);
  const name = String(scan.source_name || `scan ${id}`);
  const remove = el("button", {
    type: "button",
    class: "btn btn-small btn-danger",
    text: "Delete",
    dataset: { action: "delete-scan", scan: id },
    "aria-label": `Delete scan ${id} (${name})`,
  });
  remove.addEventListener("click", () => deleteScan(scan));
  return el(
    "tr",
    { dataset: { scan: id, tool: String(scan.tool ?? "") } },
    el("th", { scope: "row" }, el("span", { class: "mono", text: `#${id}` }), el("span", { class: "scan-name", text: name })),
    // data-label names each cell where the narrow layout stacks them without the header row.
    el("td", { dataset: { label: "Tool" }, text: [scan.tool, scan.tool_version].filter(Boolean).join(" ") }),
    el("td", { class: "mono", dataset: { label: "Format" }, text: String(scan.format ?? "") }),
    el("td", { class: "scan-asset", dataset: { label: "Asset" }, text: String(scan.asset ?? "") }),
    el(
      "td",
      { class: "num", dataset: { label: "Findings" } },
      el("span", { text: String(scan.finding_count ?? summary.findings ?? 0) }),
      kev ? el("span", { class: "badge kev-badge", text: `${kev} exploited` }) : null,
    ),
    el("td", { class: "nowrap small", dataset: { label: "Imported" }, text: formatTime(scan.imported_at, true) }),
    el("td", {}, remove),
  );
}

function renderScans() {
  const items = scanList.items;
  replaceChildren(
    $("#scan-rows"),
    items.length ? items.map(scanRow) : el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No scans imported yet." })),
  );
  const total = Number(scanList.total ?? items.length);
  $("#scans-count").textContent = `${total} scan${total === 1 ? "" : "s"}`;
  $("#scans-count").dataset.count = String(total);
}

async function loadScans() {
  try {
    const payload = await breakers.scans.call(() => adminRequest(`/api/scans?limit=${SCANS_SHOWN}`));
    scanList = { items: (payload && payload.items) || [], total: payload ? payload.total : 0 };
    const focusedScan = document.activeElement?.closest?.("#scan-rows tr")?.dataset.scan;
    renderScans();
    if (focusedScan) document.querySelector(`#scan-rows tr[data-scan="${CSS.escape(focusedScan)}"] button`)?.focus();
    const more = scanList.total > scanList.items.length ? ` · showing the newest ${scanList.items.length}` : "";
    showSectionHealth("scans", "#scans-note", null, `updated ${formatTime(Date.now())}${more}`);
  } catch (error) {
    showSectionHealth("scans", "#scans-note", error);
  }
}
$("#scans-refresh").addEventListener("click", loadScans);

async function deleteScan(scan) {
  const name = String(scan.source_name || `scan ${scan.id}`);
  const count = Number(scan.finding_count ?? 0);
  const ok = await confirmAction(
    `Delete scan #${scan.id}?`,
    `${name} (${scan.tool || scan.format}) and the ${count} finding${count === 1 ? "" : "s"} only it reported are deleted. Findings other scans also reported stay.`,
    "Delete scan",
  );
  if (!ok) return;
  try {
    const outcome = await adminRequest(`/api/scans/${encodeURIComponent(scan.id)}`, { method: "DELETE" });
    const removed = Number(outcome?.deleted_findings ?? 0);
    toast(`${removed} finding${removed === 1 ? "" : "s"} deleted with it.`, "success", { title: `Scan #${scan.id} deleted` });
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      toast(`${error.message}${error.suggestion ? ` ${error.suggestion}` : ""}`, "error", { title: "Delete failed" });
    }
  } finally {
    await loadScans();
  }
}

replaceChildren($("#scan-format"), SCAN_FORMATS.map((f) => el("option", { value: f.value, text: f.label })));

$("#scan-import-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const fileInput = $("#scan-file");
  const file = fileInput.files && fileInput.files[0];
  if (!file) {
    fileInput.focus();
    return;
  }
  const button = $("#scan-import-button");
  const result = $("#scan-import-result");
  const errorBox = $("#scan-import-error");
  button.disabled = true;
  errorBox.hidden = true;
  result.textContent = `Importing ${file.name}…`;
  try {
    const summary = await uploadScan(file, {
      format: $("#scan-format").value,
      asset: $("#scan-asset").value.trim(),
    });
    result.textContent = `Imported ${file.name} as scan #${summary.scan_id}: ${importSummary(summary)}`;
    event.target.reset();
  } catch (error) {
    result.textContent = "";
    errorBox.hidden = false;
    const status = error.status ? ` (HTTP ${error.status})` : "";
    replaceChildren(
      errorBox,
      scanErrorBox({ title: `${file.name} was not imported${status}`, message: error.message, suggestion: error.suggestion, location: error.location }),
    );
  } finally {
    button.disabled = false;
    loadScans();
  }
});

function refreshAll() {
  if (!isAdmin()) return;
  loadFeatures();
  loadStats();
  loadErrors();
  loadScans();
}

// ---------------------------------------------------------------- live updates
function connectSocket() {
  if (socket) {
    socket.restart(); // signed in again: the handshake carries the new cookie
    return;
  }
  socket = new JupiterSocket();
  const pill = $("#connection");
  pill.hidden = false;
  socket.addEventListener("statechange", (event) => {
    const { state } = event.detail;
    pill.className = `pill pill-${state}`;
    pill.textContent =
      state === "open" ? "Live" : state === "connecting" ? "Connecting…" : state === "denied" ? "Signed out" : "Reconnecting…";
  });
  socket.on("status_update", (data) => {
    if (!isAdmin()) return;
    if (data.features) {
      features = data.features;
      if (!busy) renderFeatures();
    }
    if (data.errors) renderStats(data.errors);
  });
  socket.on("open", () => socket.send("request_status"));
  for (const event of ["scan_complete", "scan_deleted", "scan_kev_refreshed"]) {
    socket.on(event, () => {
      if (isAdmin()) loadScans();
    });
  }
  socket.connect();
}

// ---------------------------------------------------------------- start
window.jupiterAdmin = { showSignIn, session };
session
  .refresh()
  .then((info) => {
    if (isAdmin()) showConsole();
    else if (info && info.authenticated) showSignIn(`Signed in as ${info.name} (${info.role}); the Admin Console needs an admin token.`);
    else showSignIn(info && info.session_ended ? "Your session has ended. Sign in again." : "");
  })
  .catch(() => showSignIn("Jupiter cannot be reached right now; try again in a moment."));
