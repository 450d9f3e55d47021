// magiclink.js: the browser client and the custom elements of magiclink.
// One dependency-free ES module, served by MagicLinkMiddleware at {prefix}/static/magiclink.js.
//
//   import { MagicLink, isMagicLinkError, MagicLinkErrorCode } from "/auth/static/magiclink.js";
//   const ml = await MagicLink.load();                 // prefix: from this module's own URL
//   const signIn = await ml.client.signIn.create({ identifier: "ada@example.com" });
//   const { startMagicLinkFlow, cancelMagicLinkFlow } = signIn.createMagicLinkFlow();
//   const res = await startMagicLinkFlow({ redirectUrl: location.origin + "/verification" });
//   if (res.status === "complete") await ml.setSession(res.createdSessionId, () => location.assign("/"));
//
// Importing the module also defines <magiclink-sign-in>, <magiclink-sign-up>,
// <magiclink-user-profile>, <magiclink-verification> and <magiclink-sign-out>.
// Waiting is a loop of long polls (GET ...?wait=25&version=v) that the server answers the moment
// the link is clicked; it retries with backoff when the connection drops and stops on cancel.
// JavaScript names are camelCase; the wire is snake_case (docs/http-api.md).

const MODULE_URL = new URL(import.meta.url);
const DEFAULT_PREFIX = MODULE_URL.pathname.replace(/\/static\/magiclink\.js$/, "");
const WAIT_SECONDS = 25;
const REQUEST_TIMEOUT_MS = (WAIT_SECONDS + 15) * 1000; // a hung connection is dropped and retried
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;

// -- errors --------------------------------------------------------------------------------

/** Why a magic link did not work (the guide's MagicLinkErrorCode). */
export const MagicLinkErrorCode = Object.freeze({
  Expired: "expired",
  Failed: "failed",
  ClientMismatch: "client_mismatch",
});

const LINK_CODES = new Set(Object.values(MagicLinkErrorCode));

/** A magic link that did not work; `code` is one of MagicLinkErrorCode. */
export class MagicLinkError extends Error {
  constructor(code, message) {
    super(message || LINK_MESSAGES[code] || "The link did not work.");
    this.name = "MagicLinkError";
    this.code = code;
  }
}

/** An error answer from the API: `status`, `code`, `errors` (each {code, message, longMessage}). */
export class APIError extends Error {
  constructor(status, errors, retryAfter) {
    const first = (errors && errors[0]) || {};
    super(first.longMessage || first.message || `Request failed (${status})`);
    this.name = "APIError";
    this.status = status;
    this.code = first.code || "unknown";
    this.errors = errors || [];
    this.retryAfter = retryAfter;
  }
}

/** Whether `err` is a magic link error (expired, failed, client mismatch). */
export function isMagicLinkError(err) {
  return Boolean(err) && (err instanceof MagicLinkError ||
    (err.name === "MagicLinkError" && LINK_CODES.has(err.code)));
}

const LINK_MESSAGES = {
  expired: "This link has expired.",
  failed: "This link did not work: it was used already, replaced by a newer one, or changed.",
  client_mismatch: "This link must be opened on the device that asked for it.",
};

// -- wire helpers ----------------------------------------------------------------------------

const toCamel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
const toSnake = (s) => s.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());

function camelize(value) {
  if (Array.isArray(value)) return value.map(camelize);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[toCamel(k)] = camelize(v);
    return out;
  }
  return value;
}

function snakify(value) {
  const out = {};
  for (const [k, v] of Object.entries(value || {})) if (v !== undefined) out[toSnake(k)] = v;
  return out;
}

function abortError() {
  return new DOMException("The magic link flow was cancelled.", "AbortError");
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const done = () => { clearTimeout(timer); window.removeEventListener("online", done);
      signal?.removeEventListener("abort", stop); resolve(); };
    const stop = () => { clearTimeout(timer); window.removeEventListener("online", done);
      reject(abortError()); };
    const timer = setTimeout(done, ms);
    window.addEventListener("online", done); // back online: retry at once
    signal?.addEventListener("abort", stop, { once: true });
  });
}

class Transport {
  constructor(prefix) {
    this.prefix = prefix;
  }

  async request(method, path, { body, query, signal, timeoutMs } = {}) {
    const url = new URL(this.prefix + path, location.origin);
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = timeoutMs ? setTimeout(() => controller.abort(), timeoutMs) : null;
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        cache: "no-store",
        headers: body === undefined
          ? { Accept: "application/json" }
          : { Accept: "application/json", "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(snakify(body)),
        signal: controller.signal,
      });
    } catch (err) {
      if (signal?.aborted) throw abortError();
      throw new NetworkError(err);
    } finally {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!response.ok) {
      const retry = Number(response.headers.get("Retry-After"));
      throw new APIError(response.status, camelize(data?.errors || []),
        Number.isFinite(retry) && retry > 0 ? retry : undefined);
    }
    return camelize(data);
  }
}

/** The connection dropped (or timed out); the request may be retried. */
export class NetworkError extends Error {
  constructor(cause) {
    super("Could not reach the server.");
    this.name = "NetworkError";
    this.cause = cause;
  }
}

function retriable(err) {
  return err instanceof NetworkError ||
    (err instanceof APIError && (err.status >= 500 || err.status === 429 || err.status === 408));
}

// -- resources -------------------------------------------------------------------------------

/** One email-link verification (the guide's `verification`). */
export class Verification {
  constructor(data) {
    Object.assign(this, data);
  }

  /** Whether the link was opened by this browser (in this tab or another one). */
  verifiedFromTheSameClient() {
    return this.status === "verified" && Boolean(this.verifiedFromTheSameClient_);
  }
}

function verification(data) {
  if (!data) return null;
  const { verifiedFromTheSameClient, ...rest } = data;
  const v = new Verification(rest);
  v.verifiedFromTheSameClient_ = Boolean(verifiedFromTheSameClient);
  return v;
}

class Resource {
  constructor(ml, data) {
    Object.defineProperty(this, "_ml", { value: ml, enumerable: false });
    Object.defineProperty(this, "_listeners", { value: new Set(), enumerable: false });
    if (data) this._assign(data);
  }

  _assign(data) {
    Object.assign(this, data);
    this._emit();
    return this;
  }

