// The "New job" form: a generated 2-D dataset (POST /v1/datasets first) or a stored one,
// the network and the training spec, posted as POST /v1/jobs. Field names are the body's
// paths ("training.learning_rate"), so the API's 422 errors land next to their fields.
import { api, ApiError, listAll } from "./api.js";
import { clearFieldErrors, field, h, showFieldErrors } from "./dom.js";
import { choices, property, schemas } from "./schema.js";

// Defaults for a first run: two moons that a small tanh network separates visibly within
// a few seconds, with snapshots often enough for the epoch slider to show it happen.
const START = {
  generator: { kind: "moons", n_samples: 400, noise: 0.2, seed: 0, n_classes: 2 },
  network: { layers: "2, 8, 8, 1", hidden_activation: "tanh", init: "auto" },
  training: {
    optimizer: "adam",
    learning_rate: 0.003,
    batch_size: 4,
    epochs: 500,
    seed: 0,
    update_rule: "standard",
    validation_split: 0.2,
  },
};
// About this many snapshots when "checkpoint every" is left empty.
const SNAPSHOTS_WANTED = 50;
// Generated datasets of this page, by their generator spec: submitting the same data again
// (after fixing a field, say) reuses the dataset instead of storing a copy.
const generated = new Map();

function options(values, selected, labels = {}) {
  return values.map((value) =>
    h("option", { value, selected: String(value) === String(selected) }, labels[value] ?? (value === "" ? "auto" : value)),
  );
}

// A control whose name is its path in the request body; `data-kind` says how it is read.
function control(tag, name, kind, attributes = {}, ...children) {
  return h(tag, { name, dataset: { kind }, ...attributes }, ...children);
}

function numberInput(name, value, { integer = false, step, empty, placeholder } = {}) {
  const input = control("input", name, integer ? "integer" : "number", {
    type: "number",
    step: step ?? (integer ? "1" : "any"),
    inputmode: integer ? "numeric" : "decimal",
    value: value ?? "",
    placeholder,
  });
  if (empty) input.dataset.empty = empty;
  return input;
}

function selectInput(name, values, selected, labels) {
  return control("select", name, "choice", {}, options(values, selected, labels));
}

/** The body's parts from the form: `{generator, job}`, and the errors of unreadable fields. */
function readForm(form) {
  const parts = { generator: {}, job: { network: {}, training: {}, preprocessing: {} } };
  const errors = [];
  for (const input of form.querySelectorAll("[data-kind]")) {
    if (input.disabled || input.closest("[hidden]")) continue;
    const path = input.name.split(".");
    const part = path[0] === "generator" ? "generator" : "job";
    const keys = part === "generator" ? path.slice(1) : path;
    let value;
    switch (input.dataset.kind) {
      case "number":
      case "integer":
        if (input.validity.badInput) {
          errors.push({ loc: ["body", ...path], msg: "Enter a number" });
          continue;
        }
        if (input.value === "") {
          if (input.dataset.empty === "null") value = null;
          else continue;
        } else {
          value = Number(input.value);
        }
        break;
      case "layers":
        // Numbers as numbers; anything else is sent as typed, for the API to name.
        value = input.value
          .split(/[\s,]+/)
          .filter(Boolean)
          .map((token) => (/^-?\d+(\.\d+)?$/.test(token) ? Number(token) : token));
        break;
      case "bool":
        value = input.checked;
        break;
      default:
        value = input.value.trim();
        if (value === "") continue;
    }
    let target = parts[part];
    for (const key of keys.slice(0, -1)) target = target[key] ??= {};
    target[keys.at(-1)] = value;
  }
  return { ...parts, errors };
}

// The generators' shapes: `sine` is a curve (one input, a regression target); the others
// are points of the plane labelled by class.
function generatedWidths(kind, nClasses) {
  if (kind === "sine") return { inputs: 1, outputs: 1 };
  return { inputs: 2, outputs: nClasses > 2 ? nClasses : 1 };
}

