// component-base.js: MagicLinkElement, the base of every custom element: the shared client,
// views that take focus, a live region, the state event, the email field, the two codes (the
// confirmation code shown here for another device, the field for the code from the email).
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

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

  // `message`: a string, or the parts of one (strings and nodes, such as an address from
  // emailText, which breaks after its "@"). Nodes are copied: a message may be said again.
  _announce(message) {
    const region = this.querySelector("[data-ml-live]");
    if (!region) return;
    const parts = Array.isArray(message) ? message : [message];
    region.replaceChildren(...parts.map((part) =>
      (typeof part === "string" ? part : part.cloneNode(true))));
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

  // An email field the browser does not judge: type=text (type=email refuses internationalised
  // addresses such as jürgen@example.com, which the server accepts), with the email keyboard
  // and autofill all the same. The server decides, and the page shows its word.
  _emailField(label, id, extra = {}) {
    return [
      h("label", { className: "ml-label", for: id }, label),
      emailInput({ id, ...extra }),
    ];
  }

  /** The length of the code in the email (`email-code-length`), when the page knows it. */
  get emailCodeLength() {
    const n = Number(this.getAttribute("email-code-length"));
    return Number.isInteger(n) && n >= 6 && n <= 10 ? n : null;
  }

  // The confirmation code: shown here, typed on another device that opens the link (not to
  // be confused with the code in the email, typed here).
  _confirmationCodeBox(code) {
    if (!code) return null;
    const labelId = uid("confirmation-code");
    return h("div", { className: "ml-code-box", role: "group", "aria-labelledby": labelId },
      h("p", { className: "ml-code-label", id: labelId },
        "If you open the link on another device, type this code there:"),
      h("p", { className: "ml-code", "data-ml-code": "", "aria-label": `Confirmation code ${code.split("").join(" ")}` },
        code));
  }

  // The field for the code from the email, with its button. `submit(code)` sends a code that
  // looks right; what it throws is shown under the field (role=alert, tied by
  // aria-describedby). `state` ({value, error}) outlives a re-render of the view; `id` keeps
  // the field's id (and so its focus) across re-renders.
  _emailCodeForm({ submit, state = {}, id = uid("email-code") }) {
    const length = this.emailCodeLength;
    const hintId = `${id}-hint`;
    const errorId = `${id}-error`;
    const input = h("input", { className: "ml-input ml-code-input", id, name: "code", type: "text",
      inputmode: "numeric", autocomplete: "one-time-code", spellcheck: "false",
      autocapitalize: "off", enterkeyhint: "go", "aria-describedby": hintId });
    input.value = state.value || "";
    input.addEventListener("input", () => { state.value = input.value; });
    const button = h("button", { className: "ml-button ml-primary", type: "submit" }, "Verify code");
    const showError = (message, invalid = true) => {
      state.error = message || "";
      state.invalid = invalid;
      showFieldError(form, input, { message, id: errorId, hintId, invalid });
    };
    const form = h("form", { className: "ml-form ml-code-form", novalidate: true,
      onsubmit: async (e) => {
        e.preventDefault();
        if (button.disabled) return;
        const code = typedEmailCode(input.value, length);
        if (!code) {
          showError(length ? `Type the ${length}-digit code from the email.`
            : "Type the code from the email: 6 to 10 digits.");
          input.focus();
          return;
        }
        button.disabled = true;
        button.textContent = "Checking…";
        try {
          await submit(code);
        } catch (err) {
          showError(describeCodeError(err), aboutTheField(err));
          if (form.isConnected) {
            input.focus();
            input.select();
          }
        } finally {
          button.disabled = false;
          button.textContent = "Verify code";
        }
      } },
    h("label", { className: "ml-label", for: id }, "Code from the email"),
    h("div", { className: "ml-row-input" }, input, button),
    h("p", { className: "ml-hint", id: hintId }, length
      ? `The ${length}-digit code in the email, typed on this device.`
      : "The code in the email, typed on this device."));
    if (state.error) showError(state.error, state.invalid ?? true);
    return form;
  }

  _liveRegion() {
    return h("p", { className: "ml-live", "data-ml-live": "", role: "status", "aria-live": "polite" });
  }
}