  /** Call `fn(resource)` whenever this resource changes; returns the unsubscribe function. */
  addListener(fn) {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  _emit() {
    for (const fn of this._listeners || []) {
      try { fn(this); } catch (err) { console.error(err); }
    }
  }

  /** The verification this resource waits on (overridden per kind). */
  get _verification() {
    return this.verification || null;
  }

  async _reloadFrom(path, { wait, version, signal } = {}) {
    const data = await this._ml._transport.request("GET", path, {
      query: wait ? { wait, version } : undefined,
      signal,
      timeoutMs: wait ? REQUEST_TIMEOUT_MS : 20000,
    });
    return this._assign(data);
  }

  // Long-poll until the verification leaves "unverified" (or `signal` aborts).
  async _waitForVerification(signal) {
    let backoff = BACKOFF_FIRST_MS;
    let recovering = false;
    while (!signal.aborted) {
      const current = this._verification;
      if (!current || current.status !== "unverified") return this;
      try {
        // after a failure, one quick read first: it proves the way back and catches up
        if (recovering) await this.reload({ signal });
        else await this.reload({ wait: WAIT_SECONDS, version: this.version, signal });
        recovering = false;
        backoff = BACKOFF_FIRST_MS;
      } catch (err) {
        recovering = true;
        if (signal.aborted || err?.name === "AbortError") break;
        if (!retriable(err)) throw err;
        const pause = err.retryAfter ? err.retryAfter * 1000 : backoff;
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        this._ml._emitConnection(false);
        try {
          await sleep(pause * (0.8 + Math.random() * 0.4), signal);
        } catch {
          break;
        }
        continue;
      }
      this._ml._emitConnection(true);
    }
    return this;
  }
}

// A flow object as the guide's createMagicLinkFlow() returns it.
function magicLinkFlow(resource, prepare) {
  let controller = null;
  return {
    /**
     * Send the link, then wait until it is opened (or expires, or fails); resolves with the
     * updated resource. `onPrepared(resource)` is called once the email is sent (the
     * confirmation code is then in the resource's verification). cancelMagicLinkFlow() ends
     * the wait: the promise then resolves with the resource as it is.
     */
    async startMagicLinkFlow(params = {}) {
      controller?.abort();
      const mine = new AbortController();
      controller = mine;
      const { onPrepared, ...rest } = params;
      await prepare(rest, mine.signal);
      if (typeof onPrepared === "function") onPrepared(resource);
      try {
        return await resource._waitForVerification(mine.signal);
      } finally {
        if (controller === mine) controller = null;
      }
    },
    cancelMagicLinkFlow() {
      controller?.abort();
      controller = null;
    },
  };
}

/** A sign-up in progress (the guide's `signUp`). `create` fills this object in place. */
export class SignUp extends Resource {
  _assign(data) {
    const { verifications, ...rest } = data;
    Object.assign(this, rest);
    this.verifications = { emailAddress: verification(verifications?.emailAddress) };
    this._emit();
    return this;
  }

  get _verification() {
    return this.verifications?.emailAddress || null;
  }

  /** Start a sign-up: `{emailAddress}`. */
  async create({ emailAddress }) {
    return this._assign(await this._ml._transport.request("POST", "/v1/client/sign_ups",
      { body: { emailAddress } }));
  }

  /** Email the sign-up link: `{redirectUrl}`. */
  async prepareEmailAddressVerification({ redirectUrl, strategy = "email_link" } = {}) {
    return this._assign(await this._ml._transport.request("POST",
      `/v1/client/sign_ups/${encodeURIComponent(this.id)}/prepare_verification`,
      { body: { strategy, redirectUrl } }));
  }

  /** Read it again; `{wait, version}` long-polls until it changes. */
  async reload(options = {}) {
    return this._reloadFrom(`/v1/client/sign_ups/${encodeURIComponent(this.id)}`, options);
  }

  createMagicLinkFlow() {
    return magicLinkFlow(this, ({ redirectUrl }) =>
      this.prepareEmailAddressVerification({ redirectUrl: absolute(redirectUrl) }));
  }
}

/** A sign-in in progress (the guide's `signIn`). `create` fills this object in place. */
export class SignIn extends Resource {
  _assign(data) {
    const { firstFactorVerification, ...rest } = data;
    Object.assign(this, rest);
    this.firstFactorVerification = verification(firstFactorVerification);
    this._emit();
    return this;
  }

  get _verification() {
    return this.firstFactorVerification || null;
  }

  /** Start a sign-in: `{identifier}` (an email address). */
  async create({ identifier }) {
    return this._assign(await this._ml._transport.request("POST", "/v1/client/sign_ins",
      { body: { identifier } }));
  }

  /** Email the sign-in link: `{emailAddressId, redirectUrl}`. */
  async prepareFirstFactor({ emailAddressId, redirectUrl, strategy = "email_link" } = {}) {
    return this._assign(await this._ml._transport.request("POST",
      `/v1/client/sign_ins/${encodeURIComponent(this.id)}/prepare_first_factor`,
      { body: { strategy, emailAddressId, redirectUrl } }));
  }

  async reload(options = {}) {
    return this._reloadFrom(`/v1/client/sign_ins/${encodeURIComponent(this.id)}`, options);
  }

  createMagicLinkFlow() {
    return magicLinkFlow(this, ({ redirectUrl, emailAddressId }) =>
      this.prepareFirstFactor({
        redirectUrl: absolute(redirectUrl),
        emailAddressId: emailAddressId ||
          (this.supportedFirstFactors || []).find((f) => f.strategy === "email_link")
            ?.emailAddressId,
      }));
  }
}

/** One of the signed-in user's email addresses. */
export class EmailAddress extends Resource {
  _assign(data) {
    const { verification: v, ...rest } = data;
    Object.assign(this, rest);
    this.verification = verification(v);
    this._emit();
    return this;
  }

  toString() {
    return this.emailAddress;
  }

  async prepareVerification({ redirectUrl, strategy = "email_link" } = {}) {
    return this._assign(await this._ml._transport.request("POST",
      `/v1/me/email_addresses/${encodeURIComponent(this.id)}/prepare_verification`,
      { body: { strategy, redirectUrl: absolute(redirectUrl) } }));
  }

  async reload(options = {}) {
    return this._reloadFrom(`/v1/me/email_addresses/${encodeURIComponent(this.id)}`, options);
  }

  /** Remove it from the account (not the primary address). */
  async destroy() {
    await this._ml._transport.request("DELETE",
      `/v1/me/email_addresses/${encodeURIComponent(this.id)}`);
  }

  /** Make it the primary address (it must be verified). */
  async makePrimary() {
    return this._ml.user.update({ primaryEmailAddressId: this.id });
  }

  createMagicLinkFlow() {
    return magicLinkFlow(this, ({ redirectUrl }) => this.prepareVerification({ redirectUrl }));
  }
}

/** A signed-in session. */
export class Session extends Resource {
  /** Sign this session out (the current one, or another of the user's). */
  async end() {
    const path = this.current
      ? `/v1/client/sessions/${encodeURIComponent(this.id)}/end`
      : `/v1/me/sessions/${encodeURIComponent(this.id)}/revoke`;
    return this._assign(await this._ml._transport.request("POST", path, { body: {} }));
  }

