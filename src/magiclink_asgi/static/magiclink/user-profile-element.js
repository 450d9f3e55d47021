// user-profile-element.js: <magiclink-user-profile>: the signed-in user's email addresses
// (add, verify by link or by the code from the email, make primary, remove) and sessions on
// every device (sign one out). An address whose email expired waits on for a new one sent from
// another device, and then waits for that one. Adding, removing and making primary need a recent sign-in: on
// 403 `reverification_required` the person confirms by email (a sign-in with their primary
// address, on this device), and the change is made then.
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

/** <magiclink-user-profile>: email addresses and sessions of the signed-in user. */
class UserProfileElement extends MagicLinkElement {
  async start(ml) {
    this._unsubscribe?.();
    this._unsubscribe = ml.addListener(() => { if (!ml.user) this._showSignedOut(); });
    this._flows = new Map();
    this._pending = new Map();
    this._waitingOn = new Map(); // address id -> the EmailAddress its flow waits on
    this._codeStates = new Map(); // address id -> {value, error} of its code field
    this._codeSubmits = new Map(); // address id -> the code typed for it, settling
    this._spent = new Map(); // address id -> why a typed code spent its verification
    this._removed = new Set(); // ids of addresses removed from this page
    if (!ml.user) {
      this._showSignedOut();
      return;
    }
    await this.render(false);
  }

