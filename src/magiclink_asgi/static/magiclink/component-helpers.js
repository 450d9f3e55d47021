// component-helpers.js: what the custom elements share besides their base class: h() to
// build DOM, the error under a field, icons, ids, the same-site path check, wording for errors (the code from the
// email's too), devices and times, the stylesheet link.
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "className") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// An email address field: see MagicLinkElement._emailField for why it is type=text.
function emailInput(attrs = {}) {
  return h("input", { className: "ml-input", name: "email", type: "text", inputmode: "email",
    autocomplete: "email", spellcheck: "false", autocapitalize: "off", required: true, ...attrs });
}

// The error under a field, said the same way by every form of the components: a new
// paragraph with id `id` (role=alert, so a second error is announced too), put before `before`
// (a child of `container`) or at its end; the field described by the error (then by `hintId`,
// its hint), and marked aria-invalid unless `invalid` is false (the error is not about what
// was typed: see aboutTheField). Without a message the error goes, and the field is described
// by its hint alone.
function showFieldError(container, input, { message, id, hintId = null, before = null, invalid = true }) {
  container.querySelector(`#${CSS.escape(id)}`)?.remove();
  if (message) {
    container.insertBefore(h("p", { className: "ml-error", id, role: "alert" }, message), before);
    if (invalid) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    input.setAttribute("aria-describedby", hintId ? `${id} ${hintId}` : id);
    return;
  }
  input.removeAttribute("aria-invalid");
  if (hintId) input.setAttribute("aria-describedby", hintId);
  else input.removeAttribute("aria-describedby");
}

// Icons as inline SVG (no font or emoji needed), drawn with the current colour.
const ICONS = {
  mail: ["ml-icon", "M4 6h16v12H4z M4 7l8 6 8-6"],
  check: ["ml-icon ml-ok", "M5 12.5l4.5 4.5L19 7.5"],
  clock: ["ml-icon ml-warn", "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z M12 7v5l3.5 2.5"],
  alert: ["ml-icon ml-bad", "M12 3l9.5 17h-19z M12 10v4.5 M12 17.2v.3"],
};

function icon(name) {
  const [className, path] = ICONS[name];
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "24");
  svg.setAttribute("height", "24");
  svg.setAttribute("focusable", "false");
  const shape = document.createElementNS(ns, "path");
  shape.setAttribute("d", path);
  for (const [k, v] of Object.entries({ fill: "none", stroke: "currentColor",
    "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round" })) {
    shape.setAttribute(k, v);
  }
  svg.append(shape);
  return h("div", { className, "aria-hidden": "true" }, svg);
}

let ids = 0;
const uid = (name) => `ml-${name}-${++ids}`;

// A path on this site, as the core's redirect rule reads one: not //host or /\host, and no
// backslash or control character anywhere (the URL parser drops tabs and newlines, so
// "/<TAB>/host" would lead to //host).
function safePath(value, fallback) {
  if (!value || !value.startsWith("/") || value.startsWith("//") || /[\u0000-\u001f\\]/.test(value)) {
    return fallback;
  }
  return value;
}

// " Try again in 3 minutes." for a Retry-After in seconds ("" when there is none).
function tryAgainIn(seconds) {
  if (!seconds) return "";
  const s = Math.ceil(seconds);
  if (s < 90) return ` Try again in ${s} ${s === 1 ? "second" : "seconds"}.`;
  const m = Math.ceil(s / 60);
  return ` Try again in ${m} minutes.`;
}

function describeError(err) {
  if (err instanceof APIError) {
    // the server's own word: for an address, what is wrong with it; for a limit, which one was
    // hit and when to try again
    return err.message;
  }
  if (err instanceof NetworkError) return "Could not reach the server. Check your connection and try again.";
  return err?.message || "Something went wrong. Please try again.";
}

// Whether `err` is the server's word on what was typed (an address it refused, a wrong code).
// A limit (429), an outage (5xx) or a lost connection is said under the field too, but the
// field is not marked invalid: typing something else would not help.
function aboutTheField(err) {
  if (err instanceof NetworkError) return false;
  if (err instanceof APIError) return err.status < 500 && err.status !== 429;
  return true;
}