  revoke() {
    return this.end();
  }
}

/** The signed-in user. */
export class User extends Resource {
  _assign(data) {
    const { emailAddresses, ...rest } = data;
    Object.assign(this, rest);
    this.emailAddresses = (emailAddresses || []).map((e) => new EmailAddress(this._ml, e));
    this._emit();
    return this;
  }

  get primaryEmailAddress() {
    return this.emailAddresses.find((e) => e.id === this.primaryEmailAddressId) || null;
  }

  async reload() {
    return this._assign(await this._ml._transport.request("GET", "/v1/me"));
  }

  /** Add an unverified address: `{email}`; resolves with the new EmailAddress. */
  async createEmailAddress({ email, emailAddress } = {}) {
    const data = await this._ml._transport.request("POST", "/v1/me/email_addresses",
      { body: { emailAddress: email ?? emailAddress } });
    const address = new EmailAddress(this._ml, data);
    this.emailAddresses = [...this.emailAddresses, address];
    this._emit();
    return address;
  }

  /** Change the user: `{primaryEmailAddressId}`. */
  async update(fields) {
    return this._assign(await this._ml._transport.request("PATCH", "/v1/me", { body: fields }));
  }

  /** The user's live sessions, on every device. */
  async getSessions() {
    const list = await this._ml._transport.request("GET", "/v1/me/sessions");
    return (list?.data || []).map((s) => new Session(this._ml, s));
  }
}

/** This browser (the API's client): its sessions and its sign-in and sign-up in progress. */
export class Client extends Resource {
  _assign(data) {
    const { signIn, signUp, sessions, ...rest } = data;
    Object.assign(this, rest);
    this.sessions = (sessions || []).map((s) => new Session(this._ml, s));
    if (!this.signIn) this.signIn = new SignIn(this._ml);
    if (!this.signUp) this.signUp = new SignUp(this._ml);
    if (signIn) this.signIn._assign(signIn);
    if (signUp) this.signUp._assign(signUp);
    this._emit();
    return this;
  }

  async reload() {
    return this._assign(await this._ml._transport.request("GET", "/v1/client"));
  }
}

// -- the entry point -------------------------------------------------------------------------

function absolute(url) {
  return url ? new URL(url, location.href).href : url;
}

let firstContact = null;

/** The browser client for one magiclink prefix. */
export class MagicLink {
  /** `{prefix}`: where the middleware is mounted (default: taken from this module's URL). */
  constructor({ prefix } = {}) {
    this.prefix = (prefix ?? DEFAULT_PREFIX).replace(/\/$/, "");
    this._transport = new Transport(this.prefix);
    this._listeners = new Set();
    this.client = new Client(this, {});
    this.user = null;
    this.session = null;
    this.online = true;
    this.loaded = false;
  }

  /** Create a client and load the current client and user. */
  static async load(options = {}) {
    const ml = new MagicLink(options);
    await ml.load();
    return ml;
  }

  get signIn() {
    return this.client.signIn;
  }

  get signUp() {
    return this.client.signUp;
  }

  get isSignedIn() {
    return Boolean(this.user);
  }

  async load() {
    // The first API request of a browser gets its client cookie: let one request go first,
    // so that clients loading side by side on a first visit do not make two.
    if (!firstContact) {
      firstContact = this.client.reload();
      firstContact.catch(() => { firstContact = null; });
      await firstContact;
    } else {
      await firstContact.catch(() => {});
      await this.client.reload();
    }
    this._pickSession();
    await this._loadUser();
    this.loaded = true;
    this._emit();
    return this;
  }

  _pickSession() {
    const sessions = this.client.sessions || [];
    this.session = sessions.find((s) => s.current) ||
      sessions.find((s) => s.id === this.client.lastActiveSessionId) || null;
  }

  async _loadUser() {
    try {
      const data = await this._transport.request("GET", "/v1/me");
      if (this.user) this.user._assign(data);
      else this.user = new User(this, data);
    } catch (err) {
      if (err instanceof APIError && err.status === 401) this.user = null;
      else throw err;
    }
    return this.user;
  }

  /**
   * Make `sessionId` this browser's active session (collecting a session completed from
   * another device sets its cookie here), then call `beforeEmit(session)` (say, to navigate)
   * before listeners hear about it. `null` signs out.
   */
  async setSession(sessionId, beforeEmit) {
    if (sessionId === null) return this.signOut();
    const data = await this._transport.request("POST",
      `/v1/client/sessions/${encodeURIComponent(sessionId)}/touch`, { body: {} });
    this.session = new Session(this, { ...data, current: true });
    await this._loadUser();
    if (typeof beforeEmit === "function") await beforeEmit(this.session);
    this._emit();
    return this.session;
  }

  /** Sign this browser out. */
  async signOut() {
    const sessionId = this.session?.id || this.client.lastActiveSessionId;
    if (sessionId) {
      try {
        await this._transport.request("POST",
          `/v1/client/sessions/${encodeURIComponent(sessionId)}/end`, { body: {} });
      } catch (err) {
        if (!(err instanceof APIError && (err.status === 404 || err.status === 401))) throw err;
      }
    }
    this.session = null;
    this.user = null;
    this._emit();
  }

  /**
   * Finish on the page the emailed link leads to. Verified with a session for this browser:
   * activate it and go to `redirectUrlComplete`. Verified, but completed for another device (or
   * an email verification): call `onVerifiedOnOtherDevice()` and resolve, staying on the page.
   * Anything else throws a MagicLinkError (Expired, Failed, ClientMismatch).
   */
  async handleMagicLinkVerification({ redirectUrl, redirectUrlComplete,
    onVerifiedOnOtherDevice } = {}) {
    const url = new URL(location.href);
    const status = url.searchParams.get("__magiclink_status");
    const created = url.searchParams.get("__magiclink_created_session");
    if (status) {
      url.searchParams.delete("__magiclink_status");
      url.searchParams.delete("__magiclink_created_session");
      history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    }
    if (status === "verified") {
      if (created) {
        await this.setSession(created, () => {
          if (redirectUrlComplete) location.assign(redirectUrlComplete);
        });
        return { status, createdSessionId: created };
      }
      // completed for the device that asked (or an email address verified): nothing to
      // collect here. (`redirectUrl`, the guide's page for a flow needing more steps, is
      // accepted for compatibility: a magiclink flow is complete once its link is verified.)
      void redirectUrl;
      if (typeof onVerifiedOnOtherDevice === "function") onVerifiedOnOtherDevice();
      return { status, createdSessionId: null };
    }
    throw new MagicLinkError(LINK_CODES.has(status) ? status : MagicLinkErrorCode.Failed);
  }

  /** The hosted sign-in page's URL; `redirectUrl` (a path on this site) is where it goes after. */
  signInUrl({ redirectUrl } = {}) {
    return this._pageUrl("sign-in", redirectUrl);
  }

