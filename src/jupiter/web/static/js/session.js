// Who the page is signed in as. Signing in trades a token for an HttpOnly session cookie
// (POST /api/session); the page never keeps the token, and never puts one in a URL. The
// answer's csrf_token is kept in this origin's storage and goes out as X-CSRF-Token (and in
// the socket's subprotocols): the server counts the cookie only together with it.
import { requestJson, setCsrfToken, ApiError } from "./api.js";

export const ROLES = ["viewer", "analyst", "admin"];

export function roleRank(role) {
  return role ? ROLES.indexOf(role) + 1 : 0;
}

export class JupiterSession extends EventTarget {
  constructor() {
    super();
    this.info = null; // the last answer of /api/session
  }

  get role() {
    return this.info ? this.info.role : null;
  }

  get signedIn() {
    return Boolean(this.info && this.info.authenticated);
  }

  /** The role an action (read, chat, scan_import, admin) needs, from the server. */
  needs(action) {
    return (this.info && this.info.requirements && this.info.requirements[action]) || (action === "read" ? "viewer" : "admin");
  }

  /** Whether the page, as it is signed in now (or anonymous), may do ``action``. */
  can(action) {
    return roleRank(this.role) >= roleRank(this.needs(action));
  }

  async refresh() {
    return this.apply(await requestJson("/api/session"));
  }

  async signIn(token) {
    return this.apply(await requestJson("/api/session", { method: "POST", body: { token } }));
  }

  async signOut() {
    return this.apply(await requestJson("/api/session", { method: "DELETE" }));
  }

  apply(info) {
    const first = this.info === null;
    const before = this.info ? `${this.info.role}:${this.info.name}` : null;
    this.info = info || null;
    if (this.info && this.info.csrf_token) setCsrfToken(this.info.csrf_token); // just signed in
    else if (!this.info || this.info.via !== "session") setCsrfToken(null); // signed out or ended
    const after = this.info ? `${this.info.role}:${this.info.name}` : null;
    // "changed": the identity changed after the page had one (sign in, sign out, an ended session).
    this.dispatchEvent(new CustomEvent("change", { detail: { info: this.info, changed: !first && before !== after } }));
    return this.info;
  }

  on(handler) {
    this.addEventListener("change", (event) => handler(event.detail));
    return this;
  }
}

/** "admin (admin)" or "analyst 'ci-bot'" for the top bar. */
export function describe(info) {
  if (!info) return "Checking sign-in…";
  if (info.authenticated) return `Signed in: ${info.name} (${info.role})`;
  if (info.role) return `Not signed in (${info.role} access)`;
  return "Not signed in";
}

/** What a sign-in form says when POST /api/session refused (or could not be reached). */
export function signInErrorText(error) {
  return error instanceof ApiError && error.status === 401
    ? "That token is not valid (it may have been rotated or revoked). `jupiter token` shows the admin token."
    : `Could not sign in: ${error.message}`;
}
