// sign-out-element.js: <magiclink-sign-out>: signs this browser out, asking first when
// reached from another site, and says "You're signed out".
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

/** <magiclink-sign-out>: signs this browser out. Reached from a page of this site it does so at
 * once; from anywhere else (a link on another site) it asks first, so nobody can sign you out
 * behind your back. Then it goes to `after-sign-out-url`, replacing itself in the history (Back
 * does not lead here again), or, without one, says "You're signed out" where it is. A visitor
 * who is signed out already (say, after pressing Back) is told so and sent nowhere. */
class SignOutElement extends MagicLinkElement {
  async start(ml) {
    const after = this.getAttribute("after-sign-out-url");
    let fromHere = false;
    try {
      fromHere = Boolean(document.referrer) && new URL(document.referrer).origin === location.origin;
    } catch {
      fromHere = false;
    }
    const signOut = async () => {
      await ml.signOut();
      if (after) {
        this._state("signed-out");
        location.replace(after);
        return;
      }
      this._showSignedOut(true);
    };
    if (!ml.isSignedIn) {
      this._showSignedOut(false);
      return;
    }
    if (fromHere || this.hasAttribute("immediate")) {
      await signOut();
      return;
    }
    this._state("confirm");
    this._show(this._card(
      h("h1", { className: "ml-title" }, "Sign out?"),
      h("p", { className: "ml-lead" }, "You're signed in as ", primaryEmail(ml), "."),
      h("div", { className: "ml-actions" },
        h("button", { className: "ml-button ml-primary", type: "button",
          onclick: (e) => { e.currentTarget.disabled = true; signOut().catch((err) => this._fatal(err)); } },
        "Sign out"),
        h("a", { className: "ml-button ml-quiet", href: this.attr("home-url", "/") }, "Stay signed in")),
    ), false);
  }

  _showSignedOut(focus) {
    this._state("signed-out");
    this._show(this._card(
      icon("check"),
      h("h1", { className: "ml-title" }, "You're signed out"),
      h("p", { className: "ml-lead", role: "status" }, "You can sign in again whenever you like."),
      h("div", { className: "ml-actions" },
        h("a", { className: "ml-button ml-primary", href: this.attr("sign-in-url", `${this.prefix}/sign-in`) },
          "Sign in again"),
        h("a", { className: "ml-button ml-quiet", href: this.attr("home-url", "/") }, "Go to the home page")),
    ), focus);
  }
}