  signUpUrl({ redirectUrl } = {}) {
    return this._pageUrl("sign-up", redirectUrl);
  }

  userProfileUrl() {
    return this._pageUrl("user");
  }

  /** The guide's <RedirectToSignIn />: go to the hosted sign-in page (and come back). */
  redirectToSignIn({ redirectUrl = location.pathname + location.search } = {}) {
    location.assign(this.signInUrl({ redirectUrl }));
  }

  redirectToSignUp({ redirectUrl } = {}) {
    location.assign(this.signUpUrl({ redirectUrl }));
  }

  redirectToUserProfile() {
    location.assign(this.userProfileUrl());
  }

  _pageUrl(page, redirectUrl) {
    const query = redirectUrl ? `?redirect_url=${encodeURIComponent(redirectUrl)}` : "";
    return `${this.prefix}/${page}${query}`;
  }

  /** The guide's useMagicLink(emailAddress): `{startMagicLinkFlow, cancelMagicLinkFlow}`. */
  useMagicLink(emailAddress) {
    return emailAddress.createMagicLinkFlow();
  }

  /** Call `fn(ml)` when the signed-in state changes; returns the unsubscribe function. */
  addListener(fn) {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  _emit() {
    for (const fn of this._listeners) {
      try { fn(this); } catch (err) { console.error(err); }
    }
  }

  _emitConnection(online) {
    if (this.online === online) return;
    this.online = online;
    this._emit();
  }
}

/** `createClient({prefix})`: a MagicLink, not yet loaded (call `await ml.load()`). */
export function createClient(options) {
  return new MagicLink(options);
}

/** The guide's useMagicLink, for an EmailAddress. */
export function useMagicLink(emailAddress) {
  return emailAddress.createMagicLinkFlow();
}

const shared = new Map();

/** One loaded MagicLink per prefix, shared by the components of a page. */
export function sharedClient(prefix = DEFAULT_PREFIX) {
  const key = prefix.replace(/\/$/, "");
  if (!shared.has(key)) {
    const loading = MagicLink.load({ prefix: key });
    loading.catch(() => shared.delete(key));
    shared.set(key, loading);
  }
  return shared.get(key);
}

export default MagicLink;

// -- components ------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "className") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Icons as inline SVG (no font or emoji needed), drawn with the current colour.
const ICONS = {
  mail: ["ml-icon", "M4 6h16v12H4z M4 7l8 6 8-6"],
  check: ["ml-icon ml-ok", "M5 12.5l4.5 4.5L19 7.5"],
  clock: ["ml-icon ml-warn", "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z M12 7v5l3.5 2.5"],
  alert: ["ml-icon ml-bad", "M12 3l9.5 17h-19z M12 10v4.5 M12 17.2v.3"],
};

function icon(name) {
  const [className, path] = ICONS[name];
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "24");
  svg.setAttribute("height", "24");
  svg.setAttribute("focusable", "false");
  const shape = document.createElementNS(ns, "path");
  shape.setAttribute("d", path);
  for (const [k, v] of Object.entries({ fill: "none", stroke: "currentColor",
    "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round" })) {
    shape.setAttribute(k, v);
  }
  svg.append(shape);
  return h("div", { className, "aria-hidden": "true" }, svg);
}

let ids = 0;
const uid = (name) => `ml-${name}-${++ids}`;

function safePath(value, fallback) {
  if (!value || !value.startsWith("/") || value.startsWith("//") || value.startsWith("/\\")) {
    return fallback;
  }
  return value;
}

function describeError(err) {
  if (err instanceof APIError) {
    if (err.status === 429) {
      const wait = err.retryAfter ? ` Try again in ${Math.ceil(err.retryAfter)} seconds.` : "";
      return `Too many emails were sent to this address lately.${wait}`;
    }
    if (err.code === "invalid_email_address") return "Enter a valid email address, like ada@example.com.";
    return err.message;
  }
  if (err instanceof NetworkError) return "Could not reach the server. Check your connection and try again.";
  return err?.message || "Something went wrong. Please try again.";
}

function relativeTime(ms) {
  if (!ms) return "";
  // a past time; a clock running ahead of this browser's reads as "just now"
  const seconds = Math.min(0, Math.round((ms - Date.now()) / 1000));
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return fmt.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

function describeDevice(ua) {
  if (!ua) return "Unknown device";
  // the server usually stores a description already ("Firefox 128 on Ubuntu")
  if (!/^Mozilla\/|\(/.test(ua)) return ua.slice(0, 80);
  // a raw user agent: a short label only
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox"
    : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : null;
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS"
    : /Windows/.test(ua) ? "Windows" : /Mac OS X/.test(ua) ? "macOS"
    : /Linux/.test(ua) ? "Linux" : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser || os || ua.slice(0, 60);
}

function ensureStylesheet(prefix) {
  const href = `${prefix}/static/magiclink.css`;
  const present = [...document.querySelectorAll("link[rel=stylesheet]")]
    .some((l) => new URL(l.href, location.href).pathname === href);
  if (!present && !document.querySelector("link[data-magiclink]")) {
    document.head.append(h("link", { rel: "stylesheet", href, "data-magiclink": "" }));
  }
}

/** The base of the components: a shared client, a live region, focus on each new view. */
class MagicLinkElement extends HTMLElement {
  connectedCallback() {
    if (this._started) return;
    this._started = true;
    this.classList.add("ml-root");
    ensureStylesheet(this.prefix);
    this._show(this._card(h("p", { className: "ml-lead", role: "status" }, "Loading…")), false);
    sharedClient(this.prefix).then((ml) => {
      this.ml = ml;
      return this.start(ml);
    }).catch((err) => this._fatal(err));
  }

  disconnectedCallback() {
    this._flow?.cancelMagicLinkFlow();
  }

  get prefix() {
    return (this.getAttribute("prefix") || DEFAULT_PREFIX).replace(/\/$/, "");
  }

  get appName() {
    return this.getAttribute("app-name") || document.title.split("·").pop().trim() || "this app";
  }

  attr(name, fallback) {
    return this.getAttribute(name) || fallback;
  }

  nextUrl(attrName, fallback = "/") {
    const fromQuery = safePath(new URL(location.href).searchParams.get("redirect_url"), null);
    return this.getAttribute(attrName) || fromQuery || fallback;
  }

  // Replace the view; focus its heading so keyboard and screen-reader users follow along.
  _show(view, focus = true) {
    this.replaceChildren(view);
    const heading = view.querySelector("h1, h2");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      if (focus) heading.focus({ preventScroll: false });
    }
  }

  _card(...children) {
    return h("section", { className: "ml-card" }, ...children);
  }

  _announce(text) {
    const region = this.querySelector("[data-ml-live]");
    if (region) region.textContent = text;
  }

  _fatal(err) {
    console.error(err);
    this._show(this._card(
      h("h1", { className: "ml-title" }, "Something went wrong"),
      h("p", { className: "ml-error", role: "alert" }, describeError(err)),
      h("button", { className: "ml-button", type: "button",
        onclick: () => location.reload() }, "Reload the page"),
    ));
  }

  _state(name, detail = {}) {
    this.dataset.state = name;
    this.dispatchEvent(new CustomEvent("magiclink:state", { bubbles: true,
      detail: { state: name, ...detail } }));
  }

  _emailField(label, id, extra = {}) {
    return [
      h("label", { className: "ml-label", for: id }, label),
      h("input", { className: "ml-input", id, name: "email", type: "email",
        autocomplete: "email", inputmode: "email", required: true, spellcheck: "false",
        autocapitalize: "off", ...extra }),
    ];
  }

  _codeBox(code) {
    if (!code) return null;
    return h("div", { className: "ml-code-box" },
      h("p", { className: "ml-code-label" },
        "Opening the link on another device? Type this code there:"),
      h("p", { className: "ml-code", "data-ml-code": "", "aria-label": `Code ${code.split("").join(" ")}` },
        code));
  }

  _liveRegion() {
    return h("p", { className: "ml-live", "data-ml-live": "", role: "status", "aria-live": "polite" });
  }
}

/** <magiclink-sign-in> and <magiclink-sign-up>: the form, the wait, the result. */
class AuthFlowElement extends MagicLinkElement {
  get mode() {
    return "sign_in";
  }

  get resource() {
    return this.mode === "sign_in" ? this.ml.client.signIn : this.ml.client.signUp;
  }

  get afterUrl() {
    return this.mode === "sign_in"
      ? this.nextUrl("after-sign-in-url", "/")
      : this.nextUrl("after-sign-up-url", "/");
  }

  get verifyUrl() {
    const custom = this.getAttribute("verify-url");
    if (custom) return new URL(custom, location.href).href;
    const url = new URL(`${this.prefix}/verify`, location.origin);
    url.searchParams.set("after", this.afterUrl);
    url.searchParams.set("flow", this.mode);
    return url.href;
  }

  _verification() {
    const r = this.resource;
    return this.mode === "sign_in" ? r.firstFactorVerification : r.verifications?.emailAddress;
  }

  async start(ml) {
    if (ml.isSignedIn && !this.hasAttribute("allow-signed-in")) {
      this._showSignedIn();
      return;
    }
    const v = this._verification();
    const live = v && v.status === "unverified" && (!v.expireAt || v.expireAt > Date.now()) &&
      this.resource.status !== "complete";
    if (live && !this.hasAttribute("no-resume")) {
      this.email = this.mode === "sign_in" ? this.resource.identifier : this.resource.emailAddress;
      this._wait(false);
      return;
    }
    this._showForm();
  }

  _showSignedIn() {
    this._state("signed-in");
    this._show(this._card(
      h("h1", { className: "ml-title" }, "You're already signed in"),
      h("p", { className: "ml-lead" }, `Signed in as ${ml_primary(this.ml)}.`),
      h("p", {}, h("a", { className: "ml-button", href: this.afterUrl }, "Continue")),
    ), false);
  }

  _texts() {
    return this.mode === "sign_in"
      ? { title: `Sign in to ${this.appName}`, lead: "Welcome back! Enter your email address and we'll send you a link to sign in.",
          button: "Continue", otherText: "No account?", otherLink: "Sign up",
          otherUrl: this.attr("sign-up-url", `${this.prefix}/sign-up`) }
      : { title: `Create your ${this.appName} account`, lead: "Enter your email address and we'll send you a link to finish signing up. No password needed.",
          button: "Continue", otherText: "Have an account?", otherLink: "Sign in",
          otherUrl: this.attr("sign-in-url", `${this.prefix}/sign-in`) };
  }

  _showForm(error) {
    this._state("form");
    const t = this._texts();
    const id = uid("email");
    const errId = uid("error");
    const input = this._emailField("Email address", id, {
      value: this.email || "", "aria-describedby": error ? errId : undefined,
      "aria-invalid": error ? "true" : undefined,
    });
    const button = h("button", { className: "ml-button ml-primary", type: "submit" }, t.button);
    const form = h("form", { className: "ml-form", novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      const field = form.querySelector("input");
      const email = field.value.trim();
      if (!email || !field.checkValidity()) {
        this._showForm("Enter a valid email address, like ada@example.com.");
        this.querySelector("input")?.focus();
        return;
      }
      button.disabled = true;
      button.textContent = "Sending…";
      this.submit(email).catch((err) => {
        this._showForm(describeError(err));
        this.querySelector("input")?.focus();
      });
    } },
    ...input,
    error ? h("p", { className: "ml-error", id: errId, role: "alert" }, error) : null,
    button);
    const footer = this.hasAttribute("no-links") ? null : h("p", { className: "ml-switch" },
      `${t.otherText} `, h("a", { href: t.otherUrl }, t.otherLink));
    this._show(this._card(
      h("h1", { className: "ml-title" }, t.title),
      h("p", { className: "ml-lead" }, t.lead),
      form, footer,
    ), false);
  }

  async submit(email) {
    this.email = email;
    if (this.mode === "sign_in") await this.resource.create({ identifier: email });
    else await this.resource.create({ emailAddress: email });
    await this._wait(true);
  }

  // Send (when asked) and wait for the link; the view moves on by itself.
  async _wait(send, sentMessage = "") {
    const flow = this.resource.createMagicLinkFlow();
    let result;
    try {
      if (send) {
        result = await flow.startMagicLinkFlow({
          redirectUrl: this.verifyUrl,
          onPrepared: () => {
            this._flow?.cancelMagicLinkFlow();
            this._flow = flow;
            this._showWaiting();
            if (sentMessage) this._announce(sentMessage);
          },
        });
      } else {
        const signal = this._resumeSignal();
        this._showWaiting();
        result = await this.resource._waitForVerification(signal);
      }
    } catch (err) {
      if (err?.name === "AbortError") return;
      if (send && this._flow !== flow) throw err; // the email was not sent
      this._announce(describeError(err));
      return;
    }
    if (send && this._flow !== flow) return; // superseded by a resend
    this._finish(result);
  }

  _resumeSignal() {
    this._flow?.cancelMagicLinkFlow();
    const controller = new AbortController();
    this._flow = { cancelMagicLinkFlow: () => controller.abort() };
    return controller.signal;
  }

  _watchConnection() {
    if (this._connectionWatched) return;
    this._connectionWatched = true;
    let online = this.ml.online;
    this.ml.addListener((ml) => {
      if (ml.online === online || this.dataset.state !== "waiting") return;
      online = ml.online;
      this._announce(online ? "Connected again." : "Connection lost. Retrying…");
    });
  }

  _showWaiting() {
    this._watchConnection();
    this._state("waiting");
    const v = this._verification();
    const live = this._liveRegion();
    const what = this.mode === "sign_in" ? "sign in" : "finish signing up";
    this._show(this._card(
      icon("mail"),
      h("h1", { className: "ml-title" }, "Check your email"),
      h("p", { className: "ml-lead" }, "We sent a link to ",
        h("strong", { className: "ml-email" }, this.email || ""), `. Open it to ${what}.`),
      h("p", { className: "ml-waiting" }, h("span", { className: "ml-spinner", "aria-hidden": "true" }),
        " This page moves on by itself once you open the link."),
      this._codeBox(v?.confirmationCode),
      live,
      h("div", { className: "ml-actions" },
        h("button", { className: "ml-button", type: "button", onclick: (e) => this._resend(e.currentTarget) },
          "Resend the link"),
        h("button", { className: "ml-button ml-quiet", type: "button", onclick: () => {
          this._flow?.cancelMagicLinkFlow();
          this._showForm();
          this.querySelector("input")?.focus();
        } }, "Use a different email"),
      ),
    ));
  }

  _resend(button) {
    if (button) button.disabled = true;
    // until the new email is sent, the wait on the link already sent goes on
    this._wait(true, "A new link is on its way.").catch((err) => {
      if (button?.isConnected) button.disabled = false;
      this._announce(describeError(err));
    });
  }

  _finish(result) {
    const v = this._verification();
    const status = v?.status;
    if (v && v.verifiedFromTheSameClient()) {
      this._showOtherTab();
      return;
    }
    if (result.status === "complete" && result.createdSessionId) {
      this._complete(result.createdSessionId);
      return;
    }
    if (status === "expired") {
      this._showExpired();
      return;
    }
    if (status === "failed" || status === "client_mismatch") {
      this._showFailed(status);
      return;
    }
    if (status === "unverified") return; // cancelled
    this._showFailed("failed");
  }

  async _complete(sessionId) {
    this._state("complete");
    this._show(this._card(
      icon("check"),
      h("h1", { className: "ml-title" }, this.mode === "sign_in" ? "You're signed in" : "Your account is ready"),
      h("p", { className: "ml-lead", role: "status" }, "Taking you on…"),
    ));
    try {
      await this.ml.setSession(sessionId, () => {
        const event = new CustomEvent("magiclink:complete", { bubbles: true, cancelable: true,
          detail: { sessionId, afterUrl: this.afterUrl, mode: this.mode } });
        if (this.dispatchEvent(event) && !this.hasAttribute("no-redirect")) {
          location.assign(this.afterUrl);
        }
      });
    } catch (err) {
      this._fatal(err);
    }
  }

  _showOtherTab() {
    this._state("other-tab");
    const done = this.mode === "sign_in" ? "You signed in on another tab" : "You signed up on another tab";
    this._show(this._card(
      icon("check"),
      h("h1", { className: "ml-title" }, done),
      h("p", { className: "ml-lead" }, "You can close this tab, or continue here."),
      h("p", {}, h("a", { className: "ml-button ml-primary", href: this.afterUrl }, "Continue")),
    ));
  }

  _showExpired() {
    this._state("expired");
    this._show(this._card(
      icon("clock"),
      h("h1", { className: "ml-title" }, "Your link has expired"),
      h("p", { className: "ml-lead" }, "For your safety, links work only for a short while. Get a new one sent to ",
        h("strong", {}, this.email || "your address"), "."),
      this._liveRegion(),
      h("div", { className: "ml-actions" },
        h("button", { className: "ml-button ml-primary", type: "button",
          onclick: (e) => this._resend(e.currentTarget) }, "Send a new link"),
        h("button", { className: "ml-button ml-quiet", type: "button",
          onclick: () => this._showForm() }, "Use a different email"),
      ),
    ));
  }

  _showFailed(code) {
    this._state("failed", { code });
    this._show(this._card(
      icon("alert"),
      h("h1", { className: "ml-title" }, "That didn't work"),
      h("p", { className: "ml-lead" }, LINK_MESSAGES[code] || LINK_MESSAGES.failed),
      h("p", {}, h("button", { className: "ml-button ml-primary", type: "button",
        onclick: () => this._showForm() }, "Start again")),
    ));
  }
}

function ml_primary(ml) {
  return ml.user?.primaryEmailAddress?.emailAddress || "you";
}

class SignInElement extends AuthFlowElement {
  get mode() {
    return "sign_in";
  }
}

class SignUpElement extends AuthFlowElement {
  get mode() {
    return "sign_up";
  }
}

/** <magiclink-verification>: the page the emailed link leads to. */
class VerificationElement extends MagicLinkElement {
  async start(ml) {
    const flow = this.attr("flow", "sign_in");
    const after = this.attr("after-url", "/");
    this._state("loading");
    let otherDevice = false;
    try {
      await ml.handleMagicLinkVerification({
        redirectUrlComplete: after,
        onVerifiedOnOtherDevice: () => { otherDevice = true; },
      });
    } catch (err) {
      this._showError(isMagicLinkError(err) ? err.code : MagicLinkErrorCode.Failed, flow);
      return;
    }
    if (!otherDevice) {
      this._state("complete");
      this._show(this._card(
        icon("check"),
        h("h1", { className: "ml-title" }, flow === "sign_up" ? "Your account is ready" : "You're signed in"),
        h("p", { className: "ml-lead", role: "status" }, "Taking you on…"),
        h("p", {}, h("a", { href: after }, "Continue")),
      ));
      return;
    }
    if (flow === "email_address") {
      this._state("verified-email");
      this._show(this._card(
        icon("check"),
        h("h1", { className: "ml-title" }, "Email address verified"),
        h("p", { className: "ml-lead" }, "You can close this tab: the page where you added it has already moved on."),
        ml.isSignedIn ? h("p", {}, h("a", { className: "ml-button ml-primary",
          href: this.attr("user-profile-url", `${this.prefix}/user`) }, "Back to your account")) : null,
      ));
      return;
    }
    this._state("verified-other-device");
    const done = flow === "sign_up" ? "You're signed up" : "You're signed in";
    this._show(this._card(
      icon("check"),
      h("h1", { className: "ml-title" }, `${done} on your other device`),
      h("p", { className: "ml-lead" }, "Go back to the device or tab where you asked for the link: it has moved on by itself. You can close this one."),
    ));
  }

