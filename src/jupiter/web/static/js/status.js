// The public status page at "/status": one GET /api/status/summary, refreshed every 30 s.
import { $, el, svg, replaceChildren, formatDuration, formatTime } from "./dom.js";
import { requestJson, ClientBreaker } from "./api.js";

const REFRESH_MS = 30000;
// Like Statuspage, phones get the last 30 days so that each bar stays wide enough to read.
const narrow = window.matchMedia("(max-width: 600px)");
let lastSummary = null;
const breaker = new ClientBreaker({ failureThreshold: 2, openMs: 60000 });

const STATUS_LABELS = {
  operational: "Operational",
  degraded_performance: "Degraded performance",
  partial_outage: "Partial outage",
  major_outage: "Major outage",
  under_maintenance: "Under maintenance",
  no_data: "No data",
};

function dayTitle(day) {
  const date = new Date(`${day.date}T00:00:00Z`).toLocaleDateString(undefined, {
    year: "numeric", month: "short", day: "numeric", timeZone: "UTC",
  });
  if (day.status === "no_data") return `${date}: no data`;
  const parts = [`${date}: ${STATUS_LABELS[day.status] || day.status}`];
  if (day.uptime_percent !== null && day.uptime_percent !== undefined) parts.push(`${day.uptime_percent}% uptime`);
  if (day.outage_seconds) parts.push(`${formatDuration(day.outage_seconds)} down`);
  if (day.maintenance_seconds) parts.push(`${formatDuration(day.maintenance_seconds)} maintenance`);
  return parts.join(" · ");
}

function shownDays(component) {
  const days = component.days || [];
  return narrow.matches ? days.slice(-30) : days;
}

function uptimeBars(component) {
  const days = shownDays(component);
  const gap = 2;
  const barWidth = 6;
  const width = days.length * (barWidth + gap) - gap;
  const bad = days.filter((d) => d.status !== "operational" && d.status !== "no_data").length;
  const chart = svg("svg", {
    class: "bars",
    viewBox: `0 0 ${Math.max(width, 1)} 34`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": `${component.name}: last ${days.length} days, ${component.uptime_percent}% uptime over ${(component.days || []).length} days, ${bad} day${bad === 1 ? "" : "s"} with problems`,
  });
  days.forEach((day, i) => {
    const rect = svg("rect", {
      class: `bar bar-${day.status}`,
      x: i * (barWidth + gap),
      y: 0,
      width: barWidth,
      height: 34,
      rx: 1.5,
      dataset: { date: day.date, status: day.status },
    });
    rect.append(svg("title", { text: dayTitle(day) }));
    chart.append(rect);
  });
  return chart;
}

function renderComponents(summary) {
  const windowDays = narrow.matches ? Math.min(30, summary.window_days || 90) : summary.window_days || 90;
  replaceChildren(
    $("#components"),
    (summary.components || []).map((c) =>
      el(
        "article",
        { class: "component", dataset: { component: c.id, status: c.status } },
        el(
          "div",
          { class: "component-head" },
          el("h2", { text: c.name }),
          el("span", { class: `st st-${c.status}`, text: c.status_label || STATUS_LABELS[c.status] || c.status }),
        ),
        uptimeBars(c),
        el(
          "div",
          { class: "bars-legend" },
          el("span", { text: `${windowDays} days ago` }),
          el("span", { class: "line", "aria-hidden": "true" }),
          el("span", { class: "uptime", text: narrow.matches ? `${c.uptime_percent}% (90 d)` : `${c.uptime_percent}% uptime` }),
          el("span", { class: "line", "aria-hidden": "true" }),
          el("span", { text: "Today" }),
        ),
      ),
    ),
  );
}

function renderIncidents(summary) {
  const incidents = summary.incidents || [];
  replaceChildren(
    $("#incidents"),
    incidents.length
      ? incidents.map((incident) =>
          el(
            "article",
            { class: `incident impact-${incident.impact} incident-${incident.status}`, dataset: { id: incident.id, kind: incident.kind, status: incident.status } },
            el("h3", { text: incident.status === "ongoing" ? `${incident.title} (ongoing)` : incident.title }),
            el(
              "p",
              { class: "when" },
              el("span", { text: `Started ${formatTime(incident.started_at, true)}` }),
              incident.ended_at
                ? el("span", { class: "incident-end", text: ` · ended ${formatTime(incident.ended_at, true)}` })
                : el("span", { class: "incident-end", text: " · still ongoing" }),
              el("span", { text: ` · ${formatDuration(incident.duration_seconds)}` }),
            ),
            el(
              "ol",
              {},
              (incident.updates || []).map((u) =>
                el("li", {}, el("strong", { text: `${u.status}` }), el("span", { text: ` — ${u.message} ` }), el("span", { class: "muted small", text: formatTime(u.at, true) })),
              ),
            ),
          ),
        )
      : el("p", { class: "muted", text: "No incidents in the last 90 days." }),
  );
}

async function refresh() {
  try {
    const summary = await breaker.call(() => requestJson("/api/status/summary"));
    const overall = $("#overall");
    overall.className = `overall indicator-${summary.status.indicator}`;
    overall.dataset.indicator = summary.status.indicator;
    overall.textContent = summary.status.description;
    lastSummary = summary;
    renderComponents(summary);
    renderIncidents(summary);
    const box = $("#status-error");
    box.hidden = summary.history_available !== false;
    box.textContent = "The incident history is unavailable right now; showing the current status only.";
    $("#updated").textContent = `Updated ${formatTime(summary.page?.updated_at || Date.now(), true)} · refreshes every 30 seconds`;
  } catch (error) {
    const box = $("#status-error");
    box.hidden = false;
    box.textContent = `The status could not be refreshed (${error.message}); showing the last known state.`;
  }
}

narrow.addEventListener("change", () => {
  if (lastSummary) renderComponents(lastSummary);
});
refresh();
setInterval(refresh, REFRESH_MS);
