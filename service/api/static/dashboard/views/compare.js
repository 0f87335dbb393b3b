// Compare: several jobs' loss curves on one chart, their final results, and the settings
// in which they differ. The selection lives in the hash (#/compare?jobs=id1,id2), so a
// comparison can be bookmarked and shared.
import { ApiError, api, listAll } from "../api.js";
import { hashQuery, showNotice } from "../app.js";
import { lossChart, seriesColor } from "../chart.js";
import { formatNumber, formatTime, h } from "../dom.js";

// The jobs offered for picking: the newest ones (a job named in the hash is fetched too).
const LISTED_JOBS = 200;
// Each curve is downsampled by the API to at most this many epochs.
const MAX_POINTS = 1000;
const POLL_MS = 2000;
const ACTIVE = new Set(["queued", "running"]);
const JOB_ID = /^[0-9a-f]{32}$/;
// The last epoch's metrics shown in the results table, when any selected job has them.
const METRICS = [
  ["loss", "Final loss"],
  ["val_loss", "Final val loss"],
  ["accuracy", "Accuracy"],
  ["val_accuracy", "Val accuracy"],
  ["r2", "R²"],
  ["val_r2", "Val R²"],
];

/** A job as people tell it apart: its model name and the start of its id. */
function jobLabel(job) {
  return `${job.model_name || "job"} ${job.id.slice(0, 8)}`;
}

function hasValidation(job) {
  return (job.spec?.training?.validation_split || 0) > 0;
}

/** `{"network.layers": "2-4-1", "training.learning_rate": "0.1", ...}` of a job. */
function flatSettings(job) {
  const flat = { dataset_id: job.dataset_id };
  const walk = (prefix, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) walk(prefix ? `${prefix}.${key}` : key, inner);
    } else if (Array.isArray(value)) {
      flat[prefix] = value.join("-");
    } else {
      flat[prefix] = value === null || value === undefined ? "—" : String(value);
    }
  };
  walk("", job.spec || {});
  return flat;
}

/** The settings (rows of [name, value per job]) that are not the same for every job. */
function settingDifferences(jobs) {
  const settings = jobs.map(flatSettings);
  const names = [...new Set(settings.flatMap(Object.keys))].sort();
  return names
    .map((name) => [name, settings.map((one) => one[name] ?? "—")])
    .filter(([, values]) => new Set(values).size > 1);
}

function swatch(index) {
  return h("span", {
    class: "swatch",
    style: `--swatch: ${seriesColor(index)}`,
    "aria-hidden": "true",
  });
}

