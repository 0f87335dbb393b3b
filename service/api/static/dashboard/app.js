// The shell: a hash router over the views, the notice bar, and the API key prompt.
import { apiKey, setApiKey } from "./api.js";

// [pattern of the hash, module of the view, section highlighted in the navigation]
const ROUTES = [
  [/^#\/jobs\/([0-9a-f]{32})$/, "./views/job.js", "jobs"],
  [/^#\/(?:jobs)?$/, "./views/jobs.js", "jobs"],
  [/^#\/compare$/, "./views/compare.js", "compare"],
  [/^#\/models\/([^/]+)$/, "./views/model.js", "models"],
  [/^#\/models$/, "./views/models.js", "models"],
  [/^#\/trace$/, "./views/trace.js", "trace"],
];

const view = document.getElementById("view");
const notice = document.getElementById("notice");
const keyDialog = document.getElementById("key-dialog");
let cleanup = null;
// Counts routes: a view still loading when the next one starts must not touch the page.
let generation = 0;

/** Shows `message` in the notice bar (kind: "error" or "info"); null hides it. */
export function showNotice(message, kind = "error") {
  notice.hidden = !message;
  notice.className = kind;
  notice.textContent = message || "";
}

/** The hash's query (#/compare?jobs=a,b) as URLSearchParams. */
export function hashQuery() {
  const [, query = ""] = location.hash.split("?");
  return new URLSearchParams(query);
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const [hash] = (location.hash || "#/").split("?");
  const found = ROUTES.map(([pattern, module, section]) => [hash.match(pattern), module, section])
    .find(([match]) => match);
  if (!found) {
    view.replaceChildren(Object.assign(document.createElement("p"), { textContent: "No such page." }));
    return;
  }
  const [match, module, section] = found;
  for (const link of document.querySelectorAll("nav a[data-section]")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  showNotice(null);
  const current = ++generation;
  const { render } = await import(module);
  if (current !== generation) return;
  // Each view renders into a root of its own, so one that is left behind while it loads
  // writes into a detached node rather than into the next view.
  const root = document.createElement("div");
  view.replaceChildren(root);
  try {
    const done = (await render(root, match.slice(1).map(decodeURIComponent))) || null;
    if (current === generation) cleanup = done;
    else if (done) done();
  } catch (error) {
    // A 401 or 403 was announced by the key prompt's own notice: keep that one.
    const announced = error.status === 401 || error.status === 403;
    if (current === generation && !announced) showNotice(error.message);
  }
}

/** Opens the key dialog; `reason` says in it why (the notice bar is behind the dialog). */
function askForKey(reason = "") {
  document.getElementById("key-reason").textContent = reason;
  document.getElementById("key-input").value = "";
  if (!keyDialog.open) keyDialog.showModal();
}

window.addEventListener("backprop:unauthorized", (event) => {
  const error = event.detail;
  const message = error.status === 403
    ? `This key may not do that: ${error.message}`
    : apiKey()
      ? "The service refused this API key. Enter another one."
      : "This service needs an API key. Enter one to continue.";
  showNotice(message);
  if (error.status === 401) askForKey(message);
});

keyDialog.addEventListener("close", () => {
  if (keyDialog.returnValue === "use") setApiKey(document.getElementById("key-input").value.trim());
  else if (keyDialog.returnValue === "forget") setApiKey(null);
  else return;
  route();
});
document.getElementById("key-button").addEventListener("click", () => askForKey());
window.addEventListener("hashchange", route);
route();
