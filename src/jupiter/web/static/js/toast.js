// Toasts for transient trouble and recoveries: "Chat is degraded", "Chat recovered".
import { el } from "./dom.js";

const LIFETIME_MS = { info: 5000, success: 5000, warning: 8000, error: 10000 };

let region = null;

function toastRegion() {
  if (region && document.body.contains(region)) return region;
  region = document.getElementById("toasts");
  if (!region) {
    region = el("div", { id: "toasts", class: "toasts", "aria-live": "polite" });
    document.body.append(region);
  }
  return region;
}

/** Show a toast; ``kind`` is info, success, warning or error. Returns the toast element. */
export function toast(message, kind = "info", { title = null, lifetimeMs = null } = {}) {
  const close = el("button", {
    type: "button",
    class: "toast-close",
    "aria-label": "Dismiss notification",
    text: "×",
  });
  const node = el(
    "div",
    {
      class: `toast toast-${kind}`,
      role: kind === "error" || kind === "warning" ? "alert" : "status",
      dataset: { kind },
    },
    el("div", { class: "toast-body" }, title ? el("strong", { text: title }) : null, el("span", { text: message })),
    close,
  );
  const remove = () => {
    node.classList.add("leaving");
    setTimeout(() => node.remove(), 200);
  };
  close.addEventListener("click", remove);
  const holder = toastRegion();
  holder.append(node);
  while (holder.children.length > 5) holder.firstElementChild.remove();
  setTimeout(remove, lifetimeMs ?? LIFETIME_MS[kind] ?? 6000);
  return node;
}
