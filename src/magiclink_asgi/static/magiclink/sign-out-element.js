// sign-out-element.js: <magiclink-sign-out>: signs this browser out, asking first when
// reached from another site.
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

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
