// One job: its summary, the loss curves live from GET /v1/jobs/{id}/events (polling
// /v1/jobs/{id} and /history when the stream cannot be read), and, at any snapshot epoch
// chosen with the slider, the decision boundary of a 2-input network (POST
// /v1/jobs/{id}/grid over GET /v1/datasets/{id}/rows) and the network's weights
// (GET /v1/jobs/{id}/snapshots/{epoch}).
import { api, listAll } from "../api.js";
import { showNotice } from "../app.js";
import { classColor, drawBoundary } from "../boundary.js";
import { lossChart } from "../chart.js";
import { formatNumber, formatTime, h } from "../dom.js";
import { drawNetwork, largestWeight } from "../network.js";
import { followEvents } from "../sse.js";
import { jobLabel } from "./jobs.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 1500;
// While the job runs, the newest snapshot's boundary is drawn at most this often.
const LIVE_PICTURE_MS = 2500;
const GRID_RESOLUTION = 100;
// Points drawn over the boundary: enough to show the data's shape.
const MAX_POINTS = 2000;
// Beyond this many weights the network picture is left out: it would show a blur.
const MAX_DRAWN_WEIGHTS = 100_000;
const CACHED_EPOCHS = 60;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * New items of an ascending paginated list since the last call: the page last read is read
 * again from its cursor (it may have grown), then any pages after it.
 */
function tail(path, query) {
  let cursor;
  let seen = 0;
  return async function more() {
    const fresh = [];
    for (;;) {
      const page = await api(path, { query: { ...query, cursor } });
      fresh.push(...page.items.slice(seen));
      if (!page.next_cursor) {
        seen = page.items.length;
        return fresh;
      }
      cursor = page.next_cursor;
      seen = 0;
    }
  };
}

function describeNetwork(network) {
  return `${network.layers.join(" → ")} · ${network.hidden_activation} hidden, ` +
    `${network.output_activation} output · init ${network.init}`;
}

function describeTraining(training) {
  const parts = [
    training.optimizer,
    `learning rate ${formatNumber(training.learning_rate)}`,
    training.batch_size === null ? "full batch" : `batch ${training.batch_size}`,
    `${training.epochs} epochs`,
    `seed ${training.seed}`,
    `${training.update_rule} updates`,
    training.loss,
  ];
  if (training.lr_schedule !== "constant") parts.push(`${training.lr_schedule} schedule`);
  if (training.validation_split > 0) parts.push(`${Math.round(training.validation_split * 100)}% validation`);
  if (training.l2 > 0) parts.push(`L2 ${formatNumber(training.l2)}`);
  if (training.early_stopping_patience) parts.push(`early stopping after ${training.early_stopping_patience}`);
  return parts.join(" · ");
}

function describeDataset(dataset) {
  const task = dataset.task === "classification"
    ? `${dataset.classes.length} classes`
    : `regression, ${dataset.n_targets} target${dataset.n_targets === 1 ? "" : "s"}`;
  return `${dataset.name} · ${dataset.n_samples} rows, ${dataset.n_features} inputs, ${task}`;
}

function seconds(from, to) {
  if (!from || !to) return null;
  return `${((new Date(to) - new Date(from)) / 1000).toFixed(1)} s`;
}

