// Shared by the dashboard's Findings panel and the Admin Console's Scans section: uploading a
// scan file and turning the service's refusal (4xx naming the problem and its place) into text.
import { el } from "./dom.js";
import { requestJson } from "./api.js";

export const SCAN_FORMATS = [
  { value: "", label: "Detect automatically" },
  { value: "sarif", label: "SARIF 2.1.0" },
  { value: "trivy", label: "Trivy JSON" },
  { value: "grype", label: "Grype JSON" },
  { value: "nmap", label: "Nmap XML" },
];

// Imports of large files take a while; the answer comes when the import is done.
const UPLOAD_TIMEOUT_MS = 10 * 60 * 1000;

/** POST /api/scans as multipart; resolves to the import summary, rejects with an ApiError. */
export function uploadScan(file, { format = "", asset = "", headers = {} } = {}) {
  const form = new FormData();
  form.append("file", file, file.name || "upload");
  if (format) form.append("format", format);
  if (asset) form.append("asset", asset);
  return requestJson("/api/scans", { method: "POST", body: form, headers, timeoutMs: UPLOAD_TIMEOUT_MS });
}

/** "line 4, column 2" or "$.runs[0].results[3].level" from an error's ``location``. */
export function describeLocation(location) {
  if (!location) return "";
  if (typeof location === "string") return location;
  if (typeof location !== "object") return String(location);
  if (location.json_path) return String(location.json_path);
  const parts = [];
  if (location.line !== undefined && location.line !== null) parts.push(`line ${location.line}`);
  if (location.column !== undefined && location.column !== null) parts.push(`column ${location.column}`);
  return parts.join(", ");
}

/**
 * The error box used for a refused upload and for ``scan_error``: the same look as a chat error
 * (message in bold red, "Suggestion:" beneath), built from text nodes only.
 */
export function scanErrorBox({ title = null, message, suggestion = null, location = null, id = null }) {
  const where = describeLocation(location);
  const text = String(message ?? "The scan could not be imported.");
  return el(
    "div",
    { class: "msg msg-error scan-error", role: "alert", id },
    title ? el("span", { class: "msg-who", text: title }) : null,
    el("p", { class: "msg-text", text }),
    where && !text.includes(where) ? el("p", { class: "msg-meta", text: `At ${where}` }) : null,
    suggestion
      ? el("p", { class: "msg-suggestion" }, el("strong", { text: "Suggestion: " }), el("span", { text: String(suggestion) }))
      : null,
  );
}

/** A one-line summary of an import: "Bandit · 4 findings (2 new, 1 exploited in the wild)". */
export function importSummary(result) {
  const findings = Number(result.findings ?? 0);
  const parts = [`${findings} finding${findings === 1 ? "" : "s"}`];
  const extra = [];
  if (result.duplicate) extra.push("already imported, nothing changed");
  else if (result.new !== undefined) extra.push(`${result.new} new`);
  if (Number(result.kev_exploited) > 0) extra.push(`${result.kev_exploited} exploited in the wild`);
  const tool = result.tool ? `${result.tool} · ` : "";
  return `${tool}${parts.join("")}${extra.length ? ` (${extra.join(", ")})` : ""}`;
}
