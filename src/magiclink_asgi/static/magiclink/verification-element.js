// verification-element.js: <magiclink-verification>, the page the emailed link leads to: it
// activates the session or says where the flow completed; an expired link gets a new one in
// one click in the browser that asked for it.
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

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
      this._showEmailVerified(h("p", { className: "ml-lead" },
        "You can close this tab: the page where you added it has already moved on."), ml.isSignedIn);
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
    // an added address's link: the account's one address whose email expired (with several,
    // the account page's Verify buttons say which)
    const address = flow === "email_address" && code === "expired" ? this._expiredAddress() : null;
    const renewable = Boolean(address) || (code === "expired" && attempt?.id &&
      attempt.status !== "complete" && v && v.status === "expired");
    const title = code === "expired" ? "Your link has expired"
      : code === "client_mismatch" ? "Open the link on the same device" : "This link didn't work";
    const live = this._liveRegion();
    const resend = async (button) => {
      button.disabled = true;
      try {
        if (address) {
          await address.prepareVerification({ redirectUrl: address.verification.redirectUrl });
          await this._showSent(address, again);
          return;
        }
        await (flow === "sign_up"
          ? attempt.prepareEmailAddressVerification({ redirectUrl: v.redirectUrl })
          : attempt.prepareFirstFactor({ redirectUrl: v.redirectUrl }));
        location.replace(again.pathname + again.search); // Back skips the dead link's page
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

  _expiredAddress() {
    const expired = (this.ml.user?.emailAddresses || []).filter((address) =>
      !address.verified && address.verification?.status === "expired");
    return expired.length === 1 ? expired[0] : null;
  }

  // A new link sent to `address` from here. This page waits for it, as every "check your
  // email" page does (so does the account page, if still open where the address was added).
  async _showSent(address, account) {
    this._state("resent");
    const back = h("a", { className: "ml-button", href: account.pathname + account.search },
      "Back to your account");
    const lead = h("p", { className: "ml-lead", role: "status" }, "We sent a new link to ",
      emailText(address.emailAddress), ". Open it to verify the address: this page moves on by itself.");
    this._show(this._card(icon("mail"), h("h1", { className: "ml-title" }, "Check your email"),
      lead, h("div", { className: "ml-actions" }, back)));
    const leaving = new AbortController();
    back.addEventListener("click", () => leaving.abort(), { once: true });
    try {
      await address._waitForVerification(leaving.signal);
    } catch (err) {
      lead.replaceChildren(describeError(err)); // removed meanwhile, say: the account page has it
      return;
    }
    if (leaving.signal.aborted || address.verification?.status !== "verified") return;
    this._showEmailVerified(h("p", { className: "ml-lead", role: "status" },
      emailText(address.emailAddress), " is verified."), true);
  }

  _showEmailVerified(lead, signedIn) {
    this._state("verified-email");
    this._show(this._card(
      icon("check"),
      h("h1", { className: "ml-title" }, "Email address verified"),
      lead,
      signedIn ? h("p", {}, h("a", { className: "ml-button ml-primary",
        href: this.attr("user-profile-url", `${this.prefix}/user`) }, "Back to your account")) : null,
    ));
  }
}