  _showError(code, flow) {
    this._state(code);
    const after = this.attr("after-url", "/");
    const startPage = flow === "email_address"
      ? this.attr("user-profile-url", `${this.prefix}/user`)
      : flow === "sign_up" ? this.attr("sign-up-url", `${this.prefix}/sign-up`)
        : this.attr("sign-in-url", `${this.prefix}/sign-in`);
    const again = new URL(startPage, location.href);
    if (flow !== "email_address") again.searchParams.set("redirect_url", after);
    // opened in the browser that asked: one click sends a new link, and the start page waits
    const attempt = flow === "sign_up" ? this.ml.client.signUp
      : flow === "sign_in" ? this.ml.client.signIn : null;
    const v = attempt?._verification;
    const renewable = code === "expired" && attempt?.id && attempt.status !== "complete" &&
      v && v.status === "expired";
    const title = code === "expired" ? "Your link has expired"
      : code === "client_mismatch" ? "Open the link on the same device" : "This link didn't work";
    const live = this._liveRegion();
    const resend = async (button) => {
      button.disabled = true;
      try {
        await (flow === "sign_up"
          ? attempt.prepareEmailAddressVerification({ redirectUrl: v.redirectUrl })
          : attempt.prepareFirstFactor({ redirectUrl: v.redirectUrl }));
        location.assign(again.pathname + again.search);
      } catch (err) {
        button.disabled = false;
        this._announce(describeError(err));
      }
    };
    this._show(this._card(
      icon(code === "expired" ? "clock" : "alert"),
      h("h1", { className: "ml-title" }, title),
      h("p", { className: "ml-lead" }, LINK_MESSAGES[code] || LINK_MESSAGES.failed,
        renewable ? " Get a new one with one click." : code === "expired"
          ? " Go back to the tab where you asked for it and send a new one, or start again here." : ""),
      live,
      h("div", { className: "ml-actions" },
        renewable ? h("button", { className: "ml-button ml-primary", type: "button",
          onclick: (e) => resend(e.currentTarget) }, "Send a new link") : null,
        h("a", { className: renewable ? "ml-button" : "ml-button ml-primary",
          href: again.pathname + again.search },
        flow === "email_address" ? "Back to your account" : renewable ? "Start again" : "Get a new link")),
    ));
  }
}

/** <magiclink-sign-out>: signs this browser out, then goes to `after-sign-out-url`. Reached
 * from a page of this site it does so at once; from anywhere else (a link on another site) it
 * asks first, so nobody can sign you out behind your back. */
class SignOutElement extends MagicLinkElement {
  async start(ml) {
    const after = this.attr("after-sign-out-url", `${this.prefix}/sign-in`);
    let fromHere = false;
    try {
      fromHere = Boolean(document.referrer) && new URL(document.referrer).origin === location.origin;
    } catch {
      fromHere = false;
    }
    const signOut = async () => {
      await ml.signOut();
      this._state("signed-out");
      this._show(this._card(h("h1", { className: "ml-title" }, "You're signed out")));
      location.assign(after);
    };
    if (!ml.isSignedIn) {
      location.assign(after);
      return;
    }
    if (fromHere || this.hasAttribute("immediate")) {
      await signOut();
      return;
    }
    this._state("confirm");
    this._show(this._card(
      h("h1", { className: "ml-title" }, "Sign out?"),
      h("p", { className: "ml-lead" }, `You're signed in as ${ml_primary(ml)}.`),
      h("div", { className: "ml-actions" },
        h("button", { className: "ml-button ml-primary", type: "button",
          onclick: (e) => { e.currentTarget.disabled = true; signOut().catch((err) => this._fatal(err)); } },
        "Sign out"),
        h("a", { className: "ml-button ml-quiet", href: "/" }, "Stay signed in")),
    ), false);
  }
}

/** <magiclink-user-profile>: email addresses and sessions of the signed-in user. */
class UserProfileElement extends MagicLinkElement {
  async start(ml) {
    this._unsubscribe?.();
    this._unsubscribe = ml.addListener(() => { if (!ml.user) this._showSignedOut(); });
    this._flows = new Map();
    this._pending = new Map();
    if (!ml.user) {
      this._showSignedOut();
      return;
    }
    await this.render(false);
  }

