// The error-rate chart: errors per minute by type, drawn as SVG lines with axes and a legend.
import { el, svg, replaceChildren, toDate } from "./dom.js";

const PALETTE_SIZE = 8;

/**
 * Turn whatever /api/errors/timeseries returns into {times: [Date], series: [{type, counts}]}
 * with one count per minute. Understands per-minute rows ({minute|timestamp, counts|by_type})
 * and column form ({timestamps|minutes, series: {type: [n...]}}).
 */
export function normaliseTimeseries(payload, minutes) {
  const rows = Array.isArray(payload)
    ? payload
    : payload && (payload.buckets || payload.points || payload.timeseries || payload.data);
  const types = new Set();
  const byMinute = new Map();
  const key = (d) => Math.floor(d.getTime() / 60000);
  if (Array.isArray(rows)) {
    for (const row of rows) {
      const date = toDate(row.minute ?? row.timestamp ?? row.time ?? row.t ?? row.start);
      if (!date) continue;
      const k = key(date);
      const counts = byMinute.get(k) || {};
      const perType = row.counts || row.by_type || row.errors_by_type;
      if (perType && typeof perType === "object") {
        for (const [type, n] of Object.entries(perType)) {
          counts[type] = (counts[type] || 0) + Number(n || 0);
          types.add(type);
        }
      } else if (row.type !== undefined) {
        counts[row.type] = (counts[row.type] || 0) + Number(row.count ?? 1);
        types.add(row.type);
      }
      byMinute.set(k, counts);
    }
  } else if (payload && payload.series && Array.isArray(payload.timestamps)) {
    // Column form from the aggregator: one timestamp per minute, oldest first, zero-filled.
    const times = payload.timestamps.map((t) => toDate(t)).filter(Boolean);
    const entries = Object.entries(payload.series).sort(([a], [b]) => a.localeCompare(b));
    return {
      times,
      capped: Number(payload.window_minutes ?? times.length) < Number(minutes),
      series: entries.map(([type, counts]) => ({ type, counts: times.map((_, i) => Number((counts || [])[i] || 0)) })),
    };
  } else if (payload && payload.series && typeof payload.series === "object") {
    const stamps = payload.timestamps || payload.minutes_utc || payload.times || payload.labels || [];
    for (const [type, values] of Object.entries(payload.series)) {
      types.add(type);
      (values || []).forEach((value, i) => {
        const point = value && typeof value === "object" ? value : { count: value };
        const date = toDate(point.minute ?? point.timestamp ?? point.t ?? stamps[i]);
        if (!date) return;
        const k = key(date);
        const counts = byMinute.get(k) || {};
        counts[type] = (counts[type] || 0) + Number(point.count ?? point.value ?? 0);
        byMinute.set(k, counts);
      });
    }
  }
  const window = Number((payload && payload.minutes) || minutes || 60);
  const lastKey = byMinute.size ? Math.max(key(new Date()), ...byMinute.keys()) : key(new Date());
  const times = [];
  for (let k = lastKey - window + 1; k <= lastKey; k += 1) times.push(k);
  const sortedTypes = [...types].sort();
  return {
    times: times.map((k) => new Date(k * 60000)),
    series: sortedTypes.map((type) => ({ type, counts: times.map((k) => (byMinute.get(k) || {})[type] || 0) })),
  };
}

function niceMax(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function timeLabel(date) {
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** Draw ``data`` into ``container`` (an element that holds the SVG and a legend). */
export function renderChart(container, data, { minutes }) {
  const width = Math.max(280, Math.floor(container.clientWidth || 640));
  const height = width < 500 ? 200 : 240;
  const margin = { top: 12, right: 12, bottom: 28, left: 36 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const n = data.times.length;
  const total = data.series.reduce((sum, s) => sum + s.counts.reduce((a, b) => a + b, 0), 0);
  const peak = Math.max(0, ...data.series.flatMap((s) => s.counts));
  const yMax = niceMax(peak);
  const x = (i) => margin.left + (n <= 1 ? 0 : (i / (n - 1)) * plotW);
  const y = (v) => margin.top + plotH - (v / yMax) * plotH;

  const summary =
    total === 0
      ? `No errors in the last ${minutes} minutes.`
      : `${total} error${total === 1 ? "" : "s"} in the last ${minutes} minutes; peak ${peak} per minute. ` +
        data.series.map((s) => `${s.type}: ${s.counts.reduce((a, b) => a + b, 0)}`).join(", ");

  const chart = svg("svg", {
    class: "chart-svg",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Errors per minute by type. ${summary}`,
  });
  chart.append(svg("title", { text: "Errors per minute by type" }), svg("desc", { text: summary }));

  const grid = svg("g", { class: "chart-grid" });
  for (let t = 0; t <= 4; t += 1) {
    const value = (yMax / 4) * t;
    grid.append(
      svg("line", { x1: margin.left, x2: width - margin.right, y1: y(value), y2: y(value) }),
      svg("text", { x: margin.left - 6, y: y(value) + 4, class: "chart-tick chart-tick-y", text: String(Math.round(value * 10) / 10) }),
    );
  }
  const ticks = width < 500 ? 3 : 5;
  for (let t = 0; t < ticks; t += 1) {
    const i = Math.round((t / (ticks - 1)) * (n - 1));
    if (!data.times[i]) continue;
    grid.append(
      svg("text", {
        x: x(i),
        y: height - 8,
        class: "chart-tick chart-tick-x",
        "text-anchor": t === 0 ? "start" : t === ticks - 1 ? "end" : "middle",
        text: timeLabel(data.times[i]),
      }),
    );
  }
  chart.append(grid);

  data.series.forEach((series, index) => {
    const points = series.counts.map((c, i) => `${x(i).toFixed(1)},${y(c).toFixed(1)}`).join(" ");
    const line = svg("polyline", {
      class: `chart-line series-${index % PALETTE_SIZE}`,
      points,
      dataset: { type: series.type },
    });
    line.append(svg("title", { text: `${series.type}: ${series.counts.reduce((a, b) => a + b, 0)} errors` }));
    chart.append(line);
  });

  if (total === 0) {
    chart.append(
      svg("text", {
        x: margin.left + plotW / 2,
        y: margin.top + plotH / 2,
        "text-anchor": "middle",
        class: "chart-empty",
        text: `No errors in the last ${minutes} minutes`,
      }),
    );
  }

  const legend = el(
    "ul",
    { class: "chart-legend", "aria-label": "Error types" },
    data.series.map((series, index) =>
      el(
        "li",
        { dataset: { type: series.type } },
        el("span", { class: `swatch series-${index % PALETTE_SIZE}`, "aria-hidden": "true" }),
        el("span", { text: `${series.type} (${series.counts.reduce((a, b) => a + b, 0)})` }),
      ),
    ),
  );
  replaceChildren(container, chart, legend);
  container.dataset.total = String(total);
  return { total, peak };
}
