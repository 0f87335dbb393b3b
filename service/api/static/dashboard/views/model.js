// One model: its versions, its aliases (set, move, delete) and a form that predicts raw rows
// with any version or alias.
import { ApiError, api, listAll } from "../api.js";
import { showNotice } from "../app.js";
import { clearFieldErrors, field, formatNumber, formatTime, h, showFieldErrors } from "../dom.js";
import { aliasBadges } from "./models.js";

const METRICS = [
  ["loss", "Loss"],
  ["val_loss", "Val loss"],
  ["accuracy", "Accuracy"],
  ["val_accuracy", "Val accuracy"],
  ["r2", "R²"],
  ["val_r2", "Val R²"],
];
// A decimal number as people type one (Number() would also take "0x1f" and "").
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** Rows typed as text: one per line, numbers separated by commas or spaces; or JSON. */
export function parseRows(text) {
  const trimmed = text.trim();
  if (!trimmed) throw new Error("Type at least one row.");
  if (trimmed.startsWith("[")) {
    let value;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      throw new Error(`Not valid JSON: ${error.message}`);
    }
    // One row given alone, [1, 2], is that row; the API checks the rest of the shape.
    return Array.isArray(value) && value.every((item) => typeof item === "number") ? [value] : value;
  }
  const rows = [];
  text.split(/\r?\n/).forEach((line, index) => {
    if (!line.trim()) return;
    const row = line.trim().split(/\s*[,;\s]\s*/).map((token) => {
      if (!NUMBER.test(token)) {
        throw new Error(`Line ${index + 1}: ${token ? `"${token}" is not a number` : "a value is missing"}.`);
      }
      return Number(token);
    });
    if (rows.length && row.length !== rows[0].length) {
      throw new Error(`Line ${index + 1} has ${row.length} values, the first row ${rows[0].length}: every row needs as many.`);
    }
    rows.push(row);
  });
  return rows;
}

function fieldError(form, name, message) {
  showFieldErrors(form, new ApiError(422, { detail: message, errors: [{ loc: ["body", name], msg: message }] }));
}

/** An error of a form's request: next to its fields (the shell announces a 401 or 403). */
function describeError(form, error) {
  if (!(error instanceof ApiError)) showNotice(error.message);
  else if (error.status !== 401 && error.status !== 403) showFieldErrors(form, error);
}

/** The outputs of a predict answer as a table: labels, probabilities per class, or values. */
function predictionTable(rows, answer) {
  const columns = [];
  if (answer.labels) {
    columns.push(["Label", (i) => String(Array.isArray(answer.labels[i]) ? answer.labels[i].join(", ") : answer.labels[i])]);
  }
  if (answer.probabilities) {
    const names = answer.classes || answer.probabilities[0].map((_, k) => `output ${k + 1}`);
    names.forEach((name, k) => columns.push([`P(${name})`, (i) => answer.probabilities[i][k].toFixed(4)]));
  } else {
    const width = answer.outputs[0].length;
    for (let k = 0; k < width; k += 1) {
      columns.push([width === 1 ? "Output" : `Output ${k + 1}`, (i) => formatNumber(answer.outputs[i][k], 6)]);
    }
  }
  return h("div", { class: "table-wrap" }, h("table", { class: "predictions" },
    h("caption", {}, `Answered by ${answer.model.name} v${answer.model.version}`),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Row"), h("th", { scope: "col" }, "Input"),
      columns.map(([label]) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, rows.map((row, i) => h("tr", {},
      h("th", { scope: "row" }, String(i + 1)),
      h("td", {}, h("code", {}, row.join(", "))),
      columns.map(([, cell]) => h("td", {}, cell(i))))))));
}