  disconnectedCallback() {
    for (const flow of this._flows?.values() || []) flow.cancelMagicLinkFlow();
    this._unsubscribe?.();
  }

  _showSignedOut() {
    this._state("signed-out");
    const signIn = new URL(this.attr("sign-in-url", `${this.prefix}/sign-in`), location.href);
    signIn.searchParams.set("redirect_url", location.pathname);
    this._show(this._card(
      h("h1", { className: "ml-title" }, "You're signed out"),
      h("p", { className: "ml-lead" }, "Sign in to see your account."),
      h("p", {}, h("a", { className: "ml-button ml-primary", href: signIn.pathname + signIn.search }, "Sign in")),
    ), false);
  }

  async render(focus = true, message = "") {
    const user = this.ml.user;
    if (!user) return this._showSignedOut();
    let sessions = [];
    try {
      sessions = await user.getSessions();
    } catch (err) {
      console.error(err);
    }
    this._state("profile");
    const live = this._liveRegion();
    const view = h("section", { className: "ml-card ml-wide ml-profile" },
      h("h1", { className: "ml-title" }, "Your account"),
      h("p", { className: "ml-lead" }, "Signed in as ",
        h("strong", {}, user.primaryEmailAddress?.emailAddress || "")),
      live,
      this._emailsSection(user),
      this._sessionsSection(sessions),
      h("div", { className: "ml-actions ml-end" },
        h("button", { className: "ml-button", type: "button", "data-ml-sign-out": "",
          onclick: () => this._signOut() }, "Sign out")),
    );
    // keep keyboard focus where it was (the same control, or the heading if it is gone)
    const active = this.contains(document.activeElement) ? document.activeElement : null;
    const key = active && (active.getAttribute("aria-label") || active.id || active.textContent);
    this._show(view, focus);
    if (key) {
      const same = [...view.querySelectorAll("button, input, a")].find((el) =>
        (el.getAttribute("aria-label") || el.id || el.textContent) === key);
      (same || view.querySelector("h1")).focus();
    }
    if (message) this._announce(message);
  }

