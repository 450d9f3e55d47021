// resource-base.js: what every resource shares. Verification, the Resource base (fields filled
// in place, listeners, reload, the long-poll wait with backoff) and the object the guide's
// createMagicLinkFlow() returns (startMagicLinkFlow, cancelMagicLinkFlow).
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

/** One email-link verification (the guide's `verification`). */
export class Verification {
  constructor(data) {
    Object.assign(this, data);
  }

  /** Whether the link was opened by this browser (in this tab or another one). */
  verifiedFromTheSameClient() {
    return this.status === "verified" && Boolean(this.verifiedFromTheSameClient_);
  }
}

function verification(data) {
  if (!data) return null;
  const { verifiedFromTheSameClient, ...rest } = data;
  const v = new Verification(rest);
  v.verifiedFromTheSameClient_ = Boolean(verifiedFromTheSameClient);
  return v;
}

class Resource {
  constructor(ml, data) {
    Object.defineProperty(this, "_ml", { value: ml, enumerable: false });
    Object.defineProperty(this, "_listeners", { value: new Set(), enumerable: false });
    if (data) this._assign(data);
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

  async _reloadFrom(path, { wait, version, signal } = {}) {
    const data = await this._ml._transport.request("GET", path, {
      query: wait ? { wait, version } : undefined,
      signal,
      timeoutMs: wait ? REQUEST_TIMEOUT_MS : 20000,
    });
    return this._assign(data);
  }

  // Long-poll until the verification leaves "unverified" (or `signal` aborts).
  async _waitForVerification(signal) {
    let backoff = BACKOFF_FIRST_MS;
    let recovering = false;
    while (!signal.aborted) {
      const current = this._verification;
      if (!current || current.status !== "unverified") return this;
      try {
        // after a failure, one quick read first: it proves the way back and catches up
        if (recovering) await this.reload({ signal });
        else await this.reload({ wait: WAIT_SECONDS, version: this.version, signal });
        recovering = false;
        backoff = BACKOFF_FIRST_MS;
      } catch (err) {
        recovering = true;
        if (signal.aborted || err?.name === "AbortError") break;
        if (!retriable(err)) throw err;
        const pause = err.retryAfter ? err.retryAfter * 1000 : backoff;
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        this._ml._emitConnection(false);
        try {
          await sleep(pause * (0.8 + Math.random() * 0.4), signal);
        } catch {
          break;
        }
        continue;
      }
      this._ml._emitConnection(true);
    }
    return this;
  }
}

// A flow object as the guide's createMagicLinkFlow() returns it.
function magicLinkFlow(resource, prepare) {
  let controller = null;
  return {
    /**
     * Send the link, then wait until it is opened (or expires, or fails); resolves with the
     * updated resource. `onPrepared(resource)` is called once the email is sent (the
     * confirmation code is then in the resource's verification). cancelMagicLinkFlow() ends
     * the wait: the promise then resolves with the resource as it is.
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
