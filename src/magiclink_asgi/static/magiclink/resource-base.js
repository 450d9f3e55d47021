// resource-base.js: what every resource shares. Verification, the Resource base (fields filled
// in place, listeners, reload, the long-poll wait with backoff, typing the code from the email)
// and the object the guide's createMagicLinkFlow() returns (startMagicLinkFlow,
// cancelMagicLinkFlow).
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

/**
 * One email verification (the guide's `verification`). `supportedStrategies` says what its
 * email carries: `"email_link"` (a link) and/or `"email_code"` (a code to type here).
 */
export class Verification {
  constructor(data) {
    Object.assign(this, data);
  }

  /**
   * Whether this browser completed it somewhere other than here: the link opened in this tab
   * or another one, or the code typed in another tab. The code typed in this tab (through
   * this resource) is not: the flow then completes here, as when the link is opened on another
   * device.
   */
  verifiedFromTheSameClient() {
    return this.status === "verified" && Boolean(this.verifiedFromTheSameClient_) &&
      !this.verifiedHere_;
  }
}

function verification(data, verifiedHere = false) {
  if (!data) return null;
  const { verifiedFromTheSameClient, ...rest } = data;
  const v = new Verification(rest);
  v.verifiedFromTheSameClient_ = Boolean(verifiedFromTheSameClient);
  v.verifiedHere_ = verifiedHere;
  return v;
}

// Whether an email code typed through the client looks like one: digits, with any spaces or
// dashes (the server drops them too).
const EMAIL_CODE_SEPARATORS = /[\s-]+/g;

class Resource {
  constructor(ml, data) {
    Object.defineProperty(this, "_ml", { value: ml, enumerable: false });
    Object.defineProperty(this, "_listeners", { value: new Set(), enumerable: false });
    // the long polls in flight, woken when a typed code settles the verification
    Object.defineProperty(this, "_polls", { value: new Set(), enumerable: false });
    // the code attempt in flight (never rejects): a wait that sees the verification settled
    // lets it finish first, so that whoever awaits either hears one story
    Object.defineProperty(this, "_attempting", { value: null, enumerable: false, writable: true });
    // set when the code typed through this object completed the current verification
    Object.defineProperty(this, "_verifiedHere", { value: false, enumerable: false, writable: true });
    if (data) this._assign(data);
  }

  // A verification from the wire, marked when this object's code completed it.
  _verificationOf(data) {
    return verification(data, this._verifiedHere);
  }

  // A new attempt or a new email: whatever was typed before no longer applies.
  _freshVerification() {
    this._verifiedHere = false;
  }

  _assign(data) {
    Object.assign(this, data);
    this._emit();
    return this;
  }

  /** Call `fn(resource)` whenever this resource changes; returns the unsubscribe function. */
  addListener(fn) {
    this._listeners.add(fn);
    return () => this._listeners.delete(fn);
  }

  _emit() {
    for (const fn of this._listeners || []) {
      try { fn(this); } catch (err) { console.error(err); }
    }
  }

  /** The verification this resource waits on (overridden per kind). */
  get _verification() {
    return this.verification || null;
  }

  async _reloadFrom(path, { wait, version, verificationStatus, signal } = {}) {
    const data = await this._ml._transport.request("GET", path, {
      query: wait ? { wait, version, verification_status: verificationStatus } : undefined,
      signal,
      timeoutMs: wait ? REQUEST_TIMEOUT_MS : 20000,
    });
    // a long poll that ran out answers with the version it started from: an answer older than
    // what a faster request (a typed code) brought in is dropped
    if (data && data.id === this.id && data.version < this.version) return this;
    return this._assign(data);
  }

  // POST the code from the email to `path`; see SignIn.attemptFirstFactor. A completed sign-in
  // or sign-up set this browser's session cookie: the client takes it up before this resolves.
  _attemptCode(path, { code, strategy = "email_code" } = {}) {
    const work = (async () => {
      const typed = typeof code === "string" ? code.replace(EMAIL_CODE_SEPARATORS, "") : code;
      let data;
      try {
        data = await this._ml._transport.request("POST", path, { body: { strategy, code: typed } });
      } catch (err) {
        // the verification is spent (too many wrong codes, used, expired): read it as it is now
        if (err instanceof APIError && (err.code === "failed" || err.code === "expired")) {
          await this.reload().catch(() => {});
          this._wakePolls();
        }
        throw err;
      }
      this._verifiedHere = true; // the API answers an attempt only when the code completed it
      this._assign(data);
      if (this.status === "complete" && this.createdSessionId) {
        try {
          await this._ml._adoptSession(this.createdSessionId);
        } catch (err) {
          console.error(err); // setSession(createdSessionId) still works
        }
      }
      this._wakePolls();
      return this;
    })();
    this._attempting = work.then(() => {}, () => {});
    return work;
  }