  _emailsSection(user) {
    const headingId = uid("emails");
    const rows = user.emailAddresses.map((address) => this._emailRow(user, address));
    const inputId = uid("new-email");
    const form = h("form", { className: "ml-form ml-inline", novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      this._addEmail(form.querySelector("input").value.trim(), form);
    } },
    h("label", { className: "ml-label", for: inputId }, "Add an email address"),
    h("div", { className: "ml-row-input" },
      h("input", { className: "ml-input", id: inputId, type: "email", name: "email",
        autocomplete: "email", required: true, spellcheck: "false", autocapitalize: "off" }),
      h("button", { className: "ml-button ml-primary", type: "submit" }, "Add")),
    );
    return h("section", { className: "ml-section", "aria-labelledby": headingId },
      h("h2", { className: "ml-subtitle", id: headingId }, "Email addresses"),
      h("ul", { className: "ml-list" }, rows),
      form);
  }

  _emailRow(user, address) {
    const primary = address.id === user.primaryEmailAddressId;
    const verified = Boolean(address.verified);
    const waiting = this._pending.has(address.id);
    const row = h("li", { className: "ml-row ml-email-row", "data-email": address.emailAddress },
      h("div", { className: "ml-row-main" },
        h("span", { className: "ml-email" }, address.emailAddress),
        h("span", { className: "ml-badges" },
          primary ? h("span", { className: "ml-badge ml-badge-primary" }, "Primary") : null,
          verified ? h("span", { className: "ml-badge ml-badge-ok" }, "Verified")
            : h("span", { className: "ml-badge ml-badge-warn" }, "Unverified"))),
    );
    const actions = h("div", { className: "ml-row-actions" });
    if (!verified && !waiting) {
      actions.append(h("button", { className: "ml-button ml-small", type: "button",
        "aria-label": `Verify ${address.emailAddress}`,
        onclick: () => this._verify(address) }, "Verify"));
    }
    if (verified && !primary) {
      actions.append(h("button", { className: "ml-button ml-small", type: "button",
        "aria-label": `Make ${address.emailAddress} primary`,
        onclick: () => this._act(() => address.makePrimary(),
          `${address.emailAddress} is now your primary address.`) }, "Make primary"));
    }
    if (!primary) {
      actions.append(h("button", { className: "ml-button ml-small ml-danger", type: "button",
        "aria-label": `Remove ${address.emailAddress}`,
        onclick: (e) => this._confirmRemove(address, e.currentTarget) }, "Remove"));
    }
    row.append(actions);
    if (waiting) {
      const v = address.verification;
      row.append(h("div", { className: "ml-row-wait" },
        h("p", {}, h("span", { className: "ml-spinner", "aria-hidden": "true" }),
          " Check your email: we sent a link to ", h("strong", {}, address.emailAddress),
          ". This page updates by itself once you open it."),
        this._codeBox(v?.confirmationCode),
        h("button", { className: "ml-button ml-small ml-quiet", type: "button", onclick: () => {
          this._flows.get(address.id)?.cancelMagicLinkFlow();
        } }, "Cancel")));
    }
    if (this._pending.get(address.id) === "expired") {
      row.append(h("p", { className: "ml-error" }, "The link expired."));
    }
    return row;
  }

