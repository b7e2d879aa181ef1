// A WebSocket that comes back by itself: exponential backoff with jitter between attempts,
// and a state the page shows ("connecting", "open", "reconnecting", "denied").
// The server closes a socket whose credential does not allow it with 4401/4403 and a reason:
// that state is "denied" and the socket waits for restart() (after signing in) instead of
// retrying a refusal over and over.

import { csrfToken } from "./api.js";

export const DENIED_CODES = Object.freeze([4401, 4403]);

/** The subprotocols a handshake offers: the protocol, and the session's CSRF token (a page
 * cannot set headers on a WebSocket handshake). */
function protocols() {
  const token = csrfToken();
  return token ? ["jupiter.v1", `jupiter.csrf.${token}`] : ["jupiter.v1"];
}

export const BACKOFF = Object.freeze({ initialMs: 500, factor: 2, maxMs: 15000 });

/**
 * Delay before reconnect attempt ``attempt`` (1-based): exponential, capped, with "equal
 * jitter" (half fixed, half random) so a restarted server is not hit by every tab at once.
 */
export function backoffDelay(attempt, random = Math.random, options = BACKOFF) {
  const exp = Math.min(options.maxMs, options.initialMs * options.factor ** Math.max(0, attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

export class JupiterSocket extends EventTarget {
  constructor(url = defaultUrl()) {
    super();
    this.url = url;
    this.state = "connecting";
    this.attempt = 0;
    this.nextRetryAt = null;
    this.ws = null;
    this.timer = null;
    this.pending = [];
  }

  connect() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      // Never two sockets at once (each event would arrive twice).
      const old = this.ws;
      this.ws = null;
      old.close(1000);
    }
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new WebSocket(this.url, protocols());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      const reconnected = this.attempt > 0;
      this.attempt = 0;
      this.nextRetryAt = null;
      this.setState("open");
      for (const message of this.pending.splice(0)) ws.send(message);
      this.dispatchEvent(new CustomEvent("open", { detail: { reconnected } }));
    });
    ws.addEventListener("message", (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; anything else is ignored, never rendered
      }
      if (!message || typeof message.event !== "string") return;
      this.dispatchEvent(new CustomEvent(message.event, { detail: message.data ?? {} }));
      this.dispatchEvent(new CustomEvent("*", { detail: message }));
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (DENIED_CODES.includes(event.code)) {
        clearTimeout(this.timer);
        this.timer = null;
        this.attempt = 0;
        this.setState("denied");
        this.dispatchEvent(new CustomEvent("denied", { detail: { code: event.code, reason: event.reason } }));
        return;
      }
      this.scheduleReconnect();
    });
    // "error" is always followed by "close"; reconnecting happens there.
  }

  scheduleReconnect() {
    this.attempt += 1;
    const delay = backoffDelay(this.attempt);
    this.nextRetryAt = Date.now() + delay;
    this.setState("reconnecting");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Skip the wait (the "Reconnect now" button). */
  reconnectNow() {
    if (this.state === "open") return;
    this.connect();
  }

  /** Connect again at once, e.g. after signing in or out: the handshake carries the cookie. */
  restart() {
    this.attempt = 0;
    this.connect();
  }

  send(event, data = {}) {
    const message = JSON.stringify({ event, data });
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(message);
      return true;
    }
    // Requests made while offline go out as soon as the socket is back; keep only a few.
    this.pending.push(message);
    if (this.pending.length > 20) this.pending.shift();
    return false;
  }

  on(event, handler) {
    this.addEventListener(event, (e) => handler(e.detail));
    return this;
  }

  setState(state) {
    if (this.state === state && state !== "reconnecting") return;
    this.state = state;
    this.dispatchEvent(
      new CustomEvent("statechange", {
        detail: { state, attempt: this.attempt, nextRetryAt: this.nextRetryAt },
      }),
    );
  }
}

function defaultUrl() {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/ws`;
}