export async function render(root, [jobId]) {
  let job = await api(`v1/jobs/${jobId}`);
  const dataset = await api(`v1/datasets/${job.dataset_id}`);
  const widths = job.spec.network.layers;
  const twoInputs = dataset.n_features === 2 && widths[0] === 2;
  const classification = dataset.task === "classification";
  const validation = job.spec.training.validation_split > 0;
  let stopped = false;
  let stream = null;
  const timers = new Set();
  const disposers = [];
  const later = (fn, ms) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  // --- Summary ---------------------------------------------------------------------------
  const status = h("span", { class: "status", id: "job-status" });
  const progress = h("progress", { max: "1", "aria-labelledby": "job-progress-label" });
  const progressText = h("span");
  const lossText = h("dd");
  const timesText = h("dd");
  const outcome = h("p", { class: "outcome", hidden: true });
  const modelText = h("dd");
  const cancel = h("button", { type: "button", class: "danger" }, "Cancel job");
  const download = h("button", { type: "button", class: "secondary" }, "Download history (CSV)");

  const summary = h("section", { class: "panel job-summary", "aria-labelledby": "job-title" },
    h("h2", { id: "job-title" }, jobLabel(job)),
    h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", {}, status),
      h("dt", { id: "job-progress-label" }, "Progress"), h("dd", {}, progress, " ", progressText),
      h("dt", {}, "Loss"), lossText,
      h("dt", {}, "Model"), modelText,
      h("dt", {}, "Dataset"), h("dd", {}, describeDataset(dataset)),
      h("dt", {}, "Network"), h("dd", {}, describeNetwork(job.spec.network)),
      h("dt", {}, "Training"), h("dd", {}, describeTraining(job.spec.training)),
      h("dt", {}, "Times"), timesText,
      h("dt", {}, "Job id"), h("dd", {}, h("code", {}, job.id)),
    ),
    outcome,
    h("details", {}, h("summary", {}, "Full spec (JSON)"),
      h("pre", { class: "spec" }, JSON.stringify(job.spec, null, 2))),
    h("div", { class: "actions" }, cancel, download,
      h("a", { class: "button secondary", href: `#/compare?jobs=${job.id}` }, "Compare with other jobs")),
  );

  // The newest epoch's losses: progress events carry the training loss only.
  let lastPoint = null;
  function showLosses() {
    const loss = lastPoint ? lastPoint.loss : job.loss;
    const valLoss = lastPoint ? lastPoint.val_loss : job.val_loss;
    lossText.textContent = `training ${formatNumber(loss)}` +
      (validation ? ` · validation ${formatNumber(valLoss)}` : "") +
      (lastPoint?.accuracy !== null && lastPoint?.accuracy !== undefined
        ? ` · accuracy ${formatNumber(lastPoint.accuracy, 3)}`
        : "");
  }

  function showJob(next) {
    job = { ...job, ...next };
    status.textContent = job.status;
    status.className = `status status-${job.status}`;
    progress.value = job.progress;
    progressText.textContent = `epoch ${job.epoch} of ${job.epochs_total} (${Math.round(job.progress * 100)}%)`;
    showLosses();
    modelText.replaceChildren(job.model_name
      ? job.model_version
        ? h("a", { href: `#/models/${encodeURIComponent(job.model_name)}` }, `${job.model_name} v${job.model_version}`)
        : `${job.model_name} (registered when the job succeeds)`
      : "not registered");
    const ran = seconds(job.started_at, job.finished_at);
    timesText.textContent = `created ${formatTime(job.created_at)}` +
      (job.started_at ? ` · started ${formatTime(job.started_at)}` : "") +
      (job.finished_at ? ` · finished ${formatTime(job.finished_at)}` : "") +
      (ran ? ` · ran ${ran}` : "");
    const reason = job.error || job.stop_reason;
    outcome.hidden = !reason;
    outcome.className = `outcome ${job.error ? "error" : "muted"}`;
    outcome.textContent = job.error ? `Failed: ${job.error}` : reason ? `Stopped: ${reason}` : "";
    cancel.hidden = TERMINAL.has(job.status);
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      showJob(await api(`v1/jobs/${job.id}/cancel`, { method: "POST" }));
    } catch (error) {
      if (error.status !== 401) showNotice(`Could not cancel the job: ${error.message}`);
    } finally {
      cancel.disabled = false;
    }
  });

  download.addEventListener("click", async () => {
    download.disabled = true;
    try {
      const text = await api(`v1/jobs/${job.id}/history`, { query: { format: "csv" }, accept: "text/csv" });
      if (typeof text !== "string") throw new Error("the service answered JSON, not CSV");
      const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
      const link = h("a", { href: url, download: `job-${job.id}-history.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      if (error.status !== 401) showNotice(`Could not download the history: ${error.message}`);
    } finally {
      download.disabled = false;
    }
  });

  // --- Curves ----------------------------------------------------------------------------
  const logScale = h("input", { type: "checkbox", id: "log-scale" });
  const liveNote = h("span", { class: "muted live-note", role: "status" });
  const lossBox = h("div", { class: "chart", id: "loss-chart", role: "figure", "aria-label": "Loss per epoch" });
  const accuracyBox = classification
    ? h("div", { class: "chart", id: "accuracy-chart", role: "figure", "aria-label": "Accuracy per epoch" })
    : null;
  const curves = h("section", { class: "panel", "aria-labelledby": "curves-title" },
    h("div", { class: "toolbar" },
      h("h3", { id: "curves-title" }, "Training curves"),
      h("label", { class: "choice" }, logScale, " Log scale"),
      liveNote),
    lossBox, accuracyBox);

  // --- Weights at a snapshot -------------------------------------------------------------
  const slider = h("input", { type: "range", id: "epoch-slider", min: "0", max: "0", step: "1", value: "0", disabled: true });
  const sliderText = h("output", { for: "epoch-slider", id: "epoch-output" }, "no snapshots yet");
  const canvas = twoInputs
    ? h("canvas", { id: "boundary", role: "img", "aria-label": "Decision boundary" })
    : null;
  const boundaryNote = h("p", { class: "muted" });
  const legend = h("div", { class: "legend" });
  const networkBox = h("div", { class: "network-box" });
  const networkNote = h("p", { class: "muted" });
  const weightCount = widths.slice(1).reduce((sum, width, index) => sum + width * widths[index], 0);
  const drawWeights = weightCount <= MAX_DRAWN_WEIGHTS;
  const pictures = h("section", { class: "panel", "aria-labelledby": "weights-title" },
    h("h3", { id: "weights-title" }, twoInputs ? "Decision boundary and weights" : "Weights"),
    h("div", { class: "slider-row" },
      h("label", { for: "epoch-slider" }, "Snapshot epoch"), slider, sliderText),
    h("div", { class: "pictures" },
      canvas ? h("figure", { class: "boundary-figure" }, canvas,
        h("figcaption", {}, legend, boundaryNote)) : null,
      h("figure", { class: "network-figure" }, networkBox,
        h("figcaption", {}, drawWeights
          ? "Edge width: |weight|; blue positive, orange negative; node fill: bias."
          : `${weightCount} weights are too many to draw.`, networkNote))),
  );
  if (!twoInputs) {
    pictures.querySelector(".pictures").prepend(h("p", { class: "muted" },
      `The decision boundary is drawn for data with 2 inputs; this dataset has ${dataset.n_features}.`));
  }

  root.append(summary, curves, pictures);
  showJob(job);

  const lossCurves = [{ label: "training loss" }, ...(validation ? [{ label: "validation loss", dash: [6, 4] }] : [])];
  const lossPlot = lossChart(lossBox, lossCurves, { title: "Loss" });
  const accuracyPlot = accuracyBox
    ? lossChart(accuracyBox, [{ label: "training accuracy" },
      ...(validation ? [{ label: "validation accuracy", dash: [6, 4] }] : [])], { title: "Accuracy", height: 220 })
    : null;
  logScale.addEventListener("change", () => lossPlot.setLog(logScale.checked));

  // --- History: every epoch once, in order -----------------------------------------------
  const history = { epochs: [], loss: [], val_loss: [], accuracy: [], val_accuracy: [] };
  let drawPending = false;
  function addPoints(points) {
    for (const point of points) {
      if (history.epochs.length && point.epoch <= history.epochs.at(-1)) continue;
      history.epochs.push(point.epoch);
      for (const name of ["loss", "val_loss", "accuracy", "val_accuracy"]) history[name].push(point[name]);
      lastPoint = point;
    }
    showLosses();
    if (!drawPending) {
      drawPending = true;
      later(drawCurves, 100);
    }
  }
  function drawCurves() {
    drawPending = false;
    if (stopped) return;
    lossPlot.setData(history.epochs, [history.loss, ...(validation ? [history.val_loss] : [])]);
    accuracyPlot?.setData(history.epochs, [history.accuracy, ...(validation ? [history.val_accuracy] : [])]);
  }

  // --- Snapshots, the slider and the pictures ---------------------------------------------
  const snapshotTail = tail(`v1/jobs/${job.id}/snapshots`, { limit: 1000 });
  const snapshots = [];
  const cache = new Map();
  let points = [];
  let targetRange = null;
  let networkScale = null;
  let followLatest = true;
  let drawn = null;
  let wanted = null;
  let loading = false;
  let gridProblem = null;
  let lastGrid = null;

  const epochAt = (index) => snapshots[index];
  function sliderLabel(epoch) {
    const final = TERMINAL.has(job.status) && epoch === job.weights_epoch;
    return `epoch ${epoch}${final ? " (final weights)" : ""}`;
  }

  // One look at the snapshots at a time: the live refresh and the job's end may overlap.
  let snapshotsRead = Promise.resolve();
  function refreshSnapshots() {
    snapshotsRead = snapshotsRead.catch(() => {}).then(readSnapshots);
    return snapshotsRead;
  }

  async function readSnapshots() {
    const fresh = await snapshotTail();
    if (stopped) return;
    for (const item of fresh) if (!snapshots.includes(item.epoch)) snapshots.push(item.epoch);
    if (!snapshots.length) {
      sliderText.textContent = TERMINAL.has(job.status)
        ? "this job kept no snapshots"
        : `snapshots appear every ${job.checkpoint_every} epochs`;
      return;
    }
    slider.disabled = snapshots.length < 2;
    slider.max = String(snapshots.length - 1);
    if (followLatest) {
      // A finished job opens at the weights it ended with (the best epoch after early stopping).
      const end = TERMINAL.has(job.status) && snapshots.includes(job.weights_epoch)
        ? snapshots.indexOf(job.weights_epoch)
        : snapshots.length - 1;
      slider.value = String(end);
    }
    show(epochAt(Number(slider.value)));
  }

  slider.addEventListener("input", () => {
    // Moved back by the user, it stays; moved to the end, it follows new snapshots again.
    followLatest = Number(slider.value) === snapshots.length - 1;
    show(epochAt(Number(slider.value)));
  });

  function show(epoch) {
    if (epoch === undefined) return;
    sliderText.textContent = sliderLabel(epoch);
    slider.setAttribute("aria-valuetext", sliderLabel(epoch));
    wanted = epoch;
    if (!loading) loadWanted();
  }

  async function picturesAt(epoch) {
    if (cache.has(epoch)) return cache.get(epoch);
    const [grid, weights] = await Promise.all([
      twoInputs && !gridProblem
        ? api(`v1/jobs/${job.id}/grid`, { method: "POST", body: { epoch, resolution: GRID_RESOLUTION } })
          .catch((error) => ({ error }))
        : null,
      drawWeights ? api(`v1/jobs/${job.id}/snapshots/${epoch}`) : null,
    ]);
    const entry = { grid, weights };
    if (!grid?.error) {
      cache.set(epoch, entry);
      if (cache.size > CACHED_EPOCHS) cache.delete(cache.keys().next().value);
    }
    return entry;
  }

  // One epoch's pictures at a time; a slider moved meanwhile draws its last position next.
  async function loadWanted() {
    loading = true;
    try {
      while (!stopped && wanted !== drawn) {
        const epoch = wanted;
        const { grid, weights } = await picturesAt(epoch);
        if (stopped) return;
        if (weights) {
          if (epoch === snapshots.at(-1) || networkScale === null) networkScale = largestWeight(weights.layers);
          drawNetwork(networkBox, widths, weights.layers, {
            scale: networkScale,
            epoch,
            labels: widths.map((width, index) => index === 0
              ? `${width} inputs`
              : index === widths.length - 1
                ? `${width} ${job.spec.network.output_activation}`
                : `${width} ${job.spec.network.hidden_activation}`),
          });
        }
        if (grid?.error) {
          // An answer that will not change (a 4xx) stops the asking; a failure may pass.
          const status = grid.error.status || 0;
          if (status >= 400 && status < 500 && status !== 429) gridProblem = grid.error;
          boundaryNote.textContent = `The decision boundary could not be computed: ${grid.error.message}`;
        } else if (grid) {
          lastGrid = grid;
          paintBoundary(epoch);
        }
        drawn = epoch;
      }
    } catch (error) {
      if (!stopped) networkNote.textContent = `Could not load the weights: ${error.message}`;
      drawn = wanted;
    } finally {
      loading = false;
    }
  }

  function paintBoundary(epoch) {
    const extent = drawBoundary(canvas, lastGrid, points, { classes: dataset.classes, targetRange });
    canvas.dataset.epoch = String(epoch);
    canvas.setAttribute("aria-label", `Decision boundary at epoch ${epoch}, with the ${points.length} data points`);
    boundaryNote.textContent = `x ${formatNumber(extent.xMin, 3)} to ${formatNumber(extent.xMax, 3)}, ` +
      `y ${formatNumber(extent.yMin, 3)} to ${formatNumber(extent.yMax, 3)}` +
      (points.length < dataset.n_samples ? ` · ${points.length} of ${dataset.n_samples} points shown` : "");
  }

  function showLegend() {
    if (classification) {
      legend.replaceChildren(...dataset.classes.map((label, index) =>
        h("span", { class: "legend-item" }, h("span", { class: "dot", style: `background:${classColor(index)}` }), ` ${label}`)));
    } else if (targetRange) {
      legend.replaceChildren(h("span", { class: "legend-item" }, formatNumber(targetRange[0], 3),
        h("span", { class: "ramp", "aria-hidden": "true" }), formatNumber(targetRange[1], 3)));
    }
  }

  if (canvas) {
    const resize = new ResizeObserver(() => lastGrid && drawn !== null && paintBoundary(drawn));
    resize.observe(canvas.parentElement);
    disposers.push(() => resize.disconnect());
    try {
      const rows = await listAll(`v1/datasets/${dataset.id}/rows`, { query: { limit: 1000 }, max: MAX_POINTS });
      points = rows.slice(0, MAX_POINTS).map((row) => ({
        x: row.inputs[0], y: row.inputs[1], label: row.label, target: row.targets ? row.targets[0] : null,
      }));
      if (!classification && points.length) {
        const targets = points.map((point) => point.target);
        targetRange = [Math.min(...targets), Math.max(...targets)];
      }
      showLegend();
    } catch (error) {
      boundaryNote.textContent = `Could not load the data points: ${error.message}`;
    }
  }

  // --- Following the job -----------------------------------------------------------------
  async function finish(final) {
    showJob(final);
    liveNote.textContent = "";
    await refreshSnapshots();
  }

  async function livePictures() {
    if (stopped || TERMINAL.has(job.status)) return;
    try {
      await refreshSnapshots();
    } catch {
      // The next round tries again.
    }
    later(livePictures, LIVE_PICTURE_MS);
  }

  async function poll() {
    const historyTail = tail(`v1/jobs/${job.id}/history`, { limit: 1000 });
    while (!stopped) {
      try {
        // The job before its history: once it reads as finished, every epoch is written.
        const latest = await api(`v1/jobs/${job.id}`);
        addPoints(await historyTail());
        showJob(latest);
        if (TERMINAL.has(latest.status)) return finish(latest);
      } catch (error) {
        liveNote.textContent = `Could not refresh: ${error.message}`;
      }
      await sleep(POLL_MS);
    }
  }

  function follow() {
    liveNote.textContent = "Live";
    stream = followEvents(`v1/jobs/${job.id}/events`, {
      onEvent(event) {
        if (stopped) return;
        const data = JSON.parse(event.data);
        if (event.type === "epoch") addPoints([data]);
        else if (event.type === "progress") showJob(data);
        else if (event.type === "state") {
          stream.close();
          finish(data);
        }
      },
      onFallback(error) {
        if (stopped) return;
        liveNote.textContent = `Live updates unavailable (${error.message}): checking every ${POLL_MS / 1000} s`;
        poll();
      },
    });
  }

  if (TERMINAL.has(job.status)) {
    const [items] = await Promise.all([
      listAll(`v1/jobs/${job.id}/history`, { query: { limit: 10000, max_points: 5000 }, max: 100000 }),
      refreshSnapshots(),
    ]);
    addPoints(items);
  } else {
    follow();
    livePictures();
  }

  return () => {
    stopped = true;
    if (stream) stream.close();
    for (const timer of timers) clearTimeout(timer);
    for (const dispose of disposers) dispose();
    lossPlot.destroy();
    accuracyPlot?.destroy();
  };
}
