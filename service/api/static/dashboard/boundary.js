// A 2-input network's predictions over the plane as a heatmap (from the grid API's answer)
// with the dataset's points on top, drawn on a canvas.

// Two classes as TensorFlow Playground colours them; more classes take the rest in turn.
const CLASS_COLORS = ["#f59322", "#0877bd", "#1a7f37", "#8250df", "#cf222e", "#bf8700", "#0a7ea4", "#6e7781"];
const LOW = [245, 147, 34];
const HIGH = [8, 119, 189];
const WHITE = [255, 255, 255];

export function classColor(index) {
  return CLASS_COLORS[index % CLASS_COLORS.length];
}

function rgb(hex) {
  const value = parseInt(hex.slice(1), 16);
  return [(value >> 16) & 255, (value >> 8) & 255, value & 255];
}

function mix(a, b, t) {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** A value in [0, 1] on the diverging scale: orange, white in the middle, blue. */
function diverging(t) {
  const clamped = Math.min(1, Math.max(0, t));
  return clamped < 0.5 ? mix(LOW, WHITE, clamped * 2) : mix(WHITE, HIGH, (clamped - 0.5) * 2);
}

/**
 * The colour of one grid cell: for classes, their colours mixed by probability and faded
 * toward white where the network is unsure; for a regression, its first output on the
 * diverging scale over [low, high].
 */
function cellColor(probabilities, outputs, scale) {
  if (probabilities) {
    const k = probabilities.length;
    let color = [0, 0, 0];
    let top = 0;
    probabilities.forEach((p, index) => {
      const c = scale.classRgb[index];
      color = [color[0] + c[0] * p, color[1] + c[1] * p, color[2] + c[2] * p];
      top = Math.max(top, p);
    });
    const confidence = k > 1 ? (top - 1 / k) / (1 - 1 / k) : top;
    return mix(WHITE, color, 0.25 + 0.6 * confidence);
  }
  return diverging((outputs[0] - scale.low) / (scale.high - scale.low || 1));
}

/** Per-class probabilities of a cell; a single sigmoid output is P(second class). */
function cellProbabilities(grid, i, j) {
  const given = grid.probabilities?.[i]?.[j];
  if (given) return given.length === 1 ? [1 - given[0], given[0]] : given;
  if (grid.classes && grid.outputs[i][j].length === 1) {
    const p = grid.outputs[i][j][0];
    return [1 - p, p];
  }
  return null;
}

/**
 * Draws `grid` (the answer of POST /v1/jobs/{id}/grid) on `canvas`, then `points`
 * ([{x, y, label, target}]) over it. `classes` orders the labels' colours; for regression
 * `targetRange` ([low, high]) fixes the colour scale across epochs.
 */
export function drawBoundary(canvas, grid, points, { classes = null, targetRange = null } = {}) {
  const n = grid.x.length;
  const m = grid.y.length;
  const dx = n > 1 ? (grid.x[n - 1] - grid.x[0]) / (n - 1) : 1;
  const dy = m > 1 ? (grid.y[m - 1] - grid.y[0]) / (m - 1) : 1;
  // Each value is the centre of its cell: the picture spans half a cell beyond the ends.
  const xMin = grid.x[0] - dx / 2;
  const xMax = grid.x[n - 1] + dx / 2;
  const yMin = grid.y[0] - dy / 2;
  const yMax = grid.y[m - 1] + dy / 2;

  const cssWidth = canvas.clientWidth || 360;
  const aspect = Math.min(1.5, Math.max(0.6, (yMax - yMin) / (xMax - xMin)));
  const cssHeight = Math.round(cssWidth * aspect);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssWidth * ratio);
  canvas.height = Math.round(cssHeight * ratio);
  canvas.style.height = `${cssHeight}px`;
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);

  let low = targetRange ? targetRange[0] : Infinity;
  let high = targetRange ? targetRange[1] : -Infinity;
  if (!targetRange) {
    for (const row of grid.outputs) for (const cell of row) {
      low = Math.min(low, cell[0]);
      high = Math.max(high, cell[0]);
    }
  }
  const scale = {
    low,
    high,
    classRgb: (grid.classes || classes || []).map((_, index) => rgb(classColor(index))),
  };

  // One pixel per cell, scaled up smoothly: the image's row 0 is the top (the largest y).
  const image = new ImageData(n, m);
  for (let i = 0; i < m; i += 1) {
    for (let j = 0; j < n; j += 1) {
      const color = cellColor(cellProbabilities(grid, i, j), grid.outputs[i][j], scale);
      const offset = ((m - 1 - i) * n + j) * 4;
      image.data[offset] = color[0];
      image.data[offset + 1] = color[1];
      image.data[offset + 2] = color[2];
      image.data[offset + 3] = 255;
    }
  }
  const cells = document.createElement("canvas");
  cells.width = n;
  cells.height = m;
  cells.getContext("2d").putImageData(image, 0, 0);
  context.imageSmoothingEnabled = true;
  context.drawImage(cells, 0, 0, cssWidth, cssHeight);

  const px = (x) => ((x - xMin) / (xMax - xMin)) * cssWidth;
  const py = (y) => cssHeight - ((y - yMin) / (yMax - yMin)) * cssHeight;

  // The axes through the origin, faintly, where they cross the picture.
  context.strokeStyle = "rgba(0, 0, 0, 0.15)";
  context.lineWidth = 1;
  context.beginPath();
  if (xMin < 0 && xMax > 0) {
    context.moveTo(px(0), 0);
    context.lineTo(px(0), cssHeight);
  }
  if (yMin < 0 && yMax > 0) {
    context.moveTo(0, py(0));
    context.lineTo(cssWidth, py(0));
  }
  context.stroke();

  const labelIndex = new Map((classes || grid.classes || []).map((label, index) => [String(label), index]));
  for (const point of points) {
    if (point.label !== null && point.label !== undefined) {
      context.fillStyle = classColor(labelIndex.get(String(point.label)) ?? 0);
    } else {
      const [r, g, b] = diverging((point.target - low) / (high - low || 1));
      context.fillStyle = `rgb(${r}, ${g}, ${b})`;
    }
    context.beginPath();
    context.arc(px(point.x), py(point.y), 3.5, 0, 2 * Math.PI);
    context.fill();
    context.strokeStyle = "rgba(29, 35, 42, 0.75)";
    context.lineWidth = 1;
    context.stroke();
  }
  return { xMin, xMax, yMin, yMax, low, high };
}
