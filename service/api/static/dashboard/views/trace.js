// Trace: the notebook's single backprop step on its 2-2-1 network (POST /v1/trace), every
// intermediate value drawn on the node or edge it belongs to, and listed in a table.
import { ApiError, api } from "../api.js";
import { showNotice } from "../app.js";
import { clearFieldErrors, field, formatNumber, h, showFieldErrors, svg } from "../dom.js";

// The notebook's start: np.random.seed(0), then b1 = randn(2, 1), W1 = randn(2, 2),
// b2 = randn(1, 1), W2 = randn(1, 2) (examples/notebook-trace.json holds the same values);
// sample x = [1, 1] with target 1, learning rate 0.01, the dirty update.
const NOTEBOOK = {
  input: [1, 1],
  target: [1],
  learning_rate: 0.01,
  update_rule: "dirty",
  hidden_activation: "relu",
  weights1: [[0.9787379841057392, 2.240893199201458], [1.8675579901499675, -0.977277879876411]],
  bias1: [1.764052345967664, 0.4001572083672233],
  weights2: [[-0.1513572082976979, -0.10321885179355784]],
  bias2: [0.9500884175255894],
};
const HIDDEN_ACTIVATIONS = ["relu", "leaky_relu", "tanh", "sigmoid", "identity"];
const SUB = ["₁", "₂"];

/** The notebook's way of printing: 8 decimals, vectors and matrices in brackets. */
function fixed(value) {
  if (Array.isArray(value)) return `[${value.map(fixed).join(", ")}]`;
  return value.toFixed(8);
}

// Short enough for the diagram; the table has all 8 decimals.
const short = (value) => formatNumber(value, 6).replace("-", "−");

function numberInput(name, value, label) {
  return field(label, h("input", { type: "number", step: "any", name, value: String(value), required: true, inputmode: "decimal" }));
}

/** The form's fields as a POST /v1/trace body. */
function traceBody(form) {
  const value = (name) => Number(form.elements[name].value);
  const matrix = (layer, rows, columns) => Array.from({ length: rows }, (_, j) =>
    Array.from({ length: columns }, (_, i) => value(`parameters.layers.${layer}.weights.${j}.${i}`)));
  const vector = (layer, length) => Array.from({ length }, (_, j) => value(`parameters.layers.${layer}.bias.${j}`));
  return {
    network: { layers: [2, 2, 1], hidden_activation: form.elements["network.hidden_activation"].value, output_activation: "identity" },
    parameters: { layers: [
      { weights: matrix(0, 2, 2), bias: vector(0, 2) },
      { weights: matrix(1, 1, 2), bias: vector(1, 1) },
    ] },
    input: [value("input.0"), value("input.1")],
    target: [value("target.0")],
    loss: "mse",
    learning_rate: value("learning_rate"),
    update_rule: form.elements.update_rule.value,
  };
}

function fillForm(form, start) {
  const set = (name, value) => { form.elements[name].value = String(value); };
  start.input.forEach((value, i) => set(`input.${i}`, value));
  set("target.0", start.target[0]);
  set("learning_rate", start.learning_rate);
  set("update_rule", start.update_rule);
  set("network.hidden_activation", start.hidden_activation);
  [start.weights1, start.weights2].forEach((weights, layer) => weights.forEach((row, j) =>
    row.forEach((value, i) => set(`parameters.layers.${layer}.weights.${j}.${i}`, value))));
  [start.bias1, start.bias2].forEach((bias, layer) => bias.forEach((value, j) => set(`parameters.layers.${layer}.bias.${j}`, value)));
}

function buildForm() {
  const weightFields = (layer, rows, from, to) => rows.flatMap((j) => [
    ...from.map((source, i) => numberInput(`parameters.layers.${layer}.weights.${j}.${i}`, 0, `Weight ${source} → ${to[j]}`)),
    numberInput(`parameters.layers.${layer}.bias.${j}`, 0, `Bias of ${to[j]}`),
  ]);
  const select = (name, choices) => h("select", { name }, choices.map((choice) => h("option", { value: choice }, choice)));
  return h("form", { class: "trace-form" },
    h("fieldset", {}, h("legend", {}, "Sample"), h("div", { class: "fields compact" },
      numberInput("input.0", 0, "Input x1"), numberInput("input.1", 0, "Input x2"), numberInput("target.0", 0, "Target t"))),
    h("fieldset", {}, h("legend", {}, "Step"), h("div", { class: "fields compact" },
      numberInput("learning_rate", 0, "Learning rate η"),
      field("Update rule", select("update_rule", ["dirty", "standard"]), "dirty: the hidden delta uses the updated W²"),
      field("Hidden activation", select("network.hidden_activation", HIDDEN_ACTIVATIONS)))),
    h("fieldset", {}, h("legend", {}, "Layer 1: inputs → hidden"), h("div", { class: "fields compact" },
      weightFields(0, [0, 1], ["x1", "x2"], ["h1", "h2"]))),
    h("fieldset", {}, h("legend", {}, "Layer 2: hidden → output"), h("div", { class: "fields compact" },
      weightFields(1, [0], ["h1", "h2"], ["y"]))),
    h("div", { class: "form-errors", hidden: true }),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Run step"),
      h("button", { type: "button", class: "secondary", dataset: { action: "next" }, disabled: true }, "Step again from the updated weights"),
      h("button", { type: "button", class: "secondary", dataset: { action: "reset" } }, "Reset to the notebook's values")));
}

