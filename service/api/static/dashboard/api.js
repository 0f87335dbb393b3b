// The one way the dashboard talks to the service: the public API, relative to the page (so
// it works behind a proxy's path prefix), with the key of this tab as a bearer token.

const KEY_STORAGE = "backprop.apiKey";

/** A non-2xx answer: the problem+json body's `detail`, and `errors` naming the fields. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.errors = problem.errors || [];
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** Headers every API request carries: the key, if one was given. */
export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** `path` relative to the page ("v1/jobs"), as a URL the page can fetch or link to. */
export function apiUrl(path, query) {
  const url = new URL(path.replace(/^\//, ""), document.baseURI);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

/**
 * The ApiError for a non-2xx `response`, from its problem+json body; a 401 or 403 also
 * fires `backprop:unauthorized` on the window, which the shell turns into the key prompt.
 */
export async function refusal(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    problem = { detail: `${response.status} ${response.statusText}` };
  }
  const error = new ApiError(response.status, problem);
  if (response.status === 401 || response.status === 403) {
    window.dispatchEvent(new CustomEvent("backprop:unauthorized", { detail: error }));
  }
  return error;
}

/**
 * Calls the API and answers the parsed JSON body (null for 204). Throws ApiError for a
 * non-2xx answer; a 401 or 403 also fires `backprop:unauthorized` on the window, which the
 * shell turns into the key prompt.
 */
export async function api(path, { method = "GET", body, query, signal, accept } = {}) {
  const headers = { Accept: accept || "application/json", ...authHeaders() };
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(apiUrl(path, query), init);
  if (!response.ok) throw await refusal(response);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** Every item of a paginated list (`items`, `next_cursor`), up to `max` of them. */
export async function listAll(path, { query = {}, max = 1000, signal } = {}) {
  const items = [];
  let cursor;
  do {
    const page = await api(path, { query: { ...query, cursor }, signal });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
