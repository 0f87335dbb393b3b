// The jobs list (GET /v1/jobs, polled while the tab is visible; faster while any job is
// queued or running) with cancel buttons, and the "New job" form beside it.
import { api } from "../api.js";
import { showNotice } from "../app.js";
import { formatNumber, formatTime, h } from "../dom.js";
import { jobForm } from "../jobform.js";
import { choices, schemas } from "../schema.js";

const ACTIVE = new Set(["queued", "running"]);
const POLL_ACTIVE_MS = 1000;
const POLL_IDLE_MS = 4000;
const PAGE_SIZE = 50;

export function jobLabel(job) {
  return job.model_name ? `${job.model_name} (${job.id.slice(0, 8)})` : `job ${job.id.slice(0, 8)}`;
}

/** The time of day for today's jobs, else the date: the full time is the cell's title. */
function shortTime(iso) {
  const when = new Date(iso);
  return when.toDateString() === new Date().toDateString()
    ? when.toLocaleTimeString()
    : when.toLocaleDateString();
}

/** A table row for one job whose cells are updated in place, so focus survives a refresh. */
function jobRow(job, onCancel) {
  const cells = {
    status: h("span", { class: "status" }),
    progress: h("progress", { max: "1", "aria-label": `Progress of ${jobLabel(job)}` }),
    model: h("td"),
    epoch: h("td", { class: "number" }),
    loss: h("td", { class: "number" }),
    actions: h("td", { class: "row-actions" }),
  };
  const row = h("tr", { dataset: { jobId: job.id } },
    h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "job-id" }, job.id.slice(0, 8))),
    h("td", {}, cells.status),
    h("td", { class: "progress-cell" }, cells.progress),
    cells.model,
    cells.epoch,
    cells.loss,
    h("td", {}, h("time", { datetime: job.created_at, title: formatTime(job.created_at) }, shortTime(job.created_at))),
    cells.actions,
  );
  let cancel = null;

  function update(next) {
    row.dataset.status = next.status;
    cells.status.textContent = next.status;
    cells.status.className = `status status-${next.status}`;
    cells.progress.value = next.progress;
    cells.progress.title = `${Math.round(next.progress * 100)}%`;
    cells.model.textContent = next.model_name
      ? `${next.model_name}${next.model_version ? ` v${next.model_version}` : ""}`
      : "—";
    cells.epoch.textContent = `${next.epoch} / ${next.epochs_total}`;
    cells.loss.textContent = formatNumber(next.loss);
    if (ACTIVE.has(next.status) && !cancel) {
      cancel = h("button", {
        type: "button", class: "danger", "aria-label": `Cancel ${jobLabel(next)}`,
        onclick: () => onCancel(next, cancel),
      }, "Cancel");
      cells.actions.append(cancel);
    } else if (!ACTIVE.has(next.status) && cancel) {
      cancel.remove();
      cancel = null;
    }
  }
  update(job);
  return { row, update };
}

export async function render(root) {
  const all = await schemas();
  const statusFilter = h("select", { id: "jobs-status-filter" },
    h("option", { value: "" }, "all"),
    ...choices(all, "JobRead", "status").map((value) => h("option", { value }, value)));
  const tbody = h("tbody");
  const empty = h("p", { class: "muted", hidden: true }, "No jobs yet: start one with the form below.");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Show more");
  const table = h("table", { class: "jobs-table" },
    h("caption", { class: "visually-hidden" }, "Jobs, newest first"),
    h("thead", {}, h("tr", {},
      ...["Job", "Status", "Progress", "Model", "Epoch", "Loss", "Created", "Actions"].map((name) =>
        h("th", { scope: "col" }, name)))),
    tbody);
  const formPanel = h("section", { class: "panel new-job", "aria-labelledby": "new-job-title" },
    h("h2", { id: "new-job-title" }, "New job"));
  root.append(h("div", { class: "jobs-layout" },
    h("section", { class: "panel jobs-list", "aria-labelledby": "jobs-title" },
      h("div", { class: "toolbar" },
        h("h2", { id: "jobs-title" }, "Jobs"),
        h("label", { for: "jobs-status-filter" }, "Status"), statusFilter,
        h("button", { type: "button", class: "secondary", onclick: toForm }, "New job")),
      h("div", { class: "table-wrap" }, table),
      empty,
      h("div", { class: "actions" }, more)),
    formPanel));

  // The form is below the list: this takes keyboard and eyes to its first field.
  function toForm() {
    formPanel.scrollIntoView({ behavior: "smooth", block: "start" });
    formPanel.querySelector("input:not([type=radio]), select")?.focus({ preventScroll: true });
  }

  const rows = new Map();
  let shown = PAGE_SIZE;
  let timer = null;
  let stopped = false;
  let inFlight = null;
  let refused = false;

  async function cancelJob(job, button) {
    button.disabled = true;
    try {
      const cancelled = await api(`v1/jobs/${job.id}/cancel`, { method: "POST" });
      rows.get(job.id)?.update(cancelled);
    } catch (error) {
      button.disabled = false;
      if (error.status !== 401) showNotice(`Could not cancel ${jobLabel(job)}: ${error.message}`);
    }
    refresh();
  }

  function place(jobs) {
    const wanted = new Set(jobs.map((job) => job.id));
    for (const [id, entry] of rows) {
      if (!wanted.has(id)) {
        entry.row.remove();
        rows.delete(id);
      }
    }
    // Rows already in order stay where they are: moving a node would drop its focus.
    let previous = null;
    for (const job of jobs) {
      let entry = rows.get(job.id);
      if (entry) entry.update(job);
      else rows.set(job.id, (entry = jobRow(job, cancelJob)));
      const expected = previous ? previous.nextSibling : tbody.firstChild;
      if (expected !== entry.row) tbody.insertBefore(entry.row, expected);
      previous = entry.row;
    }
    empty.hidden = jobs.length > 0;
    table.hidden = jobs.length === 0;
  }

  async function refresh() {
    clearTimeout(timer);
    if (stopped) return;
    if (inFlight) return inFlight;
    let anyActive = false;
    inFlight = (async () => {
      try {
        const page = await api("v1/jobs", { query: { limit: shown, status: statusFilter.value } });
        if (stopped) return;
        place(page.items);
        more.hidden = !page.next_cursor || shown >= 1000;
        anyActive = page.items.some((job) => ACTIVE.has(job.status));
      } catch (error) {
        // Without a (valid) key the shell asks for one and renders the page again once given.
        if (error.status === 401 || error.status === 403) refused = true;
        else if (!stopped) showNotice(`Could not list the jobs: ${error.message}`);
      }
    })();
    await inFlight;
    inFlight = null;
    if (!stopped && !refused && !document.hidden) {
      timer = setTimeout(refresh, anyActive ? POLL_ACTIVE_MS : POLL_IDLE_MS);
    }
  }

  function onVisibility() {
    if (document.hidden) clearTimeout(timer);
    else refresh();
  }

  statusFilter.addEventListener("change", () => {
    shown = PAGE_SIZE;
    refresh();
  });
  more.addEventListener("click", () => {
    shown = Math.min(shown + PAGE_SIZE, 1000);
    refresh();
  });
  document.addEventListener("visibilitychange", onVisibility);

  await Promise.all([refresh(), jobForm(formPanel)]);

  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisibility);
  };
}
