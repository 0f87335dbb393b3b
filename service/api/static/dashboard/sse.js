// Server-sent events read with fetch(): EventSource cannot send the Authorization header,
// so the stream is parsed here, and a dropped connection is resumed with Last-Event-ID
// (the id of the last event received) so that no event is missed or repeated.
import { apiUrl, authHeaders, refusal } from "./api.js";

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 10000;
// Connections in a row that fail before any event arrives: then the caller falls back.
const FAILURES_BEFORE_FALLBACK = 3;

/**
 * Splits a text/event-stream into events as the HTML standard's parser does: `data` lines
 * joined by newlines, `event` (default "message"), `id` remembered across events, comment
 * lines ignored. `push(text)` takes the next chunk and answers the events it completed.
 */
export function eventParser() {
  let buffer = "";
  let data = [];
  let type = "";
  let lastId = null;
  let retry = null;

  function line(text) {
    if (text === "") {
      if (data.length === 0) {
        type = "";
        return null;
      }
      const event = { type: type || "message", data: data.join("\n"), id: lastId };
      data = [];
      type = "";
      return event;
    }
    if (text.startsWith(":")) return null;
    const colon = text.indexOf(":");
    const name = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "data") data.push(value);
    else if (name === "event") type = value;
    else if (name === "id" && !value.includes("\0")) lastId = value;
    else if (name === "retry" && /^\d+$/.test(value)) retry = Number(value);
    return null;
  }

  return {
    push(chunk) {
      buffer += chunk;
      const events = [];
      // A lone "\r" at the end may be the first half of "\r\n": it waits for the next chunk.
      const pattern = /\r\n|\r(?!$)|\n/g;
      let start = 0;
      let match;
      while ((match = pattern.exec(buffer))) {
        const event = line(buffer.slice(start, match.index));
        if (event) events.push(event);
        start = pattern.lastIndex;
      }
      buffer = buffer.slice(start);
      return events;
    },
    /** The stream's end: a "\r" held back ends its line. Answers the events it completed. */
    end() {
      if (!buffer.endsWith("\r")) return [];
      const event = line(buffer.slice(0, -1));
      buffer = "";
      return event ? [event] : [];
    },
    get lastId() {
      return lastId;
    },
    get retry() {
      return retry;
    },
  };
}

/**
 * Follows the event stream at `path` (relative to the page, as `api()` takes it).
 * `onEvent({type, data, id})` gets each event; `onFallback(error)` is called once, and the
 * stream given up, when it cannot be read (no streaming in this browser, or several
 * connections in a row failing before any event). A stream that ends on its own is opened
 * again from the last event id until the caller calls `close()` (on its final event).
 * `lastEventId` starts it after that id.
 */
export function followEvents(path, { onEvent, onFallback = () => {}, onConnect = () => {}, lastEventId = null }) {
  let lastId = lastEventId;
  let closed = false;
  let controller = null;
  let failures = 0;
  let retryMs = FIRST_RETRY_MS;
  let timer = null;

  async function connect() {
    controller = new AbortController();
    const headers = { Accept: "text/event-stream", ...authHeaders() };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    let received = false;
    try {
      const response = await fetch(apiUrl(path), { headers, signal: controller.signal, cache: "no-store" });
      if (!response.ok) {
        const error = await refusal(response);
        // Asking again will not change a 4xx answer.
        if (response.status < 500) return giveUp(error);
        throw error;
      }
      if (!response.body || typeof TextDecoderStream === "undefined") {
        return giveUp(new Error("this browser cannot read a streamed response"));
      }
      onConnect();
      const parser = eventParser();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (closed) break;
        for (const event of done ? parser.end() : parser.push(value)) {
          received = true;
          failures = 0;
          retryMs = parser.retry ?? FIRST_RETRY_MS;
          if (event.id !== null) lastId = event.id;
          onEvent(event);
          if (closed) break;
        }
        if (done) break;
      }
      if (closed) {
        reader.cancel().catch(() => {});
        return;
      }
      if (!received) throw new Error("the event stream ended before any event");
    } catch (error) {
      if (closed) return;
      failures += 1;
      if (failures >= FAILURES_BEFORE_FALLBACK) return giveUp(error);
    }
    // A stream that delivered events and ended is picked up again at once from its last id;
    // after a failure the wait doubles.
    timer = setTimeout(connect, received ? 0 : retryMs);
    if (!received) retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
  }

  function giveUp(error) {
    if (closed) return;
    closed = true;
    onFallback(error);
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (controller) controller.abort();
    },
    get lastEventId() {
      return lastId;
    },
  };
}
