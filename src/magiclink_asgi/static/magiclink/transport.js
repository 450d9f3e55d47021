// transport.js: the wire. camelCase to snake_case and back, one JSON request to the API
// (Transport), which errors a wait retries, and a cancellable pause that ends early when the
// browser comes back online.
// A part of magiclink.js, sharing one module scope with the others (see static_files.py).

const toCamel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
const toSnake = (s) => s.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());

function camelize(value) {
  if (Array.isArray(value)) return value.map(camelize);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[toCamel(k)] = camelize(v);
    return out;
  }
  return value;
}

function snakify(value) {
  const out = {};
  for (const [k, v] of Object.entries(value || {})) if (v !== undefined) out[toSnake(k)] = v;
  return out;
}

function abortError() {
  return new DOMException("The magic link flow was cancelled.", "AbortError");
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const done = () => { clearTimeout(timer); window.removeEventListener("online", done);
      signal?.removeEventListener("abort", stop); resolve(); };
    const stop = () => { clearTimeout(timer); window.removeEventListener("online", done);
      reject(abortError()); };
    const timer = setTimeout(done, ms);
    window.addEventListener("online", done); // back online: retry at once
    signal?.addEventListener("abort", stop, { once: true });
  });
}

class Transport {
  constructor(prefix) {
    this.prefix = prefix;
  }

  async request(method, path, { body, query, signal, timeoutMs } = {}) {
    const url = new URL(this.prefix + path, location.origin);
    for (const [k, v] of Object.entries(query || {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const timer = timeoutMs ? setTimeout(() => controller.abort(), timeoutMs) : null;
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        cache: "no-store",
        headers: body === undefined
          ? { Accept: "application/json" }
          : { Accept: "application/json", "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(snakify(body)),
        signal: controller.signal,
      });
    } catch (err) {
      if (signal?.aborted) throw abortError();
      throw new NetworkError(err);
    } finally {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
    let data = null;
    const text = await response.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!response.ok) {
      const retry = Number(response.headers.get("Retry-After"));
      throw new APIError(response.status, camelize(data?.errors || []),
        Number.isFinite(retry) && retry > 0 ? retry : undefined);
    }
    return camelize(data);
  }
}

function retriable(err) {
  return err instanceof NetworkError ||
    (err instanceof APIError && (err.status >= 500 || err.status === 429 || err.status === 408));
}
