// resources.js: the guide's resources over the HTTP API: SignUp, SignIn, EmailAddress,
// Session, User and Client (this browser).
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

/** A sign-up in progress (the guide's `signUp`). `create` fills this object in place. */
export class SignUp extends Resource {
  _assign(data) {
    const { verifications, ...rest } = data;
    Object.assign(this, rest);
    this.verifications = { emailAddress: this._verificationOf(verifications?.emailAddress) };
    this._emit();
    return this;
  }

  get _verification() {
    return this.verifications?.emailAddress || null;
  }

  /** Start a sign-up: `{emailAddress}`. */
  async create({ emailAddress }) {
    this._freshVerification();
    return this._assign(await this._ml._transport.request("POST", "/v1/client/sign_ups",
      { body: { emailAddress } }));
  }

  /**
   * Send the sign-up email: `{redirectUrl}` for its link (`strategy: "email_link"`, the
   * default), or `{strategy: "email_code"}` for a code only. The email carries a code as well
   * unless the app sends links only: `verifications.emailAddress.supportedStrategies` says.
   */
  async prepareEmailAddressVerification({ redirectUrl, strategy = "email_link" } = {}) {
    const data = await this._ml._transport.request("POST",
      `/v1/client/sign_ups/${encodeURIComponent(this.id)}/prepare_verification`,
      { body: { strategy, redirectUrl } });
    this._freshVerification();
    return this._assign(data);
  }

  /**
   * Finish the sign-up with the code from its email, typed on this device: `{code}`.
   * Resolves with the sign-up, `complete`, this browser signed in (the server set the session
   * cookie; `ml.user` and `ml.session` are loaded). A wrong code throws an APIError with code
   * `email_code_incorrect` (`err.meta.attemptsLeft`); the last allowed wrong one, `failed`
   * (the verification is spent: send a new email); too many tries, `rate_limited` (429).
   */
  async attemptEmailAddressVerification({ code, strategy = "email_code" } = {}) {
    return this._attemptCode(
      `/v1/client/sign_ups/${encodeURIComponent(this.id)}/attempt_verification`,
      { code, strategy });
  }

  /** Read it again; `{wait, version}` long-polls until it changes. */
  async reload(options = {}) {
    return this._reloadFrom(`/v1/client/sign_ups/${encodeURIComponent(this.id)}`, options);
  }

  createMagicLinkFlow() {
    return magicLinkFlow(this, ({ redirectUrl, strategy }) =>
      this.prepareEmailAddressVerification({ redirectUrl: absolute(redirectUrl), strategy }));
  }
}

/** A sign-in in progress (the guide's `signIn`). `create` fills this object in place. */
export class SignIn extends Resource {
  _assign(data) {
    const { firstFactorVerification, ...rest } = data;
    Object.assign(this, rest);
    this.firstFactorVerification = this._verificationOf(firstFactorVerification);
    this._emit();
    return this;
  }

  get _verification() {
    return this.firstFactorVerification || null;
  }

  /** Start a sign-in: `{identifier}` (an email address). */
  async create({ identifier }) {
    this._freshVerification();
    return this._assign(await this._ml._transport.request("POST", "/v1/client/sign_ins",
      { body: { identifier } }));
  }

  /**
   * Send the sign-in email: `{emailAddressId, redirectUrl}` for its link (`strategy:
   * "email_link"`, the default), or `{strategy: "email_code"}` for a code only. Which
   * strategies the app offers is in `supportedFirstFactors`.
   */
  async prepareFirstFactor({ emailAddressId, redirectUrl, strategy = "email_link" } = {}) {
    const data = await this._ml._transport.request("POST",
      `/v1/client/sign_ins/${encodeURIComponent(this.id)}/prepare_first_factor`,
      { body: { strategy, emailAddressId, redirectUrl } });
    this._freshVerification();
    return this._assign(data);
  }

  /**
   * Finish the sign-in with the code from its email, typed on this device:
   * `{strategy: "email_code", code}`. Resolves with the sign-in, `complete`, this browser
   * signed in (the server set the session cookie; `ml.user` and `ml.session` are loaded), and
   * a startMagicLinkFlow waiting on it resolves too. Errors as
   * SignUp.attemptEmailAddressVerification.
   */
  async attemptFirstFactor({ strategy = "email_code", code } = {}) {
    return this._attemptCode(
      `/v1/client/sign_ins/${encodeURIComponent(this.id)}/attempt_first_factor`,
      { code, strategy });
  }

  async reload(options = {}) {
    return this._reloadFrom(`/v1/client/sign_ins/${encodeURIComponent(this.id)}`, options);
  }

  /** `{strategy}` the first factor the app supports, `email_link` before `email_code`. */
  _firstFactor(strategy) {
    const factors = this.supportedFirstFactors || [];
    return factors.find((f) => f.strategy === (strategy || "email_link")) ||
      (strategy ? null : factors.find((f) => f.strategy === "email_code")) || null;
  }

  createMagicLinkFlow() {
    return magicLinkFlow(this, ({ redirectUrl, emailAddressId, strategy }) => {
      // an app that sends codes only offers no email_link: ask for what it offers
      const factor = this._firstFactor(strategy);
      return this.prepareFirstFactor({
        redirectUrl: absolute(redirectUrl),
        emailAddressId: emailAddressId || factor?.emailAddressId,
        strategy: strategy || factor?.strategy,
      });
    });
  }
}

/** One of the signed-in user's email addresses. */
export class EmailAddress extends Resource {
  _assign(data) {
    const { verification: v, ...rest } = data;
    Object.assign(this, rest);
    this.verification = this._verificationOf(v);
    this._emit();
    return this;
  }

  toString() {
    return this.emailAddress;
  }

  /**
   * Send the verification email: `{redirectUrl}` for its link (`strategy: "email_link"`, the
   * default), or `{strategy: "email_code"}` for a code only.
   */
  async prepareVerification({ redirectUrl, strategy = "email_link" } = {}) {
    const data = await this._ml._transport.request("POST",
      `/v1/me/email_addresses/${encodeURIComponent(this.id)}/prepare_verification`,
      { body: { strategy, redirectUrl: absolute(redirectUrl) } });
    this._freshVerification();
    return this._assign(data);
  }

  /**
   * Verify the address with the code from its email, typed on this device: `{code}`.
   * Resolves with the address, verified. Errors as SignUp.attemptEmailAddressVerification.
   */
  async attemptVerification({ code, strategy = "email_code" } = {}) {
    return this._attemptCode(
      `/v1/me/email_addresses/${encodeURIComponent(this.id)}/attempt_verification`,
      { code, strategy });
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
    return magicLinkFlow(this, ({ redirectUrl, strategy }) =>
      this.prepareVerification({ redirectUrl, strategy }));
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

/**
 * This browser (the API's client): its sessions and its sign-in and sign-up in progress. The
 * answer carries the signed-in user too (null when signed out), which MagicLink takes as
 * `ml.user`: a page learns who is signed in from this one request.
 */
export class Client extends Resource {
  _assign(data) {
    const { signIn, signUp, sessions, user, ...rest } = data;
    Object.defineProperty(this, "_user", { value: user || null, enumerable: false,
      configurable: true, writable: true });
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