  disconnectedCallback() {
    for (const flow of this._flows?.values() || []) flow.cancelMagicLinkFlow();
    this._reverifyFlow?.cancelMagicLinkFlow();
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
        emailText(user.primaryEmailAddress?.emailAddress || "")),
      live,
      this._emailsSection(user),
      this._sessionsSection(sessions),
      h("div", { className: "ml-actions ml-end" },
        h("button", { className: "ml-button", type: "button", "data-ml-sign-out": "",
          onclick: (e) => this._signOut(e.currentTarget) }, "Sign out")),
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
    const input = emailInput({ id: inputId });
    // busy while an address is being added (this view may be drawn again meanwhile)
    const button = h("button", { className: "ml-button ml-primary", type: "submit",
      disabled: Boolean(this._adding) }, this._adding ? "Adding…" : "Add");
    const form = h("form", { className: "ml-form ml-inline", novalidate: true,
      "data-ml-add-email": "", onsubmit: (e) => {
        e.preventDefault();
        if (this._adding) return; // one address at a time: a double click sends one request
        this._addEmail(input.value.trim());
      } },
    h("label", { className: "ml-label", for: inputId }, "Add an email address"),
    h("div", { className: "ml-row-input" }, input, button),
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
        emailText(address.emailAddress, "span"),
        h("span", { className: "ml-badges" },
          primary ? h("span", { className: "ml-badge ml-badge-primary" }, "Primary") : null,
          verified ? h("span", { className: "ml-badge ml-badge-ok" }, "Verified")
            : h("span", { className: "ml-badge ml-badge-warn" }, "Unverified"))),
    );
    const actions = h("div", { className: "ml-row-actions" });
    if (!verified && !waiting) {
      actions.append(h("button", { className: "ml-button ml-small", type: "button",
        "aria-label": `Verify ${address.emailAddress}`,
        onclick: (e) => {
          // one email per press: a double tap would send a second, making the first one's
          // link stale. Every outcome draws the row again, with a new button
          busyButton(e.currentTarget, true);
          this._verify(address);
        } }, "Verify"));
    }
    if (verified && !primary) {
      actions.append(h("button", { className: "ml-button ml-small", type: "button",
        "aria-label": `Make ${address.emailAddress} primary`,
        onclick: (e) => this._act(() => address.makePrimary(),
          [emailText(address.emailAddress), " is now your primary address."], e.currentTarget) }, "Make primary"));
    }
    if (!primary) {
      actions.append(h("button", { className: "ml-button ml-small ml-danger", type: "button",
        "aria-label": `Remove ${address.emailAddress}`,
        onclick: (e) => this._confirmRemove(address, e.currentTarget) }, "Remove"));
    }
    row.append(actions);
    if (waiting) {
      const v = (this._waitingOn.get(address.id) || address).verification;
      const { link, code } = carried(v);
      const email = emailText(address.emailAddress);
      const text = link && code
        ? [" Check your email: we sent a link and a code to ", email,
          ". Type the code here, or open the link: this page updates by itself."]
        : code ? [" Check your email: we sent a code to ", email, ". Type it here."]
          : [" Check your email: we sent a link to ", email,
            ". This page updates by itself once you open it."];
      row.append(h("div", { className: "ml-row-wait", role: "group",
        "aria-label": `Verifying ${address.emailAddress}` },
      h("p", {}, link ? h("span", { className: "ml-spinner", "aria-hidden": "true" }) : null, ...text),
      code ? this._emailCodeForm({ submit: (c) => this._submitCode(address, c),
        state: this._codeStates.get(address.id), id: `ml-email-code-${address.id}` }) : null,
      link ? this._confirmationCodeBox(v?.confirmationCode) : null,
      h("button", { className: "ml-button ml-small ml-quiet", type: "button", onclick: () => {
        this._flows.get(address.id)?.cancelMagicLinkFlow();
      } }, "Cancel")));
    }
    return row;
  }

  _confirmRemove(address, button) {
    const actions = button.parentElement;
    const confirm = h("span", { className: "ml-confirm", role: "group",
      "aria-label": `Remove ${address.emailAddress}?` },
      h("span", {}, "Remove? "),
      h("button", { className: "ml-button ml-small ml-danger", type: "button",
        onclick: (e) => this._act(() => this._remove(address),
          [emailText(address.emailAddress), " was removed."], e.currentTarget) }, "Yes, remove"),
      h("button", { className: "ml-button ml-small ml-quiet", type: "button",
        onclick: () => this.render(false) }, "Keep"));
    actions.replaceChildren(confirm);
    confirm.querySelector("button").focus();
  }

  // Remove `address`. A wait on it (its row's, here) then ends "not found" at once, and
  // says nothing of its own: this removal says what happened.
  async _remove(address) {
    this._removed.add(address.id);
    try {
      await address.destroy();
    } catch (err) {
      // removed already (in another tab): what was asked for is so
      if (!notFound(err)) {
        this._removed.delete(address.id);
        throw err;
      }
    }
    await this.ml.user.reload();
  }

  // True when `err` ended a wait on `address` because the address is gone. Removed in another
  // tab or on another device, the view is drawn again without it and says so.
  async _gone(address, err) {
    if (!notFound(err)) return false;
    if (!this._removed.has(address.id)) await this._redraw([emailText(address.emailAddress), " was removed."]);
    return true;
  }

  // The user read again and the view drawn from it, saying `message`.
  async _redraw(message) {
    await this.ml.user.reload().catch(() => {});
    await this.render(false, message);
  }

  // Make the account change `fn`, then draw the view again saying `message`. One change at a
  // time: `button` is busy until it is made, and a double tap (or another change's button
  // pressed meanwhile) sends nothing more.
  async _act(fn, message, button) {
    if (this._acting) return;
    this._acting = true;
    busyButton(button, true);
    try {
      await this._guarded(fn);
      await this.render(false, message);
    } catch (err) {
      busyButton(button, false);
      if (err instanceof APIError) {
        // refused: the page may be out of date (an address removed or made primary in
        // another tab), so the view is drawn again from the account as it is, saying why
        await this._redraw(describeError(err));
      } else {
        this._announce(describeError(err));
      }
    } finally {
      this._acting = false;
    }
  }

  // Run the account change `change`; refused for an old session (403
  // `reverification_required`), ask the person to confirm by email, then run it again.
  async _guarded(change) {
    try {
      return await change();
    } catch (err) {
      if (!(err instanceof APIError && err.code === "reverification_required")) throw err;
      if (!(await this._reverify())) {
        throw new Error("Nothing was changed: confirm it's you by email to change your addresses.");
      }
      return await change();
    }
  }

  // "Confirm it's you": a fresh sign-in with the primary address, by its link or its code,
  // makes a recent session. Resolves true once signed in again, false when cancelled or failed
  // (the profile is shown again either way).
  _reverify() {
    const email = this.ml.user?.primaryEmailAddress?.emailAddress;
    return new Promise((resolve) => {
      let settled = false;
      const done = async (ok, message = "") => {
        if (settled) return;
        settled = true;
        this._reverifyFlow?.cancelMagicLinkFlow();
        this._reverifyFlow = null;
        await this.render(true, message);
        resolve(ok);
      };
      const cancel = h("button", { className: "ml-button ml-quiet", type: "button",
        onclick: () => done(false) }, "Cancel");
      const send = h("button", { className: "ml-button ml-primary", type: "button",
        onclick: () => {
          send.disabled = true;
          this._sendReverification(email, done).catch((err) => {
            send.disabled = false;
            this._announce(describeError(err));
          });
        } }, "Send email");
      this._state("reverify");
      this._show(this._card(
        icon("mail"),
        h("h1", { className: "ml-title" }, "Confirm it's you"),
        h("p", { className: "ml-lead" }, "For your safety, changing your email addresses needs a ",
          "recent sign-in. We'll email ", emailText(email || "you"),
          " so you can confirm it's you."),
        this._liveRegion(),
        h("div", { className: "ml-actions" }, send, cancel)));
    });
  }

  // Sign in again with `email` on this device; `done(ok, message)` once it settles.
  async _sendReverification(email, done) {
    const signIn = this.ml.client.signIn;
    await signIn.create({ identifier: email });
    const flow = signIn.createMagicLinkFlow();
    this._reverifyFlow = flow;
    const redirect = new URL(`${this.prefix}/verify`, location.origin);
    redirect.searchParams.set("flow", "sign_in");
    redirect.searchParams.set("after", location.pathname);
    let spent = "";
    let typed = Promise.resolve();
    const result = await flow.startMagicLinkFlow({
      redirectUrl: redirect.href,
      onPrepared: () => this._showReverifyWaiting(signIn, email, {
        submit: (code) => {
          const run = signIn.attemptFirstFactor({ strategy: "email_code", code }).catch((err) => {
            if (!spentCode(err)) throw err;
            spent = err.message;
          });
          typed = run.catch(() => {});
          return run;
        },
        cancel: () => done(false),
      }),
    });
    await typed; // a code typed here has had its say
    if (result.status === "complete" && result.createdSessionId) {
      try {
        if (this.ml.session?.id !== result.createdSessionId) {
          await this.ml.setSession(result.createdSessionId);
        }
      } catch (err) {
        await done(false, describeError(err));
        return;
      }
      await done(true);
      return;
    }
    const status = result.firstFactorVerification?.status;
    await done(false, status === "unverified" ? ""
      : spent || (status === "expired" ? "The email expired. Nothing was changed."
        : "That didn't work. Nothing was changed."));
  }

  _showReverifyWaiting(signIn, email, { submit, cancel }) {
    const v = signIn.firstFactorVerification;
    const { link, code } = carried(v);
    const strong = emailText(email);
    const lead = link && code
      ? ["We sent a link and a code to ", strong, ". Open the link, or type the code here."]
      : code ? ["We sent a code to ", strong, ". Type it here."]
        : ["We sent a link to ", strong, ". Open it: this page moves on by itself."];
    this._state("reverify-waiting");
    this._show(this._card(
      icon("mail"),
      h("h1", { className: "ml-title" }, "Check your email"),
      h("p", { className: "ml-lead" }, ...lead),
      code ? this._emailCodeForm({ submit, state: {} }) : null,
      link ? this._confirmationCodeBox(v?.confirmationCode) : null,
      this._liveRegion(),
      h("div", { className: "ml-actions" },
        h("button", { className: "ml-button ml-quiet", type: "button", onclick: cancel }, "Cancel"))));
  }

  // Add `email`; busy ("Adding…", as "Continue" says "Sending…") until its email is sent or
  // the server said no, which is then said under the field.
  async _addEmail(email) {
    if (!email) { // anything else is the server's to judge
      this._addError("Enter the email address to add, like ada@example.com.");
      return;
    }
    this._addBusy(true);
    let address;
    try {
      address = await this._guarded(() => this.ml.user.createEmailAddress({ email }));
    } catch (err) {
      this._addBusy(false);
      this._addError(describeError(err), email, aboutTheField(err));
      return;
    }
    await this._verify(address, () => this._addBusy(false));
  }

  _addBusy(busy) {
    this._adding = busy;
    const button = this.querySelector("[data-ml-add-email] button[type=submit]");
    if (!button) return;
    button.disabled = busy;
    button.textContent = busy ? "Adding…" : "Add";
  }

  // The add form's error under its field, tied to it (as the sign-in form's), focus back in it;
  // `typed` is put back in the field when the view was drawn again meanwhile ("Confirm it's
  // you", cancelled); `invalid` as showFieldError's.
  _addError(message, typed = "", invalid = true) {
    const form = this.querySelector("[data-ml-add-email]");
    const input = form?.querySelector("input");
    if (!input) {
      this._announce(message);
      return;
    }
    if (!input.value) input.value = typed;
    showFieldError(form, input, { message, id: `${input.id}-error`, invalid });
    input.focus();
  }

  // The code from the email, typed for `address`: done or spent, its flow ends and _verify
  // says so; wrong, the field says so.
  _submitCode(address, code) {
    const target = this._waitingOn.get(address.id) || address;
    const run = (async () => {
      try {
        await target.attemptVerification({ code });
      } catch (err) {
        if (!spentCode(err)) throw err;
        this._spent.set(address.id, err.message);
      }
    })();
    this._codeSubmits.set(address.id, run.catch(() => {}));
    return run;
  }

  // Send `address` its email and wait for its link or code; `onSent()` once the email is sent
  // or could not be.
  async _verify(address, onSent = () => {}) {
    const flow = this.ml.useMagicLink(address);
    const redirect = new URL(`${this.prefix}/verify`, location.origin);
    redirect.searchParams.set("flow", "email_address");
    redirect.searchParams.set("after", location.pathname);
    await this._follow(address, flow, onSent, () => flow.startMagicLinkFlow({
      redirectUrl: redirect.href,
      onPrepared: () => {
        onSent();
        this._showPending(address);
      },
    }));
  }

  // `address`'s row waits, until `wait()` resolves with the address settled; `flow` (its
  // cancelMagicLinkFlow) is what ends the wait, and ends any other one on the address first.
  // `onFailed()` if it throws. The row then says how it went.
  async _follow(address, flow, onFailed, wait) {
    const previous = this._flows.get(address.id);
    if (previous !== flow) previous?.cancelMagicLinkFlow();
    this._flows.set(address.id, flow);
    this._waitingOn.set(address.id, address);
    let result;
    try {
      result = await wait();
      await this._codeSubmits.get(address.id); // a code typed here has had its say
    } catch (err) {
      onFailed();
      this._pending.delete(address.id);
      if (await this._gone(address, err)) return;
      // drawn from the account as it is: verified in another tab, say, the row says so
      await this._redraw(describeError(err));
      return;
    } finally {
      if (this._flows.get(address.id) === flow) {
        this._flows.delete(address.id);
        this._waitingOn.delete(address.id);
      }
    }
    if (this._flows.has(address.id)) return; // superseded by a new email
    const status = result.verification?.status;
    const spent = this._spent.get(address.id);
    this._pending.delete(address.id);
    this._codeStates.delete(address.id);
    this._spent.delete(address.id);
    await this.ml.user.reload();
    if (status === "verified") {
      await this.render(false, [emailText(address.emailAddress), " is verified."]);
    } else if (status === "expired") {
      await this.render(false, ["The email to ", emailText(address.emailAddress),
        " expired. Press Verify to get a new one."]);
      this._awaitNewEmail(address);
    } else if (status === "unverified") {
      await this.render(false, "Stopped waiting. You can send the email again with Verify.");
    } else if (spent) {
      await this.render(false, `${spent} Press Verify to get a new email.`);
    } else {
      await this.render(false, ["Verifying ", emailText(address.emailAddress),
        " failed. Press Verify to try again."]);
    }
  }

  // The row of `address` waits for the email just sent: its code field, its confirmation code.
  _showPending(address) {
    this._pending.set(address.id, "waiting");
    this._codeStates.set(address.id, {});
    this._spent.delete(address.id);
    const { link, code } = carried(address.verification);
    const sent = link && code ? "a link and a code" : code ? "a code" : "a link";
    this.render(false, [`We sent ${sent} to `, emailText(address.emailAddress), "."]);
  }

  // Expired, the address may still get a new email from elsewhere: the expired link's page on
  // the device it was opened on sends one. The long poll goes on (held by the server until the
  // address changes: nothing is asked while nothing happens), and a new verification brings
  // its row back to waiting, with its new code. Verify (a new email from here), or leaving the
  // page, ends it (as it ends any wait on the address).
  async _awaitNewEmail(address) {
    const controller = new AbortController();
    const watch = { cancelMagicLinkFlow: () => controller.abort() };
    this._flows.get(address.id)?.cancelMagicLinkFlow();
    this._flows.set(address.id, watch);
    let renewed = false;
    try {
      await address._waitForNewVerification(controller.signal);
      renewed = !controller.signal.aborted && address.verification?.status === "unverified";
    } catch (err) {
      // gone, the view says so; otherwise the row says unverified and offers Verify
      await this._gone(address, err);
    }
    if (!renewed) {
      if (this._flows.get(address.id) === watch) this._flows.delete(address.id);
      return;
    }
    await this._follow(address, watch, () => {}, () => {
      this._showPending(address);
      return address._waitForVerification(controller.signal);
    });
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
              onclick: (e) => this._act(() => s.revoke(), `Signed out ${device}.`, e.currentTarget) },
            "Sign out")));
      })));
  }

  async _signOut(button) {
    busyButton(button, true);
    try {
      await this.ml.signOut();
    } catch (err) {
      busyButton(button, false);
      this._announce(describeError(err));
      return;
    }
    // the profile is no page to come Back to once signed out: replace it in the history
    location.replace(this.attr("after-sign-out-url", `${this.prefix}/sign-out`));
  }
}
