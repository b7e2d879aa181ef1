// Building DOM without HTML strings: every piece of outside text goes in through textContent,
// so a feed title like <img src=x onerror=alert(1)> is shown as the text it is.

const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * el("button", {class: "btn", type: "button", onclick: fn, dataset: {id: "1"}}, "Retry")
 * Children may be strings (become text nodes), nodes, arrays, null or undefined.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  applyAttributes(node, attrs);
  append(node, children);
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  applyAttributes(node, attrs);
  append(node, children);
  return node;
}

function applyAttributes(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(node.dataset, value);
    } else if (key === "text") {
      node.textContent = String(value);
    } else if (key === "href") {
      const safe = safeUrl(value);
      if (safe) node.setAttribute("href", safe);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replace every child of ``node`` with ``children``. */
export function replaceChildren(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** Only http(s) and same-origin relative links: a feed cannot smuggle in a javascript: URL. */
export function safeUrl(value) {
  if (typeof value !== "string" || value.trim() === "") return null;
  try {
    const url = new URL(value, window.location.origin);
    if (url.protocol === "http:" || url.protocol === "https:") return url.href;
  } catch {
    return null;
  }
  return null;
}

export function $(selector, root = document) {
  const found = root.querySelector(selector);
  if (!found) throw new Error(`missing element ${selector}`);
  return found;
}

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function formatAge(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "";
  const s = Math.max(0, Math.round(Number(seconds)));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ""}`.trim();
  if (s < 86400) {
    const m = Math.round((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ""}`;
  }
  const h = Math.round((s % 86400) / 3600);
  return `${Math.floor(s / 86400)} d${h ? ` ${h} h` : ""}`;
}

/** Accepts epoch seconds, epoch milliseconds or ISO strings. */
export function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "number") return new Date(value < 1e12 ? value * 1000 : value);
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function formatTime(value, withDate = false) {
  const date = toDate(value);
  if (!date) return "";
  const options = withDate
    ? { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
    : { hour: "2-digit", minute: "2-digit", second: "2-digit" };
  return date.toLocaleString(undefined, options);
}

/** Internal feature names and the short names the REST API uses. */
export const FEATURES = [
  { feature: "grok_chat", key: "chat", label: "Chat" },
  { feature: "threat_intelligence", key: "intel", label: "Threat intelligence" },
  { feature: "community_pulse", key: "pulse", label: "Community pulse" },
  { feature: "scan_processing", key: "scans", label: "Scan processing" },
];

export function featureInfo(name) {
  return (
    FEATURES.find((f) => f.feature === name || f.key === name) || {
      feature: name,
      key: name,
      label: String(name).replace(/_/g, " "),
    }
  );
}

/** The breaker state out of a feature-status entry, whatever its exact shape. */
export function breakerState(entry) {
  const raw = entry && (entry.circuit_breaker ?? entry.breaker ?? entry.state);
  const value = raw && typeof raw === "object" ? raw.state : raw;
  return String(value || "closed").toLowerCase();
}

export function failureCount(entry) {
  const raw = entry && (entry.failures ?? entry.failure_count);
  if (raw && typeof raw === "object") return Number(raw.count ?? 0);
  return Number(raw ?? 0);
}