// What went wrong with a code from the email: the server's word and the tries left.
function describeCodeError(err) {
  if (err instanceof APIError) {
    if (err.status === 429) return `Too many codes were tried.${tryAgainIn(err.retryAfter)}`;
    const left = err.meta?.attemptsLeft;
    if (err.code === "email_code_incorrect" && Number.isInteger(left)) {
      const said = err.errors[0]?.message || "That is not the code from the email.";
      return `${said} ${left} ${left === 1 ? "try" : "tries"} left.`;
    }
  }
  return describeError(err);
}

// What a verification's email carries: `{link, code}` (a link to open, a code to type here).
function carried(v) {
  const strategies = v?.supportedStrategies || [v?.strategy || "email_link"];
  return { link: strategies.includes("email_link"), code: strategies.includes("email_code") };
}

// `button` busy (`on`) while what it asked for is in flight: disabled, so that a double tap
// sends nothing more, and said busy to assistive technology.
function busyButton(button, on) {
  if (!button) return;
  button.disabled = on;
  if (on) button.setAttribute("aria-busy", "true");
  else button.removeAttribute("aria-busy");
}

// The server's 404: what the request was about is not there (removed, in another tab say).
function notFound(err) {
  return err instanceof APIError && err.status === 404;
}

// A typed code that spent its verification (too many wrong codes, used, expired): the wait on
// the verification says what happened, not the field.
function spentCode(err) {
  return err instanceof APIError && (err.code === "failed" || err.code === "expired");
}

// The code from the email as typed (spaces and dashes dropped), if it looks like one:
// `length` digits, or 6 to 10 when the length is not known.
function typedEmailCode(value, length) {
  const code = String(value || "").replace(/[\s-]+/g, "");
  if (!/^[0-9]+$/.test(code)) return null;
  const fits = length ? code.length === length : code.length >= 6 && code.length <= 10;
  return fits ? code : null;
}

function relativeTime(ms) {
  if (!ms) return "";
  // a past time; a clock running ahead of this browser's reads as "just now"
  const seconds = Math.min(0, Math.round((ms - Date.now()) / 1000));
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return fmt.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

function describeDevice(ua) {
  if (!ua) return "Unknown device";
  // the server usually stores a description already ("Firefox 128 on Ubuntu")
  if (!/^Mozilla\/|\(/.test(ua)) return ua.slice(0, 80);
  // a raw user agent: a short label only
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox"
    : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : null;
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS"
    : /Windows/.test(ua) ? "Windows" : /Mac OS X/.test(ua) ? "macOS"
    : /Linux/.test(ua) ? "Linux" : null;
  if (browser && os) return `${browser} on ${os}`;
  return browser || os || ua.slice(0, 60);
}

function ensureStylesheet(prefix) {
  const href = `${prefix}/static/magiclink.css`;
  const present = [...document.querySelectorAll("link[rel=stylesheet]")]
    .some((l) => new URL(l.href, location.href).pathname === href);
  if (!present && !document.querySelector("link[data-magiclink]")) {
    document.head.append(h("link", { rel: "stylesheet", href, "data-magiclink": "" }));
  }
}

// An address as the pages show one (in a <strong> unless `tag` says otherwise): on a narrow
// screen it breaks after its last "@" first, so the domain stays whole; .ml-email still breaks
// a part too long for the line anywhere. The text is the address itself (a <wbr> has none).
function emailText(address, tag = "strong") {
  const text = String(address ?? "");
  const at = text.lastIndexOf("@");
  return h(tag, { className: "ml-email" },
    at < 0 ? text : [text.slice(0, at + 1), h("wbr"), text.slice(at + 1)]);
}

// The signed-in user's address, as emailText shows it.
function primaryEmail(ml) {
  return emailText(ml.user?.primaryEmailAddress?.emailAddress || "you");
}
