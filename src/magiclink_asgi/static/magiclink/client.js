// client.js: the entry point. MagicLink (load, setSession, signOut and telling the other tabs,
// the verification page, the hosted pages' URLs, listeners), createClient, useMagicLink,
// sharedClient, the default export.
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

let firstContact = null;

// history.state: the outcome the verification page read from its URL (see
// handleMagicLinkVerification)
const OUTCOME_KEY = "magiclink:outcome";
const LANDING_PARAMS = new Set(["__magiclink_status", "__magiclink_created_session"]);

// The tabs of this browser tell each other when one signed out (the session cookie is
// theirs too): a BroadcastChannel per prefix, where the browser has one.
function signOutChannel(prefix, heard) {
  if (typeof BroadcastChannel !== "function") return null;
  const channel = new BroadcastChannel(`magiclink:${prefix}`);
  channel.unref?.(); // node, which loads the module in the tests: no reason to keep running
  channel.addEventListener("message", (event) => {
    if (event.data?.type === "signed-out") heard();
  });
  return channel;
}

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
    // signed out in another tab: read the client again, and tell the listeners
    this._tabs = signOutChannel(this.prefix, () => {
      if (this.loaded && this.user) this.load().catch((err) => console.error(err));
    });
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
    this._takeUser();
    this.loaded = true;
    this._emit();
    return this;
  }

  _pickSession() {
    const sessions = this.client.sessions || [];
    this.session = sessions.find((s) => s.current) ||
      sessions.find((s) => s.id === this.client.lastActiveSessionId) || null;
  }

  // The user the client's answer carried (null when signed out): no request of its own, so
  // a signed-out page asks nothing that answers 401.
  _takeUser() {
    const data = this.client._user;
    if (!data) this.user = null;
    else if (this.user) this.user._assign(data);
    else this.user = new User(this, data);
    return this.user;
  }

  // The user, read on its own: after a session was made active here (its cookie just set).
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

  // A code typed here completed a sign-in or sign-up, and its answer set the session cookie:
  // read the session and the user it belongs to, as load() does, and tell the listeners.
  async _adoptSession(sessionId) {
    await this.client.reload();
    this._pickSession();
    if (this.session?.id !== sessionId) return; // the cookie did not stick: setSession will do
    this._takeUser();
    this._emit();
  }

  /** Sign this browser out; its other tabs hear of it (their listeners are told). */
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
    this._tabs?.postMessage({ type: "signed-out" });
    this._emit();
  }

  /**
   * Finish on the page the emailed link leads to. Verified with a session for this browser:
   * activate it and go to `redirectUrlComplete`. Verified, but completed for another device (or
   * an email verification): call `onVerifiedOnOtherDevice()` and resolve, staying on the page.
   * Anything else throws a MagicLinkError (Expired, Failed, ClientMismatch). The outcome is
   * read from the URL once, then kept in `history.state`: the same page after a reload.
   */
  async handleMagicLinkVerification({ redirectUrl, redirectUrlComplete,
    onVerifiedOnOtherDevice } = {}) {
    const url = new URL(location.href);
    let status = url.searchParams.get("__magiclink_status");
    let created = url.searchParams.get("__magiclink_created_session");
    const state = history.state && typeof history.state === "object" ? history.state : {};
    if (status) {
      // out of the address bar, but kept with this page's history entry: a reload, or Back
      // and Forward to it, shows the same outcome (not "this link didn't work")
      // only the landing's own parameters leave: the app's stay byte for byte (deleting them
      // through searchParams would re-encode the whole query)
      const kept = url.search.slice(1).split("&")
        .filter((pair) => pair && !LANDING_PARAMS.has(pair.split("=", 1)[0]));
      history.replaceState({ ...state, [OUTCOME_KEY]: { status, created } }, "",
        url.pathname + (kept.length ? `?${kept.join("&")}` : "") + url.hash);
    } else if (state[OUTCOME_KEY]) {
      ({ status, created } = state[OUTCOME_KEY]);
    }
    if (status === "verified") {
      if (created) {
        // this page was a step on the way: replaced, so Back does not come here again
        await this.setSession(created, () => {
          if (redirectUrlComplete) location.replace(redirectUrlComplete);
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

  /**
   * The guide's <RedirectToSignIn />: go to the hosted sign-in page (and come back). A redirect
   * replaces this page in the history: Back from the sign-in page does not land on a page that
   * sends the visitor straight back to it.
   */
  redirectToSignIn({ redirectUrl = location.pathname + location.search } = {}) {
    location.replace(this.signInUrl({ redirectUrl }));
  }

  redirectToSignUp({ redirectUrl } = {}) {
    location.replace(this.signUpUrl({ redirectUrl }));
  }

  redirectToUserProfile() {
    location.replace(this.userProfileUrl());
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
