// The dashboard's Findings panel: imported scan results, exploited-in-the-wild (CISA KEV) first,
// with filters, pages, a detail per finding (KEV record, CWE entry and its mitigations), an
// upload control, and live updates from scan_progress / scan_complete / scan_error /
// scan_deleted. Finding text comes from scan files, so it is untrusted: text nodes only.
import { $, el, replaceChildren, formatTime, safeUrl } from "./dom.js";
import { requestJson, ClientBreaker } from "./api.js";
import { toast } from "./toast.js";
import { uploadScan, scanErrorBox, importSummary } from "./scans.js";

const PAGE_SIZE = 25;
const ASSET_DEBOUNCE_MS = 300;
const PROGRESS_LINGER_MS = 6000;

export function initFindings(socket) {
  const panel = $("#findings-panel");
  const list = $("#findings-list");
  const countBadge = $("#findings-count");
  const kevBadge = $("#findings-kev-count");
  const severitySelect = $("#findings-severity");
  const toolSelect = $("#findings-tool");
  const assetInput = $("#findings-asset");
  const kevCheckbox = $("#findings-kev");
  const message = $("#findings-message");
  const prev = $("#findings-prev");
  const next = $("#findings-next");
  const range = $("#findings-range");
  const progressBox = $("#scan-progress");
  const progressBar = $("#scan-progress-bar");
  const progressLabel = $("#scan-progress-label");
  const errorArea = $("#scan-error");

  const breaker = new ClientBreaker({ failureThreshold: 3, openMs: 15000 });
  const details = new Map(); // finding id -> its detail (GET /api/findings/{id})
  let offset = 0;
  let view = { items: [], total: 0 };
  let openId = null;
  let ticket = 0;
  let loadedOnce = false;
  let progressTimer = null;
  let ownUpload = null; // the file name of this page's upload while it runs

  // ------------------------------------------------------------ reading
  function filters() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(offset) });
    if (severitySelect.value) query.set("severity", severitySelect.value);
    if (toolSelect.value) query.set("tool", toolSelect.value);
    if (assetInput.value.trim()) query.set("asset", assetInput.value.trim());
    if (kevCheckbox.checked) query.set("kev", "true");
    return query;
  }

  function filtered() {
    return Boolean(severitySelect.value || toolSelect.value || assetInput.value.trim() || kevCheckbox.checked);
  }

  async function load() {
    const mine = ++ticket;
    panel.setAttribute("aria-busy", "true");
    try {
      const [page, exploited] = await breaker.call(() =>
        Promise.all([
          requestJson(`/api/findings?${filters()}`),
          requestJson("/api/findings?kev=true&limit=1"),
        ]),
      );
      if (mine !== ticket) return; // a newer request is on its way
      const total = Number(page.total ?? 0);
      if (offset > 0 && offset >= total) {
        // The page emptied (a scan was deleted): step back to the last page that has findings.
        offset = Math.max(0, Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE);
        load();
        return;
      }
      view = { items: Array.isArray(page.items) ? page.items : [], total };
      loadedOnce = true;
      showNotice("");
      render();
      const kevTotal = Number(exploited.total ?? 0);
      kevBadge.hidden = kevTotal === 0;
      kevBadge.textContent = `${kevTotal} exploited in the wild`;
      kevBadge.dataset.count = String(kevTotal);
    } catch (error) {
      if (mine !== ticket) return;
      const suggestion = error.suggestion ? ` ${error.suggestion}` : "";
      showNotice(
        loadedOnce
          ? `Showing the last good data: ${error.message}${suggestion}`
          : `Findings are unavailable: ${error.message}${suggestion}`,
        "warning",
      );
      if (!loadedOnce) replaceChildren(list, el("li", { class: "muted findings-empty", text: "No findings to show." }));
    } finally {
      if (mine === ticket) panel.setAttribute("aria-busy", "false");
    }
  }

  async function loadTools() {
    try {
      const scans = await requestJson("/api/scans?limit=500");
      const tools = [...new Set((scans.items || []).map((s) => String(s.tool ?? "")).filter(Boolean))].sort();
      const current = toolSelect.value;
      const all = current && !tools.some((t) => t.toLowerCase() === current.toLowerCase()) ? [...tools, current] : tools;
      replaceChildren(toolSelect, el("option", { value: "", text: "All tools" }), all.map((t) => el("option", { value: t, text: t })));
      toolSelect.value = current;
    } catch {
      // The tool list is a convenience; the findings themselves say what went wrong.
    }
  }

  function refresh() {
    details.clear();
    loadTools();
    load();
  }

  function showNotice(text, kind = "info") {
    message.hidden = !text;
    message.className = `notice notice-${kind}`;
    message.textContent = text;
  }

  // ------------------------------------------------------------ list
  function kevRecords(item) {
    return Array.isArray(item.kev) ? item.kev : [];
  }

  function badges(item) {
    const severity = String(item.severity || "info").toLowerCase().replace(/[^a-z]/g, "");
    const records = kevRecords(item);
    const due = records.map((r) => r.dueDate).filter(Boolean).sort()[0];
    return el(
      "div",
      { class: "finding-badges" },
      el("span", { class: `badge sev sev-${severity}`, text: severity }),
      item.kev_exploited
        ? el("span", { class: "badge kev-badge", title: "Listed in CISA's Known Exploited Vulnerabilities catalog", text: "Exploited in the wild" })
        : null,
      records.some((r) => r.ransomware) ? el("span", { class: "badge ransomware-badge", text: "Ransomware" }) : null,
      due ? el("span", { class: "badge kev-due", text: `KEV due ${due}` }) : null,
    );
  }

  function idChips(item) {
    const cves = Array.isArray(item.cve_ids) ? item.cve_ids : [];
    const cwes = Array.isArray(item.cwe) && item.cwe.length ? item.cwe : (item.cwe_ids || []).map((id) => ({ id }));
    return [
      ...cves.map((id) => el("span", { class: "chip mono", text: String(id) })),
      ...cwes.map((c) => el("span", { class: "chip mono", title: c.name ? String(c.name) : null, text: String(c.id) })),
    ];
  }

  function findingItem(item) {
    const id = String(item.id);
    const detailId = `finding-detail-${id}`;
    const toggle = el("button", {
      type: "button",
      class: "finding-toggle",
      "aria-expanded": "false",
      "aria-controls": detailId,
      dataset: { id },
      text: String(item.title || item.rule_id || "(untitled finding)"),
    });
    toggle.addEventListener("click", () => (openId === id ? closeFinding(id, { focus: false }) : openFinding(id, { focus: true })));
    const meta = [item.tool, item.rule_id, item.asset, item.location].filter((v) => v !== undefined && v !== null && v !== "");
    return el(
      "li",
      {
        class: `finding${item.kev_exploited ? " finding-kev" : ""}`,
        dataset: { id, severity: String(item.severity || ""), kev: String(Boolean(item.kev_exploited)), tool: String(item.tool || "") },
      },
      badges(item),
      el("h3", { class: "finding-title" }, toggle),
      el(
        "p",
        { class: "finding-meta small" },
        meta.map((value, index) => [index ? el("span", { class: "sep", "aria-hidden": "true", text: " · " }) : null, el("span", { class: index === 3 ? "mono" : null, text: String(value) })]),
      ),
      el("div", { class: "finding-ids" }, idChips(item)),
      el("div", { class: "finding-detail", id: detailId, hidden: true }),
    );
  }

  function render() {
    // A refresh rebuilds the list: keep the open detail and the keyboard focus where they were.
    const focused = document.activeElement && list.contains(document.activeElement) ? document.activeElement : null;
    const focusId = focused ? focused.closest(".finding")?.dataset.id : null;
    const items = view.items;
    if (!items.length) {
      const text = filtered() ? "No findings match the filters." : "No findings yet. Import a scan to see its findings here.";
      replaceChildren(list, el("li", { class: "muted findings-empty", text }));
    } else {
      replaceChildren(list, items.map(findingItem));
    }
    const total = view.total;
    countBadge.textContent = filtered() ? `${total} matching` : `${total} finding${total === 1 ? "" : "s"}`;
    countBadge.dataset.count = String(total);
    range.textContent = total ? `${offset + 1}–${offset + items.length} of ${total}` : "";
    prev.disabled = offset === 0;
    next.disabled = offset + items.length >= total;
    if (openId !== null) {
      if (items.some((i) => String(i.id) === openId)) openFinding(openId, { focus: false });
      else openId = null;
    }
    if (focusId) {
      const target = list.querySelector(`.finding[data-id="${CSS.escape(focusId)}"] .finding-toggle`);
      if (target) target.focus();
      else list.querySelector(".finding-toggle")?.focus();
    }
  }

  // ------------------------------------------------------------ detail
  function row(label, value, className = null) {
    if (value === undefined || value === null || value === "" || (Array.isArray(value) && !value.length)) return null;
    return [el("dt", { text: label }), el("dd", { class: className, text: Array.isArray(value) ? value.join(", ") : String(value) })];
  }

  function kevSection(records) {
    if (!records.length) return null;
    return el(
      "section",
      { class: "detail-kev", "aria-label": "Known exploited vulnerability" },
      el("h4", { text: "Exploited in the wild (CISA KEV)" }),
      records.map((r) =>
        el(
          "dl",
          { class: "detail-grid" },
          row("CVE", r.cveID, "mono"),
          row("Name", r.vulnerabilityName),
          row("Vendor / product", [r.vendorProject, r.product].filter(Boolean).join(" / ")),
          row("Date added", r.dateAdded),
          row("Due date", r.dueDate),
          row("Required action", r.requiredAction),
          row("Ransomware", r.ransomware ? "Known use in ransomware campaigns" : String(r.knownRansomwareCampaignUse || "Unknown")),
        ),
      ),
    );
  }

  function mitigationItem(mitigation) {
    if (typeof mitigation === "string") return el("li", { text: mitigation });
    const labels = [mitigation.phase, mitigation.strategy].filter(Boolean).join(" · ");
    return el(
      "li",
      {},
      labels ? el("strong", { class: "mitigation-phase", text: labels }) : null,
      el("span", { class: "mitigation-text", text: String(mitigation.description ?? "") }),
      mitigation.effectiveness ? el("span", { class: "muted small", text: ` (effectiveness: ${mitigation.effectiveness})` }) : null,
    );
  }

  function cweSection(entries) {
    if (!entries.length) return null;
    return el(
      "section",
      { class: "detail-cwe", "aria-label": "Weaknesses and mitigations" },
      el("h4", { text: entries.length === 1 ? "Weakness and mitigations" : "Weaknesses and mitigations" }),
      entries.map((entry, index) => {
        const link = safeUrl(entry.url);
        const heading = `${entry.id}${entry.name ? `: ${entry.name}` : ""}`;
        const mitigations = Array.isArray(entry.mitigations) ? entry.mitigations : [];
        // The first weakness is open; the others (often broader parents) one click away.
        return el(
          "details",
          { class: "cwe-entry", open: index === 0, dataset: { cwe: String(entry.id) } },
          el("summary", {}, el("span", { class: "cwe-name", text: heading })),
          entry.description ? el("p", { class: "cwe-description", text: String(entry.description) }) : null,
          link ? el("p", { class: "small" }, el("a", { href: link, rel: "noopener noreferrer", target: "_blank", text: `${entry.id} at MITRE` })) : null,
          entry.owasp_category ? el("p", { class: "muted small", text: `OWASP Top 10: ${entry.owasp_category}` }) : null,
          el("h5", { text: "Mitigations" }),
          mitigations.length
            ? el("ol", { class: "mitigations" }, mitigations.map(mitigationItem))
            : el("p", { class: "muted small", text: "The knowledge base has no mitigations for this weakness." }),
        );
      }),
    );
  }

  function renderDetail(box, detail, id) {
    const info = detail.details && typeof detail.details === "object" ? detail.details : {};
    const helpLink = safeUrl(info.help_uri ?? info.primary_url);
    const heading = el("h4", { class: "detail-heading", tabindex: "-1", text: "Finding detail" });
    const close = el("button", { type: "button", class: "btn btn-small", text: "Close detail" });
    close.addEventListener("click", () => closeFinding(id, { focus: true }));
    const pkg = info.package ? `${info.package}${info.installed_version ? ` ${info.installed_version}` : ""}` : null;
    replaceChildren(
      box,
      heading,
      detail.message ? el("p", { class: "detail-message", text: String(detail.message) }) : null,
      el(
        "dl",
        { class: "detail-grid" },
        row("Tool / rule", [detail.tool, detail.rule_id].filter(Boolean).join(" / ")),
        row("Severity", detail.priority && detail.priority !== detail.severity ? `${detail.severity} (priority ${detail.priority})` : detail.severity),
        row("Asset", detail.asset),
        row("Location", detail.location, "mono"),
        row("Package", pkg, "mono"),
        row("Fixed in", info.fixed_version, "mono"),
        row("CVE", detail.cve_ids, "mono"),
        row("CWE", detail.cwe_ids, "mono"),
        row("First seen", formatTime(detail.first_seen, true)),
        row("Last seen", formatTime(detail.last_seen, true)),
      ),
      info.snippet ? el("pre", { class: "snippet", "aria-label": "Code snippet", text: String(info.snippet) }) : null,
      kevSection(Array.isArray(detail.kev) ? detail.kev : []),
      cweSection(Array.isArray(detail.cwe) ? detail.cwe : []),
      el(
        "div",
        { class: "detail-actions" },
        helpLink ? el("a", { href: helpLink, rel: "noopener noreferrer", target: "_blank", text: "Tool documentation" }) : null,
        close,
      ),
    );
    return heading;
  }

  function parts(id) {
    const item = list.querySelector(`.finding[data-id="${CSS.escape(id)}"]`);
    if (!item) return null;
    return { item, toggle: item.querySelector(".finding-toggle"), box: item.querySelector(".finding-detail") };
  }

  async function openFinding(id, { focus }) {
    if (openId !== null && openId !== id) closeFinding(openId, { focus: false });
    const found = parts(id);
    if (!found) return;
    openId = id;
    found.toggle.setAttribute("aria-expanded", "true");
    found.item.classList.add("open");
    found.box.hidden = false;
    let detail = details.get(id);
    if (!detail) {
      replaceChildren(found.box, el("p", { class: "muted small", role: "status", text: "Loading the detail…" }));
      try {
        detail = await requestJson(`/api/findings/${encodeURIComponent(id)}`);
        details.set(id, detail);
      } catch (error) {
        const current = parts(id);
        if (!current || openId !== id) return;
        replaceChildren(current.box, scanErrorBox({ message: `The detail could not be loaded: ${error.message}`, suggestion: error.suggestion }));
        return;
      }
    }
    const current = parts(id); // the list may have been rebuilt while the detail loaded
    if (!current || openId !== id) return;
    current.toggle.setAttribute("aria-expanded", "true");
    current.item.classList.add("open");
    current.box.hidden = false;
    const heading = renderDetail(current.box, detail, id);
    if (focus) heading.focus();
  }

  function closeFinding(id, { focus }) {
    if (openId === id) openId = null;
    const found = parts(id);
    if (!found) return;
    found.toggle.setAttribute("aria-expanded", "false");
    found.item.classList.remove("open");
    found.box.hidden = true;
    if (focus) found.toggle.focus();
  }

  list.addEventListener("keydown", (event) => {
    // Escape inside an open detail closes it and returns to its title.
    if (event.key !== "Escape") return;
    const item = event.target.closest(".finding.open");
    if (item) {
      event.preventDefault();
      closeFinding(item.dataset.id, { focus: true });
    }
  });

  // ------------------------------------------------------------ filters and pages
  function refilter() {
    offset = 0;
    load();
  }
  severitySelect.addEventListener("change", refilter);
  toolSelect.addEventListener("change", refilter);
  kevCheckbox.addEventListener("change", refilter);
  let assetTimer = null;
  assetInput.addEventListener("input", () => {
    clearTimeout(assetTimer);
    assetTimer = setTimeout(refilter, ASSET_DEBOUNCE_MS);
  });
  prev.addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE_SIZE);
    load();
  });
  next.addEventListener("click", () => {
    offset += PAGE_SIZE;
    load();
  });
  $("#findings-refresh").addEventListener("click", refresh);

  // ------------------------------------------------------------ upload
  const uploadForm = $("#findings-upload");
  const fileInput = $("#findings-file");
  const uploadButton = $("#findings-upload-button");
  const uploadResult = $("#findings-upload-result");
  const uploadError = $("#findings-upload-error");
  let uploadAllowed = true; // the signed-in role may import scans (the dashboard says)

  function setUploadAllowed(allowed) {
    uploadAllowed = Boolean(allowed);
    fileInput.disabled = !uploadAllowed;
    uploadButton.disabled = !uploadAllowed;
  }

  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      fileInput.focus();
      return;
    }
    uploadButton.disabled = true;
    uploadError.hidden = true;
    uploadResult.textContent = `Importing ${file.name}…`;
    ownUpload = file.name;
    try {
      const result = await uploadScan(file);
      uploadResult.textContent = `Imported ${file.name}: ${importSummary(result)}`;
      uploadForm.reset();
    } catch (error) {
      uploadResult.textContent = "";
      uploadError.hidden = false;
      const status = error.status ? ` (HTTP ${error.status})` : "";
      replaceChildren(
        uploadError,
        scanErrorBox({ title: `${file.name} was not imported${status}`, message: error.message, suggestion: error.suggestion, location: error.location }),
      );
    } finally {
      ownUpload = null;
      uploadButton.disabled = !uploadAllowed;
    }
  });

  // ------------------------------------------------------------ live updates
  function showProgress(text, percent) {
    clearTimeout(progressTimer);
    progressBox.hidden = false;
    progressLabel.textContent = text;
    progressBar.value = Math.max(0, Math.min(100, Number(percent) || 0));
    progressBar.textContent = `${progressBar.value}%`;
  }

  function hideProgressLater() {
    clearTimeout(progressTimer);
    progressTimer = setTimeout(() => {
      progressBox.hidden = true;
    }, PROGRESS_LINGER_MS);
  }

  socket.on("scan_progress", (data) => {
    const name = String(data.source_name || "scan");
    const percent = Number(data.percent) || 0;
    progressBox.dataset.job = String(data.job_id ?? "");
    showProgress(`Importing ${name}… ${percent}%`, percent);
  });

  socket.on("scan_complete", (data) => {
    const name = String(data.source_name || "scan");
    showProgress(`Imported ${name}: ${importSummary(data)}`, 100);
    hideProgressLater();
    if (Number(data.kev_exploited) > 0 && !data.duplicate) {
      toast(`${data.kev_exploited} finding${Number(data.kev_exploited) === 1 ? " is" : "s are"} exploited in the wild.`, "warning", { title: `Imported ${name}` });
    } else {
      toast(importSummary(data), "success", { title: `Imported ${name}` });
    }
    refresh();
  });

  socket.on("scan_error", (data) => {
    const name = String(data.source_name || "scan");
    if (progressBox.dataset.job === String(data.job_id ?? "")) progressBox.hidden = true;
    if (ownUpload && ownUpload === name) return; // the upload form shows its own refusal
    const dismiss = el("button", { type: "button", class: "btn btn-small", text: "Dismiss" });
    dismiss.addEventListener("click", () => {
      errorArea.hidden = true;
      replaceChildren(errorArea);
    });
    const box = scanErrorBox({
      title: `Import of ${name} failed`,
      message: data.message ?? data.detail,
      suggestion: data.suggestion,
      location: data.location,
    });
    box.append(dismiss);
    replaceChildren(errorArea, box);
    errorArea.hidden = false;
  });

  socket.on("scan_deleted", (data) => {
    const removed = Number(data.deleted_findings ?? 0);
    toast(`${removed} finding${removed === 1 ? "" : "s"} removed with it.`, "info", { title: `Scan ${data.deleted_scan ?? ""} deleted` });
    refresh();
  });

  socket.on("scan_kev_refreshed", refresh);
  socket.on("open", ({ reconnected }) => {
    if (reconnected) refresh(); // events may have been missed while offline
  });

  refresh();
  return { refresh, setUploadAllowed };
}