  // End the long polls in flight (and the pauses between them): the waits read the
  // verification as it is now.
  _wakePolls() {
    if (this._verification?.status === "unverified") return;
    for (const poll of this._polls) poll.abort();
  }

  // Long-poll until the verification leaves "unverified" (or `signal` aborts).
  async _waitForVerification(signal) {
    const settled = (v) => !v || v.status !== "unverified";
    if (await this._pollUntil(signal, settled)) {
      await this._attempting; // a code typed here finishes first: it says who completed it
    }
    return this;
  }

  // Long-poll while the verification reads expired and the attempt goes on (or until `signal`
  // aborts): a new email may be sent for it from elsewhere (the expired link's page on another
  // device). Each wait says it saw "expired", so the server holds it (no request in a loop)
  // until the attempt changes.
  async _waitForNewVerification(signal) {
    const settled = (v) => !v || v.status !== "expired" || this.status === "abandoned";
    await this._pollUntil(signal, settled, "expired");
    return this;
  }

  // Long-poll until `settled(verification)` holds (true) or `signal` aborts (false). With
  // `seen`, each wait tells the server the verification status it last read.
  async _pollUntil(signal, settled, seen) {
    let backoff = BACKOFF_FIRST_MS;
    let recovering = false;
    while (!signal.aborted) {
      if (settled(this._verification)) return true;
      // one request (or pause) at a time, ended by `signal` or by a typed code (_wakePolls)
      const poll = new AbortController();
      const stop = () => poll.abort();
      signal.addEventListener("abort", stop, { once: true });
      this._polls.add(poll);
      try {
        try {
          // after a failure, one quick read first: it proves the way back and catches up
          if (recovering) await this.reload({ signal: poll.signal });
          else {
            await this.reload({ wait: WAIT_SECONDS, version: this.version,
              verificationStatus: seen, signal: poll.signal });
          }
          recovering = false;
          backoff = BACKOFF_FIRST_MS;
        } catch (err) {
          if (poll.signal.aborted) continue; // cancelled (the loop ends) or woken (it reads again)
          recovering = true;
          if (err?.name === "AbortError") break;
          if (!retriable(err)) throw err;
          const pause = err.retryAfter ? err.retryAfter * 1000 : backoff;
          backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
          this._ml._emitConnection(false);
          try {
            await sleep(pause * (0.8 + Math.random() * 0.4), poll.signal);
          } catch {
            // cancelled or woken: the loop's test says which
          }
          continue;
        }
      } finally {
        this._polls.delete(poll);
        signal.removeEventListener("abort", stop);
      }
      this._ml._emitConnection(true);
    }
    return false;
  }
}

// A flow object as the guide's createMagicLinkFlow() returns it.
function magicLinkFlow(resource, prepare) {
  let controller = null;
  return {
    /**
     * Send the email, then wait until its link is opened or its code typed (or it expires, or
     * fails); resolves with the updated resource. `onPrepared(resource)` is called once the
     * email is sent (the confirmation code is then in the resource's verification).
     * cancelMagicLinkFlow() ends the wait: the promise then resolves with the resource as it
     * is. The code from the email, typed through the same resource while this waits
     * (attemptFirstFactor and the like), resolves it too, once that call has.
     */
    async startMagicLinkFlow(params = {}) {
      controller?.abort();
      const mine = new AbortController();
      controller = mine;
      const { onPrepared, ...rest } = params;
      await prepare(rest, mine.signal);
      if (typeof onPrepared === "function") onPrepared(resource);
      try {
        return await resource._waitForVerification(mine.signal);
      } finally {
        if (controller === mine) controller = null;
      }
    },
    cancelMagicLinkFlow() {
      controller?.abort();
      controller = null;
    },
  };
}

function absolute(url) {
  return url ? new URL(url, location.href).href : url;
}
