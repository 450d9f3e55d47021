// auth-flow-element.js: <magiclink-sign-in> and <magiclink-sign-up>: the form, the wait for
// the link (resumed after a reload) beside the field for the code from the email, resend, and
// the outcome (complete, another tab, started again in another tab, expired, failed). Expired,
// it waits on for a new email sent from another device, and then waits for that one.
// Whichever of the link and the code is used first, the wait ends once and the view moves on
// once.
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

// sessionStorage: where and when this tab last sent a signed-in visitor on (see _sendOn)
const SENT_ON_KEY = "magiclink:sent-on";
const BOUNCE_WINDOW_MS = 10000;

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
      if (!this._sendOn()) this._showSignedIn();
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

  // A signed-in visitor is sent on to the after-sign-in URL, this page replaced in the history
  // (Back does not come here to be sent on again). Unless that would bounce: when the after URL
  // is this very page, or this tab was sent on from here moments ago and is back (a page of
  // the app that sends signed-in people here), the page says "You're already signed in" and
  // stays. Returns whether it sent the visitor on.
  _sendOn() {
    if (this.hasAttribute("no-redirect")) return false;
    const here = location.pathname + location.search;
    const target = new URL(this.afterUrl, location.href);
    if (target.origin === location.origin && target.pathname + target.search === here) return false;
    let last = null;
    try {
      last = JSON.parse(sessionStorage.getItem(SENT_ON_KEY) || "null");
      sessionStorage.removeItem(SENT_ON_KEY);
    } catch {
      last = null; // storage refused: no guard, but no bounce is worse than a card
    }
    if (last && last.from === here && Date.now() - last.at < BOUNCE_WINDOW_MS) return false;
    try {
      sessionStorage.setItem(SENT_ON_KEY, JSON.stringify({ from: here, at: Date.now() }));
    } catch {
      return false; // without the guard a bounce could not be told apart: stay
    }
    this._state("signed-in");
    location.replace(target.href);
    return true;
  }

  _showSignedIn() {
    this._state("signed-in");
    this._show(this._card(
      h("h1", { className: "ml-title" }, "You're already signed in"),
      h("p", { className: "ml-lead" }, "Signed in as ", primaryEmail(this.ml), "."),
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

  // The form, with `error` under its field (marked invalid unless `invalid` is false).
  _showForm(error, invalid = true) {
    this._state("form");
    const t = this._texts();
    const id = uid("email");
    const errId = uid("error");
    const [label, input] = this._emailField("Email address", id, { value: this.email || "" });
    const button = h("button", { className: "ml-button ml-primary", type: "submit" }, t.button);
    const form = h("form", { className: "ml-form", novalidate: true, onsubmit: (e) => {
      e.preventDefault();
      const email = form.querySelector("input").value.trim();
      // only an empty field is refused here: the server decides what an address is (the
      // browser's own check would refuse jürgen@example.com, which mail delivers)
      if (!email) {
        this._showForm("Enter your email address, like ada@example.com.");
        this.querySelector("input")?.focus();
        return;
      }
      button.disabled = true;
      button.textContent = "Sending…";
      this.submit(email).catch((err) => {
        this._showForm(describeError(err), aboutTheField(err));
        this.querySelector("input")?.focus();
      });
    } },
    label, input, button);
    if (error) showFieldError(form, input, { message: error, id: errId, before: button, invalid });
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

  // Send (when asked) and wait for the link to be opened or the code typed; the view moves
  // on by itself.
  async _wait(send, sentMessage = "") {
    const flow = this.resource.createMagicLinkFlow();
    let result;
    this._waits = (this._waits || 0) + 1;
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
      // a code typed here that settled it has had its say (a spent code's message)
      await this._codeSubmit;
    } catch (err) {
      if (err?.name === "AbortError") return;
      if (send && this._flow !== flow) throw err; // the email was not sent
      this._announce(describeError(err));
      return;
    } finally {
      this._waits -= 1;
    }
    if (send && this._flow !== flow) return; // superseded by a resend
    this._finish(result);
  }

  // The code from the email, typed here. Done, the wait ends and moves the view on (or, when
  // nothing waits any more, this does); spent, the wait shows why; wrong, the field says so.
  _submitCode(code) {
    const r = this.resource;
    const run = (async () => {
      try {
        if (this.mode === "sign_in") await r.attemptFirstFactor({ strategy: "email_code", code });
        else await r.attemptEmailAddressVerification({ code });
      } catch (err) {
        if (!spentCode(err)) throw err;
        this._spentMessage = err.message;
      }
      if (!this._waits) this._finish(r);
    })();
    this._codeSubmit = run.catch(() => {});
    return run;
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

  // What the email carries, in words: "link", "code" or "link and code".
  _sent() {
    const { link, code } = carried(this._verification());
    return link && code ? "link and code" : code ? "code" : "link";
  }

  _showWaiting() {
    this._watchConnection();
    this._state("waiting");
    const v = this._verification();
    const { link, code } = carried(v);
    this._codeState = {}; // a new email: what was typed for the last one is moot
    this._spentMessage = "";
    const live = this._liveRegion();
    const what = this.mode === "sign_in" ? "sign in" : "finish signing up";
    const email = emailText(this.email || "");
    const lead = link && code
      ? ["We sent a link and a code to ", email, `. Open the link, or type the code here, to ${what}.`]
      : code ? ["We sent a code to ", email, `. Type it here to ${what}.`]
        : ["We sent a link to ", email, `. Open it to ${what}.`];
    this._show(this._card(
      icon("mail"),
      h("h1", { className: "ml-title" }, "Check your email"),
      h("p", { className: "ml-lead" }, ...lead),
      link ? h("p", { className: "ml-waiting" }, h("span", { className: "ml-spinner", "aria-hidden": "true" }),
        " This page moves on by itself once you open the link.") : null,
      code ? this._emailCodeForm({ submit: (c) => this._submitCode(c), state: this._codeState })
        : null,
      link ? this._confirmationCodeBox(v?.confirmationCode) : null,
      live,
      h("div", { className: "ml-actions" },
        h("button", { className: "ml-button", type: "button", onclick: (e) => this._resend(e.currentTarget) },
          link && code ? "Send a new email" : `Resend the ${this._sent()}`),
        h("button", { className: "ml-button ml-quiet", type: "button", onclick: () => {
          this._flow?.cancelMagicLinkFlow();
          this._showForm();
          this.querySelector("input")?.focus();
        } }, "Use a different email"),
      ),
    ));
  }

  // "A new email is on its way", in the words of what it carries.
  _newEmailMessage() {
    const sent = this._sent();
    return sent === "link and code"
      ? "A new email is on its way: use its link or its code."
      : `A new ${sent} is on its way.`;
  }

  _resend(button) {
    if (button) button.disabled = true;
    const message = this._newEmailMessage();
    // until the new email is sent, the wait on the one already sent goes on
    this._wait(true, message).catch((err) => {
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
      this._awaitNewEmail();
      return;
    }
    if (status === "failed" && v?.failureReason === "replaced") {
      this._showReplaced();
      return;
    }
    if (status === "failed" || status === "client_mismatch") {
      this._showFailed(status, this._spentMessage || FAILURE_MESSAGES[v?.failureReason] || "");
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
    const goOn = () => {
      const event = new CustomEvent("magiclink:complete", { bubbles: true, cancelable: true,
        detail: { sessionId, afterUrl: this.afterUrl, mode: this.mode } });
      if (this.dispatchEvent(event) && !this.hasAttribute("no-redirect")) {
        // the sign-in page is done with: Back from the app does not land on it again
        location.replace(this.afterUrl);
      }
    };
    try {
      // the code typed here already brought the session in; a link opened elsewhere did not
      if (this.ml.session?.id === sessionId) goOn();
      else await this.ml.setSession(sessionId, goOn);
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

  // A newer sign-in or sign-up of this browser took this one's place (another tab started
  // one, for any address): a browser has one at a time, as the hosted service's client does.
  // Said as it is, as "You signed in on another tab" is, not as a link that failed.
  _showReplaced() {
    this._state("replaced");
    const what = this.mode === "sign_in" ? "sign-in" : "sign-up";
    this._show(this._card(
      icon("mail"),
      h("h1", { className: "ml-title" }, `You started another ${what} in another tab`),
      h("p", { className: "ml-lead" }, "This browser waits for one email at a time, so the link ",
        "and code sent from this tab no longer work. Carry on in the other tab (you can close ",
        "this one), or start again here, which stops the other one."),
      h("div", { className: "ml-actions" },
        h("button", { className: "ml-button ml-primary", type: "button", onclick: () => {
          this._showForm();
          this.querySelector("input")?.focus();
        } }, "Start again")),
    ));
  }

  _showExpired() {
    this._state("expired");
    const sent = this._sent();
    const both = sent === "link and code";
    this._show(this._card(
      icon("clock"),
      h("h1", { className: "ml-title" }, both ? "Your link and code have expired" : `Your ${sent} has expired`),
      h("p", { className: "ml-lead" }, `For your safety, ${both ? "they work" : `${sent}s work`} only for a short while. Get a new ${both ? "email" : "one"} sent to `,
        emailText(this.email || "your address"), "."),
      this._liveRegion(),
      h("div", { className: "ml-actions" },
        h("button", { className: "ml-button ml-primary", type: "button",
          onclick: (e) => this._resend(e.currentTarget) }, both ? "Send a new email" : `Send a new ${sent}`),
        h("button", { className: "ml-button ml-quiet", type: "button", onclick: () => {
          this._flow?.cancelMagicLinkFlow();
          this._showForm();
        } }, "Use a different email"),
      ),
    ));
  }

  // Expired, the attempt may still get a new email from elsewhere: the expired link's page on
  // the device it was opened on sends one. The long poll goes on (held by the server until the
  // attempt changes: nothing is asked while nothing happens), and a new verification brings
  // the page back to waiting, with its new code. This page's own resend, or "Use a different
  // email", ends it (they take this._flow's place).
  async _awaitNewEmail() {
    const signal = this._resumeSignal();
    try {
      await this.resource._waitForNewVerification(signal);
    } catch {
      return; // the page says "expired" and offers its own resend: nothing more to say
    }
    if (signal.aborted || this._verification()?.status !== "unverified") return;
    this._wait(false);
    this._announce(this._newEmailMessage());
  }

  // `message`: the server's word on a code that spent the verification (too many wrong
  // codes); a new email is then one click away.
  _showFailed(code, message = "") {
    this._state("failed", { code });
    this._show(this._card(
      icon("alert"),
      h("h1", { className: "ml-title" }, "That didn't work"),
      h("p", { className: "ml-lead" }, message || LINK_MESSAGES[code] || LINK_MESSAGES.failed),
      this._liveRegion(),
      h("div", { className: "ml-actions" },
        message ? h("button", { className: "ml-button ml-primary", type: "button",
          onclick: (e) => this._resend(e.currentTarget) }, "Send a new email") : null,
        h("button", { className: message ? "ml-button" : "ml-button ml-primary", type: "button",
          onclick: () => this._showForm() }, "Start again")),
    ));
  }
}

// why a verification failed, as the device waiting on it is told (a new email is offered)
const FAILURE_MESSAGES = {
  too_many_confirmation_codes: "Wrong codes were typed on the device where your link was " +
    "opened, so the link no longer works. If that was not you, someone else has your email: " +
    "send a new one and open it yourself.",
  too_many_email_codes: "Too many wrong codes were typed, so this code and its link no longer work.",
  undeliverable: "We could not send the email. Check the address, or send it again.",
};

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
