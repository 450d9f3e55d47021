// define-elements.js: defines the custom elements (once, and only in a browser). It names
// every element class, so it comes last.
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

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