export async function render(root) {
  const fromHash = (hashQuery().get("jobs") || "").split(",").filter((id) => JOB_ID.test(id));
  let selected = [...new Set(fromHash)];
  const jobs = new Map();
  // Per job, the promise of its history's points; finished jobs' are fetched once.
  const histories = new Map();
  let chart = null;
  let chartCurves = "";
  let logScale = false;
  let drawing = 0;
  let stopped = false;

  root.append(h("h2", {}, "Compare jobs"));
  const listed = await listAll("v1/jobs", { query: { limit: LISTED_JOBS }, max: LISTED_JOBS });
  for (const job of listed) jobs.set(job.id, job);
  const missing = [];
  await Promise.all(
    selected
      .filter((id) => !jobs.has(id))
      .map(async (id) => {
        try {
          jobs.set(id, await api(`v1/jobs/${id}`));
        } catch (error) {
          if (!(error instanceof ApiError) || error.status !== 404) throw error;
          missing.push(id);
        }
      }),
  );
  if (missing.length) {
    selected = selected.filter((id) => !missing.includes(id));
    keepSelectionInHash();
    showNotice(`No job ${missing.join(", ")}: left out of the comparison.`, "info");
  }

  const statusCells = new Map();
  const filter = h("input", { type: "search", id: "compare-filter", autocomplete: "off" });
  const options = [...jobs.values()].map((job) => {
    const id = `compare-${job.id}`;
    const status = h("span", { class: `status status-${job.status}` }, job.status);
    statusCells.set(job.id, status);
    const box = h("input", {
      type: "checkbox",
      id,
      value: job.id,
      checked: selected.includes(job.id),
      onchange: (event) => toggle(job.id, event.target.checked),
    });
    return h("li", { dataset: { search: `${job.model_name || ""} ${job.id} ${job.status}`.toLowerCase() } },
      box,
      h("label", { for: id },
        h("strong", {}, job.model_name || "(no model)"), " ",
        h("code", {}, job.id.slice(0, 8)), " ", status, " ",
        h("span", { class: "muted" }, formatTime(job.created_at))));
  });
  filter.addEventListener("input", () => {
    const words = filter.value.trim().toLowerCase();
    for (const option of options) option.hidden = !!words && !option.dataset.search.includes(words);
  });
  const picker = h("section", { class: "panel compare-picker", "aria-labelledby": "compare-pick" },
    h("h3", { id: "compare-pick" }, "Jobs"),
    options.length
      ? [
          h("div", { class: "field" }, h("label", { for: "compare-filter" }, "Filter by model, id or status"), filter),
          h("fieldset", {},
            h("legend", {}, "Jobs to compare"),
            h("ul", { class: "pick-list" }, options)),
          listed.length >= LISTED_JOBS ? h("p", { class: "muted" }, `The newest ${LISTED_JOBS} jobs.`) : null,
          h("button", { type: "button", class: "secondary", onclick: clearSelection }, "Clear selection"),
        ]
      : h("p", {}, "No jobs yet. ", h("a", { href: "#/jobs" }, "Create one"), " to compare its training."));

  const logToggle = h("input", { type: "checkbox", id: "compare-log", onchange: () => {
    logScale = logToggle.checked;
    if (chart) chart.setLog(logScale);
  } });
  const chartBox = h("div", { class: "chart", id: "compare-chart", role: "img", "aria-label": "Loss curves of the selected jobs" });
  const chartPanel = h("section", { class: "panel", "aria-labelledby": "compare-loss" },
    h("div", { class: "panel-head" },
      h("h3", { id: "compare-loss" }, "Loss per epoch"),
      h("span", { class: "toggle" }, logToggle, h("label", { for: "compare-log" }, "Log scale"))),
    h("p", { class: "muted" }, "Training loss solid, validation loss dashed."),
    chartBox);
  const emptyNote = h("p", { class: "panel" }, "Pick two or more jobs to overlay their loss curves.");
  const results = h("section", { class: "panel", "aria-labelledby": "compare-results" });
  const differences = h("section", { class: "panel", "aria-labelledby": "compare-settings" });
  const outcome = h("div", { class: "compare-outcome" }, emptyNote, chartPanel, results, differences);
  root.append(h("div", { class: "compare" }, picker, outcome));

  function keepSelectionInHash() {
    // replaceState, not a hash assignment: a hashchange would render the whole view again.
    const hash = selected.length ? `#/compare?jobs=${selected.join(",")}` : "#/compare";
    history.replaceState(null, "", hash);
  }

  function toggle(id, on) {
    selected = on ? [...selected.filter((one) => one !== id), id] : selected.filter((one) => one !== id);
    keepSelectionInHash();
    redraw();
  }

  function clearSelection() {
    selected = [];
    for (const box of picker.querySelectorAll("input[type=checkbox]")) box.checked = false;
    keepSelectionInHash();
    redraw();
  }

  // A failure after the view is up goes to the notice bar (a 401 or 403 has its own).
  function redraw() {
    draw().catch((error) => {
      if (!stopped && error.status !== 401 && error.status !== 403) showNotice(error.message);
    });
  }

  function pointsOf(id) {
    if (!histories.has(id)) {
      const points = listAll(`v1/jobs/${id}/history`, { query: { max_points: MAX_POINTS, limit: 1000 }, max: 2 * MAX_POINTS });
      histories.set(id, points);
      points.catch(() => histories.delete(id));
    }
    return histories.get(id);
  }

  async function draw() {
    const current = ++drawing;
    const chosen = selected.map((id) => jobs.get(id));
    const points = await Promise.all(chosen.map((job) => pointsOf(job.id)));
    if (current !== drawing || stopped) return;
    const shown = chosen.length > 0;
    emptyNote.hidden = shown;
    chartPanel.hidden = results.hidden = differences.hidden = !shown;
    if (!shown) return;
    drawChart(chosen, points);
    drawResults(chosen, points);
    drawDifferences(chosen);
  }

  function drawChart(chosen, points) {
    const curves = [];
    const columns = [];
    chosen.forEach((job, index) => {
      const color = seriesColor(index);
      curves.push({ label: `${jobLabel(job)} · train`, color });
      columns.push([job, "loss", index]);
      if (hasValidation(job)) {
        curves.push({ label: `${jobLabel(job)} · validation`, color, dash: [6, 4] });
        columns.push([job, "val_loss", index]);
      }
    });
    chartBox.setAttribute("aria-label", `Loss per epoch of ${chosen.map(jobLabel).join(", ")}; the results table below has their final values`);
    const key = curves.map((curve) => curve.label).join("\n");
    if (key !== chartCurves) {
      if (chart) chart.destroy();
      chartBox.replaceChildren();
      chart = lossChart(chartBox, curves, { log: logScale, title: "Loss" });
      chartCurves = key;
    }
    // One x axis for all: the union of the jobs' epochs, null where a job has none.
    const epochs = [...new Set(points.flatMap((items) => items.map((point) => point.epoch)))].sort((a, b) => a - b);
    const values = columns.map(([, metric, index]) => {
      const byEpoch = new Map(points[index].map((point) => [point.epoch, point[metric]]));
      return epochs.map((epoch) => byEpoch.get(epoch) ?? null);
    });
    chart.setData(epochs, values);
  }

  function drawResults(chosen, points) {
    const last = points.map((items) => items[items.length - 1] || {});
    const metrics = METRICS.filter(([name]) => last.some((point) => point[name] !== null && point[name] !== undefined));
    const rows = chosen.map((job, index) => h("tr", {},
      h("th", { scope: "row" }, swatch(index), h("a", { href: `#/jobs/${job.id}` }, jobLabel(job))),
      h("td", {}, h("span", { class: `status status-${job.status}` }, job.status)),
      h("td", {}, `${job.epoch} / ${job.epochs_total}`),
      metrics.map(([name]) => h("td", {}, formatNumber(last[index][name]))),
      h("td", {}, job.model_name && job.model_version
        ? h("a", { href: `#/models/${encodeURIComponent(job.model_name)}` }, `${job.model_name} v${job.model_version}`)
        : "—")));
    results.replaceChildren(
      h("h3", { id: "compare-results" }, "Results"),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {},
          h("th", { scope: "col" }, "Job"), h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Epochs"),
          metrics.map(([, label]) => h("th", { scope: "col" }, label)),
          h("th", { scope: "col" }, "Model version"))),
        h("tbody", {}, rows))));
  }

  function drawDifferences(chosen) {
    const heading = h("h3", { id: "compare-settings" }, "Settings that differ");
    if (chosen.length < 2) {
      differences.replaceChildren(heading, h("p", { class: "muted" }, "Pick another job to see how their settings differ."));
      return;
    }
    const rows = settingDifferences(chosen);
    if (!rows.length) {
      differences.replaceChildren(heading, h("p", {}, "These jobs share every setting (and the dataset)."));
      return;
    }
    differences.replaceChildren(heading, h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Setting"),
        chosen.map((job, index) => h("th", { scope: "col" }, swatch(index), jobLabel(job))))),
      h("tbody", {}, rows.map(([name, values]) => h("tr", {},
        h("th", { scope: "row" }, h("code", {}, name)),
        values.map((value) => h("td", {}, value))))))));
  }

  // Running jobs' curves grow: their job and history are fetched again while any runs.
  const poll = setInterval(async () => {
    const running = selected.filter((id) => ACTIVE.has(jobs.get(id)?.status));
    if (!running.length) return;
    const updated = await Promise.all(running.map((id) => api(`v1/jobs/${id}`).catch(() => null)));
    if (stopped) return;
    for (const job of updated.filter(Boolean)) {
      jobs.set(job.id, job);
      histories.delete(job.id);
      const status = statusCells.get(job.id);
      if (status) {
        status.textContent = job.status;
        status.className = `status status-${job.status}`;
      }
    }
    redraw();
  }, POLL_MS);

  await draw();
  return () => {
    stopped = true;
    clearInterval(poll);
    if (chart) chart.destroy();
  };
}
