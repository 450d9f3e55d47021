// magiclink.js: the browser client and the custom elements of magiclink.
// One dependency-free ES module, served by MagicLinkMiddleware at {prefix}/static/magiclink.js.
//
//   import { MagicLink, isMagicLinkError, MagicLinkErrorCode } from "/auth/static/magiclink.js";
//   const ml = await MagicLink.load();                 // prefix: from this module's own URL
//   const signIn = await ml.client.signIn.create({ identifier: "ada@example.com" });
//   const { startMagicLinkFlow, cancelMagicLinkFlow } = signIn.createMagicLinkFlow();
//   const res = await startMagicLinkFlow({ redirectUrl: location.origin + "/verification" });
//   if (res.status === "complete") await ml.setSession(res.createdSessionId, () => location.assign("/"));
//
// Importing the module also defines <magiclink-sign-in>, <magiclink-sign-up>,
// <magiclink-user-profile>, <magiclink-verification> and <magiclink-sign-out>.
// Waiting is a loop of long polls (GET ...?wait=25&version=v) that the server answers the moment
// the link is clicked; it retries with backoff when the connection drops and stops on cancel.
// JavaScript names are camelCase; the wire is snake_case (docs/http-api.md).

// The served file is assembled from the parts in static/magiclink/, in the order CLIENT_PARTS
// of magiclink_asgi/static_files.py gives; edit the parts. This part: the shared constants.

const MODULE_URL = new URL(import.meta.url);
const DEFAULT_PREFIX = MODULE_URL.pathname.replace(/\/static\/magiclink\.js$/, "");
const WAIT_SECONDS = 25;
const REQUEST_TIMEOUT_MS = (WAIT_SECONDS + 15) * 1000; // a hung connection is dropped and retried
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15000;