  _confirmRemove(address, button) {
    const actions = button.parentElement;
    const confirm = h("span", { className: "ml-confirm", role: "group",
      "aria-label": `Remove ${address.emailAddress}?` },
      h("span", {}, "Remove? "),
      h("button", { className: "ml-button ml-small ml-danger", type: "button",
        onclick: () => this._act(async () => { await address.destroy(); await this.ml.user.reload(); },
          `${address.emailAddress} was removed.`) }, "Yes, remove"),
      h("button", { className: "ml-button ml-small ml-quiet", type: "button",
        onclick: () => this.render(false) }, "Keep"));
    actions.replaceChildren(confirm);
    confirm.querySelector("button").focus();
  }

  async _act(fn, message) {
    try {
      await fn();
      await this.render(false, message);
    } catch (err) {
      this._announce(describeError(err));
    }
  }

  async _addEmail(email, form) {
    const input = form.querySelector("input");
    if (!email || !input.checkValidity()) {
      this._announce("Enter a valid email address, like ada@example.com.");
      input.focus();
      return;
    }
    let address;
    try {
      address = await this.ml.user.createEmailAddress({ email });
    } catch (err) {
      this._announce(describeError(err));
      input.focus();
      return;
    }
    await this._verify(address);
  }

  async _verify(address) {
    const flow = this.ml.useMagicLink(address);
    this._flows.get(address.id)?.cancelMagicLinkFlow();
    this._flows.set(address.id, flow);
    const redirect = new URL(`${this.prefix}/verify`, location.origin);
    redirect.searchParams.set("flow", "email_address");
    redirect.searchParams.set("after", location.pathname);
    let result;
    try {
      result = await flow.startMagicLinkFlow({
        redirectUrl: redirect.href,
        onPrepared: () => {
          this._pending.set(address.id, "waiting");
          this.render(false, `We sent a link to ${address.emailAddress}.`);
        },
      });
    } catch (err) {
      this._pending.delete(address.id);
      await this.render(false);
      this._announce(describeError(err));
      return;
    } finally {
      if (this._flows.get(address.id) === flow) this._flows.delete(address.id);
    }
    const status = result.verification?.status;
    this._pending.delete(address.id);
    await this.ml.user.reload();
    if (status === "verified") {
      await this.render(false, `${address.emailAddress} is verified.`);
    } else if (status === "expired") {
      await this.render(false, `The link for ${address.emailAddress} expired. Press Verify to get a new one.`);
    } else if (status === "unverified") {
      await this.render(false, "Stopped waiting. You can send the link again with Verify.");
    } else {
      await this.render(false, `Verifying ${address.emailAddress} failed. Press Verify to try again.`);
    }
  }

  _sessionsSection(sessions) {
    const headingId = uid("sessions");
    return h("section", { className: "ml-section", "aria-labelledby": headingId },
      h("h2", { className: "ml-subtitle", id: headingId }, "Active sessions"),
      h("ul", { className: "ml-list" }, sessions.map((s) => {
        const current = s.current || s.id === this.ml.session?.id;
        const device = describeDevice(s.userAgent);
        return h("li", { className: "ml-row ml-session-row", "data-session": s.id },
          h("div", { className: "ml-row-main" },
            h("span", {}, device,
              current ? h("span", { className: "ml-badge ml-badge-primary" }, "This device") : null),
            h("span", { className: "ml-muted" },
              [s.ipAddress, `active ${relativeTime(s.lastActiveAt)}`].filter(Boolean).join(" · "))),
          current ? null : h("div", { className: "ml-row-actions" },
            h("button", { className: "ml-button ml-small", type: "button",
              "aria-label": `Sign out ${device}, ${s.ipAddress || "unknown address"}`,
              onclick: () => this._act(() => s.revoke(), `Signed out ${device}.`) },
            "Sign out")));
      })));
  }

  async _signOut() {
    try {
      await this.ml.signOut();
    } catch (err) {
      this._announce(describeError(err));
      return;
    }
    location.assign(this.attr("after-sign-out-url", `${this.prefix}/sign-in`));
  }
}

const ELEMENTS = {
  "magiclink-sign-in": SignInElement,
  "magiclink-sign-up": SignUpElement,
  "magiclink-user-profile": UserProfileElement,
  "magiclink-verification": VerificationElement,
  "magiclink-sign-out": SignOutElement,
};

if (typeof customElements !== "undefined") {
  for (const [name, cls] of Object.entries(ELEMENTS)) {
    if (!customElements.get(name)) customElements.define(name, cls);
  }
}
