// errors.js: what the client throws. MagicLinkErrorCode and MagicLinkError (a link that did
// not work, with the messages shown for it), APIError (an error answer from the API) and
// NetworkError (the server could not be reached).
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

/** Why a magic link did not work (the guide's MagicLinkErrorCode). */
export const MagicLinkErrorCode = Object.freeze({
  Expired: "expired",
  Failed: "failed",
  ClientMismatch: "client_mismatch",
});

const LINK_CODES = new Set(Object.values(MagicLinkErrorCode));

/** A magic link that did not work; `code` is one of MagicLinkErrorCode. */
export class MagicLinkError extends Error {
  constructor(code, message) {
    super(message || LINK_MESSAGES[code] || "The link did not work.");
    this.name = "MagicLinkError";
    this.code = code;
  }
}

/**
 * An error answer from the API: `status`, `code`, `errors` (each {code, message, longMessage,
 * meta}) and the first error's `meta` (`attemptsLeft` after a wrong code, `retryAfter`).
 */
export class APIError extends Error {
  constructor(status, errors, retryAfter) {
    const first = (errors && errors[0]) || {};
    super(first.longMessage || first.message || `Request failed (${status})`);
    this.name = "APIError";
    this.status = status;
    this.code = first.code || "unknown";
    this.errors = errors || [];
    this.meta = first.meta || {};
    this.retryAfter = retryAfter;
  }
}

/** Whether `err` is a magic link error (expired, failed, client mismatch). */
export function isMagicLinkError(err) {
  return Boolean(err) && (err instanceof MagicLinkError ||
    (err.name === "MagicLinkError" && LINK_CODES.has(err.code)));
}

const LINK_MESSAGES = {
  expired: "This link has expired.",
  failed: "This link did not work: it was used already, replaced by a newer one, or changed.",
  client_mismatch: "This link must be opened on the device that asked for it.",
};

/** The connection dropped (or timed out); the request may be retried. */
export class NetworkError extends Error {
  constructor(cause) {
    super("Could not reach the server.");
    this.name = "NetworkError";
    this.cause = cause;
  }
}