/** Lines of text centred on (x, y), the first line at y. */
function lines(x, y, texts, className = "") {
  return svg("text", { x, y, class: className, "text-anchor": "middle" },
    texts.map((text, index) => svg("tspan", { x, dy: index ? "1.2em" : "0" }, text)));
}

function edge(from, to, weight) {
  return svg("line", {
    x1: from[0], y1: from[1], x2: to[0], y2: to[1],
    class: weight >= 0 ? "edge positive" : "edge negative",
    "stroke-width": String(1.5 + Math.min(4, Math.abs(weight) * 1.5)),
  });
}

function node(center, radius, texts, className) {
  return svg("g", { class: `node ${className}` },
    svg("circle", { cx: center[0], cy: center[1], r: radius }),
    lines(center[0], center[1] - 18 * ((texts.length - 1) / 2) + 5, texts));
}

/** The 2-2-1 network with the step's values on its nodes and edges. */
function diagram(body, step) {
  const X = [[70, 140], [70, 400]];
  const H = [[430, 140], [430, 400]];
  const Y = [770, 270];
  const [w1, w2] = body.parameters.layers;
  const [hidden, output] = step.forward;
  const [back1, back2] = step.backward;
  const [new1, new2] = step.updated.layers;
  const parts = [svg("title", { id: "trace-title" }, "One backprop step on the 2-2-1 network"),
    svg("desc", { id: "trace-desc" }, "Weights on the edges with their gradients and updated values; each neuron's aggregate, activation, delta and bias. The table below lists the same numbers.")];
  // Edges first, so that the nodes and labels are drawn over them.
  for (let j = 0; j < 2; j += 1) for (let i = 0; i < 2; i += 1) parts.push(edge(X[i], H[j], w1.weights[j][i]));
  for (let j = 0; j < 2; j += 1) parts.push(edge(H[j], Y, w2.weights[0][j]));
  const edgeLabel = (from, to, at, name, weight, gradient, updated) => {
    const x = from[0] + (to[0] - from[0]) * at;
    const y = from[1] + (to[1] - from[1]) * at;
    return lines(x, y - 12, [`${name} = ${short(weight)}`, `∂L/∂w = ${short(gradient)}`, `w′ = ${short(updated)}`], "edge-label");
  };
  // Where each layer-1 label sits along its edge: the crossing ones apart from each other.
  const along = [[0.5, 0.7], [0.7, 0.5]];
  const offset = [[-30, 0], [0, 40]];
  for (let j = 0; j < 2; j += 1) {
    for (let i = 0; i < 2; i += 1) {
      const label = edgeLabel(X[i], H[j], along[j][i], `w¹${SUB[j]}${SUB[i]}`, w1.weights[j][i], back1.weight_gradient[j][i], new1.weights[j][i]);
      label.setAttribute("transform", `translate(0 ${offset[j][i]})`);
      parts.push(label);
    }
  }
  for (let j = 0; j < 2; j += 1) {
    const label = edgeLabel(H[j], Y, 0.4, `w²${SUB[0]}${SUB[j]}`, w2.weights[0][j], back2.weight_gradient[0][j], new2.weights[0][j]);
    label.setAttribute("transform", `translate(0 ${j ? 40 : -16})`);
    parts.push(label);
  }
  for (let i = 0; i < 2; i += 1) parts.push(node(X[i], 34, [`x${SUB[i]}`, short(body.input[i])], "input-node"));
  for (let j = 0; j < 2; j += 1) {
    parts.push(node(H[j], 60, [`h${SUB[j]}`, `a = ${short(hidden.aggregate[j])}`, `h = ${short(hidden.activation[j])}`], "hidden-node"));
    const about = [`δ = ∂L/∂b = ${short(back1.delta[j])}`, `b = ${short(w1.bias[j])} → ${short(new1.bias[j])}`];
    parts.push(lines(H[j][0], j ? H[j][1] + 84 : H[j][1] - 98, about, "node-label"));
  }
  parts.push(node(Y, 64, ["ŷ", `a = ${short(output.aggregate[0])}`, `ŷ = ${short(output.activation[0])}`], "output-node"));
  parts.push(lines(Y[0], Y[1] - 102, [`δ = ∂L/∂b = ${short(back2.delta[0])}`, `b = ${short(w2.bias[0])} → ${short(new2.bias[0])}`], "node-label"));
  parts.push(lines(Y[0], Y[1] + 92, [`target t = ${short(body.target[0])}`, `loss ½(ŷ − t)² = ${short(step.loss)}`, `∂L/∂ŷ = ŷ − t = ${short(step.output_error[0])}`], "node-label loss"));
  return svg("svg", { viewBox: "0 0 900 560", role: "img", "aria-labelledby": "trace-title trace-desc", class: "trace-svg" }, parts);
}