export async function render(root, [name]) {
  const path = `v1/models/${encodeURIComponent(name)}`;
  let model;
  try {
    model = await api(path);
  } catch (error) {
    if (error.status !== 404) throw error;
    root.append(h("h2", {}, "No such model"),
      h("p", {}, `${error.message}. `, h("a", { href: "#/models" }, "See the models there are"), "."));
    return;
  }
  let versions = await listAll(`${path}/versions`, { query: { limit: 200 } });

  root.append(h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Models"), " / "), h("h2", {}, name));
  if (model.description) root.append(h("p", {}, model.description));
  const versionsPanel = h("section", { class: "panel", "aria-labelledby": "model-versions" });
  const aliasesPanel = h("section", { class: "panel", "aria-labelledby": "model-aliases" });

  // --- Aliases: set or move one (PUT), delete one.
  const aliasInput = h("input", {
    name: "alias", required: true, maxlength: 100, autocomplete: "off", list: "alias-names",
    spellcheck: "false",
  });
  const aliasVersion = h("select", { name: "version", id: "alias-version" });
  const aliasNames = h("datalist", { id: "alias-names" });
  const aliasForm = h("form", { class: "alias-form", onsubmit: setAlias },
    h("h4", {}, "Set or move an alias"),
    h("div", { class: "fields" },
      field("Alias", aliasInput, "e.g. production; an alias that exists moves to the version"),
      field("Version", aliasVersion)),
    aliasNames,
    h("div", { class: "form-errors", hidden: true }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Set alias")));
  const aliasList = h("div");
  aliasesPanel.append(h("h3", { id: "model-aliases" }, "Aliases"), aliasList, aliasForm);

  async function setAlias(event) {
    event.preventDefault();
    clearFieldErrors(aliasForm);
    const alias = aliasInput.value.trim();
    const version = Number(aliasVersion.value);
    const before = model.aliases[alias];
    try {
      await api(`${path}/aliases/${encodeURIComponent(alias)}`, { method: "PUT", body: { version } });
    } catch (error) {
      describeError(aliasForm, error);
      return;
    }
    aliasInput.value = "";
    showNotice(before === undefined
      ? `Alias ${alias} now points at v${version}.`
      : `Alias ${alias} moved from v${before} to v${version}.`, "info");
    await refresh().catch((error) => describeError(aliasForm, error));
  }

  async function deleteAlias(alias) {
    try {
      await api(`${path}/aliases/${encodeURIComponent(alias)}`, { method: "DELETE" });
    } catch (error) {
      if (error.status !== 401 && error.status !== 403) showNotice(error.message);
      return;
    }
    showNotice(`Alias ${alias} deleted.`, "info");
    await refresh().catch((error) => describeError(aliasForm, error));
    aliasInput.focus();
  }

  function moveAlias(alias) {
    aliasInput.value = alias;
    aliasVersion.focus();
  }

  // --- Predict: raw rows with the latest version, a version or an alias.
  const selector = h("select", { name: "selector", id: "predict-using" });
  const rowsInput = h("textarea", { name: "inputs", id: "predict-inputs", rows: 5, spellcheck: "false" });
  const answerBox = h("div", { class: "prediction", "aria-live": "polite" });
  const predictForm = h("form", { onsubmit: predict },
    h("div", { class: "fields" }, field("Predict with", selector)),
    field("Input rows", rowsInput, "One row per line, numbers separated by commas; or JSON such as [[1, 1], [-1, 1]]."),
    h("div", { class: "form-errors", hidden: true }),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Predict")));
  const predictPanel = h("section", { class: "panel", "aria-labelledby": "model-predict" },
    h("h3", { id: "model-predict" }, "Predict"), predictForm, answerBox);

  async function predict(event) {
    event.preventDefault();
    clearFieldErrors(predictForm);
    let rows;
    try {
      rows = parseRows(rowsInput.value);
    } catch (error) {
      fieldError(predictForm, "inputs", error.message);
      return;
    }
    const body = { inputs: rows };
    const [kind, value] = selector.value.split(":");
    if (kind === "version") body.version = Number(value);
    if (kind === "alias") body.alias = value;
    let answer;
    try {
      answer = await api(`${path}/predict`, { method: "POST", body });
    } catch (error) {
      describeError(predictForm, error);
      answerBox.replaceChildren();
      return;
    }
    answerBox.replaceChildren(
      predictionTable(rows, answer),
      h("details", {}, h("summary", {}, "The request and its answer"),
        h("pre", {}, `POST ${path}/predict\n${JSON.stringify(body)}\n\n${JSON.stringify(answer, null, 2)}`)));
  }

  function drawVersions() {
    const aliasesOf = (version) => Object.fromEntries(Object.entries(model.aliases).filter(([, v]) => v === version));
    const metrics = METRICS.filter(([key]) => versions.some((v) => v.metrics && v.metrics[key] !== null && v.metrics[key] !== undefined));
    const heading = h("h3", { id: "model-versions" }, "Versions");
    if (!versions.length) {
      versionsPanel.replaceChildren(heading, h("p", {}, "This model has no versions left."));
      return;
    }
    versionsPanel.replaceChildren(heading, h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {},
        ["Version", "Created", "Source", "Network"].map((label) => h("th", { scope: "col" }, label)),
        metrics.map(([, label]) => h("th", { scope: "col" }, label)),
        h("th", { scope: "col" }, "Aliases"))),
      h("tbody", {}, versions.map((version) => h("tr", {},
        h("th", { scope: "row" }, `v${version.version}`),
        h("td", {}, formatTime(version.created_at)),
        h("td", {}, version.job_id
          ? h("a", { href: `#/jobs/${version.job_id}` }, `job ${version.job_id.slice(0, 8)}, epoch ${version.epoch}`)
          : version.source === "upload" ? "uploaded file" : "—"),
        h("td", {}, `${version.network.layers.join("-")} ${version.network.hidden_activation || ""}/${version.network.output_activation || ""}`),
        metrics.map(([key]) => h("td", {}, formatNumber(version.metrics?.[key]))),
        h("td", {}, aliasBadges(aliasesOf(version.version)))))))));
  }

  function drawAliases() {
    const names = Object.keys(model.aliases).sort();
    aliasList.replaceChildren(names.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "aliases" },
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, "Alias"), h("th", { scope: "col" }, "Version"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
          h("tbody", {}, names.map((alias) => h("tr", {},
            h("th", { scope: "row" }, alias),
            h("td", {}, `v${model.aliases[alias]}`),
            h("td", { class: "row-actions" },
              h("button", { type: "button", class: "secondary", "aria-label": `Move alias ${alias}`, onclick: () => moveAlias(alias) }, "Move"),
              h("button", { type: "button", class: "danger", "aria-label": `Delete alias ${alias}`, onclick: () => deleteAlias(alias) }, "Delete")))))))
      : h("p", { class: "muted" }, "No aliases yet: name a version (production, staging, ...) so clients can predict with it by name."));
    aliasNames.replaceChildren(...names.map((alias) => h("option", { value: alias })));
    const chosen = aliasVersion.value;
    aliasVersion.replaceChildren(...versions.map((version) => h("option", { value: String(version.version) }, `v${version.version}`)));
    if (chosen && versions.some((version) => String(version.version) === chosen)) aliasVersion.value = chosen;
  }

  function drawSelector() {
    const chosen = selector.value;
    const latest = model.latest_version;
    const aliases = Object.keys(model.aliases).sort();
    selector.replaceChildren(
      h("option", { value: "" }, latest ? `Latest version (v${latest})` : "Latest version"),
      ...(aliases.length ? [h("optgroup", { label: "Aliases" }, aliases
        .map((alias) => h("option", { value: `alias:${alias}` }, `${alias} (v${model.aliases[alias]})`)))] : []),
      h("optgroup", { label: "Versions" }, versions
        .map((version) => h("option", { value: `version:${version.version}` }, `v${version.version}`))));
    if ([...selector.options].some((option) => option.value === chosen)) selector.value = chosen;
  }

  async function refresh() {
    [model, versions] = await Promise.all([api(path), listAll(`${path}/versions`, { query: { limit: 200 } })]);
    drawVersions();
    drawAliases();
    drawSelector();
  }

  // An example to start from: a row of zeros and a row of ones, as wide as the input.
  const width = versions[0]?.network.layers[0];
  if (width) rowsInput.value = `${Array(width).fill(0).join(", ")}\n${Array(width).fill(1).join(", ")}`;
  const features = versions[0]?.feature_names;
  if (features) rowsInput.placeholder = features.join(", ");
  drawVersions();
  drawAliases();
  drawSelector();
  root.append(versionsPanel, h("div", { class: "grid" }, predictPanel, aliasesPanel));
}
