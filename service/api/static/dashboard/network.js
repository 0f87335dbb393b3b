// The network drawn as SVG: a column of nodes per layer, an edge per weight whose width
// follows |weight| and whose colour its sign (blue positive, orange negative, as the
// decision boundary's classes), nodes tinted by their bias.
import { formatNumber, svg } from "./dom.js";

const POSITIVE = "#0877bd";
const NEGATIVE = "#f59322";
// Wider layers show their first nodes only: thousands of edges say nothing at this size.
const MAX_NODES = 16;
const WIDTH = 640;
const ROW = 26;

/**
 * Draws the network of `widths` (every layer's width) with `layers` ([{weights, bias}] of
 * GET /v1/jobs/{id}/snapshots/{epoch}; weights (n_out, n_in)) into `container`. `scale` is
 * the |weight| drawn at full width (larger ones are capped), so pictures of one job at
 * different epochs compare; `labels` names each layer's column.
 */
export function drawNetwork(container, widths, layers, { scale, labels = [], epoch } = {}) {
  const shown = widths.map((width) => Math.min(width, MAX_NODES));
  const tallest = Math.max(...shown);
  const height = tallest * ROW + 56;
  const margin = 40;
  const column = (index) => margin + (index * (WIDTH - 2 * margin)) / Math.max(1, widths.length - 1);
  const row = (count, index) => 18 + (height - 56) / 2 - ((count - 1) * ROW) / 2 + index * ROW + ROW / 2;
  const top = scale || largestWeight(layers);

  const edges = svg("g", { class: "edges" });
  layers.forEach((layer, l) => {
    for (let out = 0; out < shown[l + 1]; out += 1) {
      for (let input = 0; input < shown[l]; input += 1) {
        const weight = layer.weights[out][input];
        const strength = Math.min(1, Math.abs(weight) / top);
        edges.append(svg("line", {
          x1: column(l), y1: row(shown[l], input), x2: column(l + 1), y2: row(shown[l + 1], out),
          stroke: weight >= 0 ? POSITIVE : NEGATIVE,
          "stroke-width": (0.4 + 5 * strength).toFixed(2),
          "stroke-opacity": (0.25 + 0.75 * strength).toFixed(2),
        }, svg("title", {}, `layer ${l + 1}, node ${input + 1} → ${out + 1}: ${formatNumber(weight)}`)));
      }
    }
  });

  const nodes = svg("g", { class: "nodes" });
  shown.forEach((count, l) => {
    const bias = l === 0 ? null : layers[l - 1].bias;
    const biasTop = bias ? bias.reduce((largest, b) => Math.max(largest, Math.abs(b)), 1e-9) : 1;
    for (let index = 0; index < count; index += 1) {
      const b = bias ? bias[index] : 0;
      const fill = bias ? (b >= 0 ? POSITIVE : NEGATIVE) : "#ffffff";
      nodes.append(svg("circle", {
        cx: column(l), cy: row(count, index), r: 8,
        fill, "fill-opacity": bias ? (0.15 + 0.85 * Math.abs(b) / biasTop).toFixed(2) : 1,
        stroke: "#1d232a", "stroke-width": 1,
      }, svg("title", {}, bias ? `layer ${l}, node ${index + 1}: bias ${formatNumber(b)}` : `input ${index + 1}`)));
    }
    const more = widths[l] - count;
    const caption = labels[l] || `${widths[l]}`;
    nodes.append(svg("text", { x: column(l), y: height - 22, "text-anchor": "middle", class: "layer-label" },
      more > 0 ? `${caption} (${count} of ${widths[l]} shown)` : caption));
  });

  const description = `Network ${widths.join("-")}${epoch !== undefined ? ` at epoch ${epoch}` : ""}: ` +
    "edge width shows the size of each weight, blue positive and orange negative.";
  const picture = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": description, class: "network",
    "data-epoch": epoch ?? "",
  }, edges, nodes);
  container.replaceChildren(picture);
  return picture;
}

/** The largest |weight| among `layers`: the full width of a drawing's edges. */
export function largestWeight(layers) {
  let largest = 1e-9;
  for (const layer of layers) for (const row of layer.weights) for (const weight of row) {
    largest = Math.max(largest, Math.abs(weight));
  }
  return largest;
}