/** Every value of the step as rows of [quantity, formula, value]. */
function valueRows(body, step) {
  const activation = body.network.hidden_activation;
  const [hidden, output] = step.forward;
  const [back1, back2] = step.backward;
  const [new1, new2] = step.updated.layers;
  const through = body.update_rule === "dirty" ? "W²′" : "W²";
  return [
    ["Input", "x", body.input],
    ["Target", "t", body.target],
    ["Hidden aggregate", "a¹ = W¹x + b¹", hidden.aggregate],
    ["Hidden activation", `h¹ = ${activation}(a¹)`, hidden.activation],
    ["Output aggregate", "a² = W²h¹ + b²", output.aggregate],
    ["Output", "ŷ = a² (identity)", step.output],
    ["Loss", "L = ½ Σ (ŷ − t)²", step.loss],
    ["Output error", "∂L/∂ŷ = ŷ − t", step.output_error],
    ["Output delta", "δ² = ∂L/∂a²", back2.delta],
    ["Output weight gradient", "∂L/∂W² = δ² h¹ᵀ", back2.weight_gradient],
    ["Output bias gradient", "∂L/∂b² = δ²", back2.bias_gradient],
    ["Updated output weights", "W²′ = W² − η ∂L/∂W²", new2.weights],
    ["Updated output bias", "b²′ = b² − η ∂L/∂b²", new2.bias],
    ["Hidden delta", `δ¹ = (${through}ᵀ δ²) ⊙ ${activation}′(a¹)`, back1.delta],
    ["Hidden weight gradient", "∂L/∂W¹ = δ¹ xᵀ", back1.weight_gradient],
    ["Hidden bias gradient", "∂L/∂b¹ = δ¹", back1.bias_gradient],
    ["Updated hidden weights", "W¹′ = W¹ − η ∂L/∂W¹", new1.weights],
    ["Updated hidden bias", "b¹′ = b¹ − η ∂L/∂b¹", new1.bias],
  ];
}

function valueTable(body, step) {
  const rule = body.update_rule === "dirty"
    ? "Dirty update, as in the notebook: the hidden delta goes back through the output weights already updated (W²′)."
    : "Standard update: the hidden delta goes back through the output weights before their update (W²).";
  return h("div", { class: "table-wrap" }, h("p", { class: "muted" }, rule), h("table", { class: "trace-values" },
    h("caption", {}, "Every value of the step, in the notebook's order"),
    h("thead", {}, h("tr", {}, ["Quantity", "Formula", "Value"].map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, valueRows(body, step).map(([quantity, formula, value]) => h("tr", {},
      h("th", { scope: "row" }, quantity), h("td", {}, formula), h("td", {}, h("code", {}, fixed(value))))))));
}

export async function render(root) {
  const form = buildForm();
  const figure = h("div", { class: "trace-figure", tabindex: "0", role: "region", "aria-label": "Network diagram" });
  const table = h("div");
  root.append(
    h("h2", {}, "Trace one backprop step"),
    h("p", { class: "lede" },
      "The notebook's first training step on its 2-2-1 network (ReLU hidden layer, identity output, half squared error, plain SGD), computed by ",
      h("code", {}, "POST v1/trace"), ". Change any value and run the step again."),
    h("section", { class: "panel", "aria-labelledby": "trace-inputs" }, h("h3", { id: "trace-inputs" }, "Start values"), form),
    h("section", { class: "panel", "aria-labelledby": "trace-network" },
      h("h3", { id: "trace-network" }, "The step on the network"),
      h("p", { class: "muted" }, "Each edge: its weight, the loss's gradient for it and the weight after the update (w′). Each neuron: its aggregate a, activation h and delta δ; blue edges are positive weights, red negative."),
      figure),
    h("section", { class: "panel", "aria-labelledby": "trace-table" }, h("h3", { id: "trace-table" }, "All values"), table));

  const next = form.querySelector("[data-action=next]");
  let updated = null;

  async function run() {
    clearFieldErrors(form);
    const body = traceBody(form);
    let step;
    try {
      step = await api("v1/trace", { method: "POST", body });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status !== 401 && error.status !== 403) showFieldErrors(form, error);
      return;
    }
    figure.replaceChildren(diagram(body, step));
    table.replaceChildren(valueTable(body, step));
    updated = step.updated.layers;
    next.disabled = false;
  }
  const runReporting = () => run().catch((error) => showNotice(error.message));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    runReporting();
  });
  next.addEventListener("click", () => {
    const [layer1, layer2] = updated;
    fillForm(form, { ...flatStart(traceBody(form)), weights1: layer1.weights, bias1: layer1.bias, weights2: layer2.weights, bias2: layer2.bias });
    runReporting();
  });
  form.querySelector("[data-action=reset]").addEventListener("click", () => {
    fillForm(form, NOTEBOOK);
    runReporting();
  });

  fillForm(form, NOTEBOOK);
  await run();
}

/** A request body's sample and step settings in fillForm's shape. */
function flatStart(body) {
  return {
    input: body.input,
    target: body.target,
    learning_rate: body.learning_rate,
    update_rule: body.update_rule,
    hidden_activation: body.network.hidden_activation,
  };
}
