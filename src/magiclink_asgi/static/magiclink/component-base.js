// component-base.js: MagicLinkElement, the base of every custom element: the shared client,
// views that take focus, a live region, the state event, the email field, the code box.
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