/**
 * Builds the form into `root`. On success it goes to the new job's page; `onCreated(job)`
 * is told first.
 */
export async function jobForm(root, { onCreated = () => {} } = {}) {
  const all = await schemas();
  const pick = (schema, name) => choices(all, schema, name);
  const apiDefault = (schema, name) => property(all, schema, name).default;
  const generatorKinds = pick("GeneratorSpec", "kind");

  const source = h("fieldset", { class: "source" },
    h("legend", {}, "Data source"),
    h("label", { class: "choice" },
      h("input", { type: "radio", name: "source", value: "generate", checked: true }), " Generate a dataset"),
    h("label", { class: "choice" },
      h("input", { type: "radio", name: "source", value: "stored" }), " Use a stored dataset"),
  );

  const kind = selectInput("generator.kind", generatorKinds, START.generator.kind, { sine: "sine (1 input, regression)" });
  const nClasses = numberInput("generator.n_classes", START.generator.n_classes, { integer: true });
  const generatorFields = h("div", { class: "fields", id: "generator-fields" },
    field("Kind", kind),
    field("Samples", numberInput("generator.n_samples", START.generator.n_samples, { integer: true })),
    field("Noise", numberInput("generator.noise", START.generator.noise, { step: "0.05" })),
    field("Classes", nClasses, "spiral and gaussian only"),
    field("Data seed", numberInput("generator.seed", START.generator.seed, { integer: true })),
  );

  const datasetSelect = control("select", "dataset_id", "choice", {}, h("option", { value: "" }, "Loading…"));
  const storedFields = h("div", { class: "fields", id: "stored-fields", hidden: true },
    field("Dataset", datasetSelect));
  let datasets = [];

  const modelName = control("input", "model_name", "text", {
    type: "text", value: START.generator.kind, autocomplete: "off", spellcheck: "false",
  });
  let modelNameEdited = false;
  modelName.addEventListener("input", () => { modelNameEdited = true; });

  const layers = control("input", "network.layers", "layers", {
    type: "text", value: START.network.layers, autocomplete: "off", spellcheck: "false", inputmode: "numeric",
  });
  const layersField = field("Layers", layers, " ");
  const layersHint = layersField.querySelector("small");

  const outputActivations = ["", ...pick("NetworkSpecIn", "output_activation")];
  const losses = ["", ...pick("TrainingSpecIn", "loss")];
  const autoLabel = { "": "auto (from the data)" };

  const more = h("details", { class: "more" },
    h("summary", {}, "More options"),
    h("div", { class: "fields" },
      field("Loss", selectInput("training.loss", losses, "", autoLabel)),
      field("Momentum", numberInput("training.momentum", apiDefault("TrainingSpecIn", "momentum"))),
      field("Adam β1", numberInput("training.beta1", apiDefault("TrainingSpecIn", "beta1"))),
      field("Adam β2", numberInput("training.beta2", apiDefault("TrainingSpecIn", "beta2"))),
      field("Adam ε", numberInput("training.epsilon", apiDefault("TrainingSpecIn", "epsilon"))),
      field("Learning-rate schedule", selectInput("training.lr_schedule", pick("TrainingSpecIn", "lr_schedule"),
        apiDefault("TrainingSpecIn", "lr_schedule"))),
      field("Decay factor", numberInput("training.lr_decay", apiDefault("TrainingSpecIn", "lr_decay"))),
      field("Decay every (epochs)", numberInput("training.lr_decay_every", apiDefault("TrainingSpecIn", "lr_decay_every"),
        { integer: true })),
      field("L2 penalty", numberInput("training.l2", apiDefault("TrainingSpecIn", "l2"))),
      field("Early-stopping patience", numberInput("training.early_stopping_patience", "", { integer: true, placeholder: "off" }),
        "epochs without improvement; empty: off"),
      field("Early-stopping min delta", numberInput("training.early_stopping_min_delta",
        apiDefault("TrainingSpecIn", "early_stopping_min_delta"))),
      field("Number type", selectInput("training.dtype", pick("TrainingSpecIn", "dtype"), apiDefault("TrainingSpecIn", "dtype"))),
      field("Engine", selectInput("training.engine", pick("TrainingSpecIn", "engine"), apiDefault("TrainingSpecIn", "engine")),
        "compiled: small networks and batches, float64"),
      field("Scale inputs", selectInput("preprocessing.inputs", pick("PreprocessingSpecIn", "inputs"),
        apiDefault("PreprocessingSpecIn", "inputs"))),
      field("Scale targets", selectInput("preprocessing.targets", pick("PreprocessingSpecIn", "targets"),
        apiDefault("PreprocessingSpecIn", "targets"))),
      field("Snapshot every (epochs)", numberInput("checkpoint_every", "", { integer: true, placeholder: "auto" }),
        `empty: about ${SNAPSHOTS_WANTED} snapshots`),
      field("Description", control("input", "description", "text", { type: "text", autocomplete: "off" })),
    ),
    h("label", { class: "choice" },
      control("input", "training.shuffle", "bool", { type: "checkbox", checked: apiDefault("TrainingSpecIn", "shuffle") }),
      " Shuffle every epoch"),
  );

  const submit = h("button", { type: "submit" }, "Start training");
  const status = h("span", { class: "muted", role: "status" });
  const form = h("form", { class: "job-form", novalidate: true, "aria-labelledby": "new-job-title" },
    h("div", { class: "form-errors", role: "alert", tabindex: "-1", hidden: true }),
    h("div", { class: "form-parts" },
    h("fieldset", {},
      h("legend", {}, "Data"),
      source,
      generatorFields,
      storedFields,
    ),
    h("fieldset", {},
      h("legend", {}, "Network"),
      h("div", { class: "fields" },
        field("Model name", modelName, "registers the trained weights; empty: none"),
        layersField,
        field("Hidden activation", selectInput("network.hidden_activation", pick("NetworkSpecIn", "hidden_activation"),
          START.network.hidden_activation)),
        field("Output activation", selectInput("network.output_activation", outputActivations, "", autoLabel)),
        field("Initialization", selectInput("network.init", pick("NetworkSpecIn", "init"), START.network.init)),
      ),
    ),
    h("fieldset", {},
      h("legend", {}, "Training"),
      h("div", { class: "fields" },
        field("Optimizer", selectInput("training.optimizer", pick("TrainingSpecIn", "optimizer"), START.training.optimizer)),
        field("Learning rate", numberInput("training.learning_rate", START.training.learning_rate, { step: "0.001" })),
        field("Batch size", numberInput("training.batch_size", START.training.batch_size, { integer: true, empty: "null" }),
          "empty: the whole training set"),
        field("Epochs", numberInput("training.epochs", START.training.epochs, { integer: true })),
        field("Validation split", numberInput("training.validation_split", START.training.validation_split, { step: "0.05" }),
          "share of rows held out"),
        field("Seed", numberInput("training.seed", START.training.seed, { integer: true })),
        field("Update rule", selectInput("training.update_rule", pick("TrainingSpecIn", "update_rule"),
          START.training.update_rule), "dirty: the notebook's in-place updates"),
      ),
    ),
    ),
    more,
    h("div", { class: "actions" }, submit, status),
  );
  root.append(form);

  const usesStored = () => form.elements.source.value === "stored";

  // The layers' first and last widths follow the data chosen: what it needs is shown, and
  // set when the data changes (a width typed afterwards is the user's).
  function dataWidths() {
    if (!usesStored()) {
      return generatedWidths(kind.value, Number(nClasses.value) || 2);
    }
    const dataset = datasets.find((item) => item.id === datasetSelect.value);
    return dataset ? { inputs: dataset.n_features, outputs: dataset.n_targets } : null;
  }

  function fitLayers() {
    const widths = dataWidths();
    if (!widths) {
      layersHint.textContent = "widths from input to output";
      return;
    }
    layersHint.textContent = "widths from input to output; " +
      `this data: ${widths.inputs} in, ${widths.outputs} out`;
    const tokens = layers.value.split(/[\s,]+/).filter(Boolean);
    if (tokens.length >= 2) {
      tokens[0] = String(widths.inputs);
      tokens[tokens.length - 1] = String(widths.outputs);
      layers.value = tokens.join(", ");
    }
  }

  function showSource() {
    const stored = usesStored();
    generatorFields.hidden = stored;
    storedFields.hidden = !stored;
    if (stored && datasets.length === 0) loadDatasets();
    fitLayers();
  }

  function showKind() {
    nClasses.disabled = !["spiral", "gaussian"].includes(kind.value);
    if (!modelNameEdited) modelName.value = kind.value;
    fitLayers();
  }

  async function loadDatasets() {
    try {
      datasets = await listAll("v1/datasets", { query: { limit: 200 }, max: 1000 });
    } catch (error) {
      datasetSelect.replaceChildren(h("option", { value: "" }, "Could not load datasets"));
      showFieldErrors(form, new ApiError(error.status || 0, { detail: error.message }));
      return;
    }
    datasetSelect.replaceChildren(
      ...(datasets.length
        ? datasets.map((item) =>
            h("option", { value: item.id },
              `${item.name} (${item.n_samples} rows, ${item.n_features} inputs, ` +
                `${item.task === "classification" ? `${item.classes.length} classes` : "regression"})`))
        : [h("option", { value: "" }, "No datasets yet")]),
    );
    fitLayers();
  }

  for (const radio of source.querySelectorAll("input[type=radio]")) radio.addEventListener("change", showSource);
  kind.addEventListener("change", showKind);
  nClasses.addEventListener("change", fitLayers);
  datasetSelect.addEventListener("change", fitLayers);
  showKind();

  async function datasetFor(generator) {
    const key = JSON.stringify(generator);
    if (generated.has(key)) return generated.get(key);
    const name = `${generator.kind} ${generator.n_samples ?? ""}`.trim();
    status.textContent = "Creating the dataset…";
    const dataset = await api("v1/datasets", { method: "POST", body: { name, generator } });
    generated.set(key, dataset.id);
    return dataset.id;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    const { generator, job, errors } = readForm(form);
    if (errors.length) {
      reportErrors(new ApiError(422, { detail: "Some fields are not numbers.", errors }));
      return;
    }
    if (job.checkpoint_every === undefined && job.training.epochs > 0) {
      job.checkpoint_every = Math.max(1, Math.round(job.training.epochs / SNAPSHOTS_WANTED));
    }
    submit.disabled = true;
    let generatorKey = null;
    try {
      if (!usesStored()) {
        generatorKey = JSON.stringify(generator);
        job.dataset_id = await datasetFor(generator);
      }
      status.textContent = "Submitting the job…";
      const created = await api("v1/jobs", { method: "POST", body: job });
      status.textContent = "";
      onCreated(created);
      location.hash = `#/jobs/${created.id}`;
    } catch (error) {
      status.textContent = "";
      // A generated dataset deleted since it was made here: the next submit makes it again.
      if (error.status === 404 && generatorKey) generated.delete(generatorKey);
      reportErrors(error instanceof ApiError ? error : new ApiError(0, { detail: error.message }));
    } finally {
      submit.disabled = false;
    }
  });

  function reportErrors(error) {
    showFieldErrors(form, error);
    // An error inside the collapsed options opens them; focus goes to the first field named.
    const first = form.querySelector(".field.invalid");
    if (first && more.contains(first)) more.open = true;
    (first?.querySelector("input, select, textarea") || form.querySelector(".form-errors"))?.focus?.();
  }

  return form;
}
