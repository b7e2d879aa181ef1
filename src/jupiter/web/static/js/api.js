// fetch with a timeout, the service's error envelope turned into an ApiError, and a small
// client-side circuit breaker so a failing endpoint is not hammered by the page either.
// Requests carry the session cookie and the session's CSRF token as X-CSRF-Token. The server
// counts the cookie only with that token: browsers send cookies to every port of a host, but
// this origin's localStorage (where the token is kept from sign-in) is Jupiter's own.

const CSRF_KEY = "jupiter.csrf";

function stored() {
  try {
    return localStorage.getItem(CSRF_KEY);
  } catch {
    return null; // storage disabled: the page works signed out
  }
}

/** The CSRF token of this origin's session, or null. */
export function csrfToken() {
  return stored();
}

/** Keep (or, with null, forget) the session's CSRF token; session.js calls it. */
export function setCsrfToken(value) {
  try {
    if (value) localStorage.setItem(CSRF_KEY, value);
    else localStorage.removeItem(CSRF_KEY);
  } catch {
    // storage disabled: nothing to keep
  }
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    const detail = body && body.detail;
    const message =
      error.message ||
      (typeof detail === "string" ? detail : null) ||
      (Array.isArray(detail) && detail[0] && detail[0].msg) ||
      (status ? `Request failed (HTTP ${status})` : "The server could not be reached");
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = error.type || (status ? `http_${status}` : "network");
    this.suggestion = error.suggestion || null;
    this.recoverable = error.recoverable ?? (status === 0 || status >= 500 || status === 429);
    this.location = error.location ?? null; // scans: the JSON path or XML line of a bad file
    this.requiredRole = error.required_role ?? null; // 401/403: the role the action needs
  }
}

export async function requestJson(url, { method = "GET", headers = {}, body, timeoutMs = 10000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const init = { method, headers: { Accept: "application/json", ...headers }, signal: controller.signal };
  const csrf = stored();
  if (csrf) init.headers["X-CSRF-Token"] = csrf;
  if (body instanceof FormData) {
    init.body = body; // the browser sets the multipart Content-Type with its boundary
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { ...init, credentials: "same-origin", cache: "no-store" });
  } catch {
    throw new ApiError(0, null);
  } finally {
    clearTimeout(timer);
  }
  let payload = null;
  const text = await response.text();
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, payload);
    // The session cookie stopped working (expired, token rotated or revoked): the answer has
    // already deleted it; the page updates who it is signed in as.
    if (error.type === "session_ended") window.dispatchEvent(new CustomEvent("jupiter:session-ended"));
    throw error;
  }
  return payload;
}

/**
 * The same pattern as the service's breakers, in the browser: after ``failureThreshold``
 * failures in a row calls fail fast for ``openMs``; then one trial call decides.
 * Client errors (4xx other than 429) are the caller's fault and do not count.
 */
export class ClientBreaker {
  constructor({ failureThreshold = 3, openMs = 15000, now = () => Date.now() } = {}) {
    this.failureThreshold = failureThreshold;
    this.openMs = openMs;
    this.now = now;
    this.failures = 0;
    this.openedAt = null;
  }

  get state() {
    if (this.openedAt === null) return "closed";
    return this.now() - this.openedAt >= this.openMs ? "half_open" : "open";
  }

  /** Milliseconds until the next trial call while open, else 0. */
  get retryAfterMs() {
    return this.state === "open" ? Math.max(0, this.openMs - (this.now() - this.openedAt)) : 0;
  }

  async call(fn) {
    if (this.state === "open") {
      const error = new ApiError(0, {
        error: {
          type: "circuit_open",
          message: "Paused after repeated failures; trying again shortly.",
          recoverable: true,
        },
      });
      error.retryAfterMs = this.retryAfterMs;
      throw error;
    }
    try {
      const result = await fn();
      this.failures = 0;
      this.openedAt = null;
      return result;
    } catch (error) {
      const counts = !(error instanceof ApiError) || error.status === 0 || error.status >= 500 || error.status === 429;
      if (counts) {
        this.failures += 1;
        if (this.state === "half_open" || this.failures >= this.failureThreshold) this.openedAt = this.now();
      }
      throw error;
    }
  }
}
