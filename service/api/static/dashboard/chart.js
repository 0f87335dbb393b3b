// Loss curves on uPlot (vendored in static/vendor/uplot, loaded by index.html as the
// global `uPlot`): one x axis of epochs, one y series per curve, a log scale toggle.

const PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7ea4", "#cf222e", "#6e7781"];

export function seriesColor(index) {
  return PALETTE[index % PALETTE.length];
}

/**
 * A chart of curves over epochs in `container`. `curves` names them ([{label, dash}]);
 * `setData(epochs, values)` takes the epoch numbers and, per curve, its values (null where
 * a curve has none). Its width follows the container's.
 */
export function lossChart(container, curves, { log = false, height = 300, title = "Loss" } = {}) {
  let epochs = [];
  let values = curves.map(() => []);
  let plot = null;
  let logScale = log;

  function options(width) {
    return {
      width,
      height,
      title,
      scales: { x: { time: false }, y: { distr: logScale ? 3 : 1 } },
      axes: [{ label: "epoch" }, { label: title.toLowerCase(), size: 60 }],
      series: [
        { label: "epoch" },
        ...curves.map((curve, index) => ({
          label: curve.label,
          stroke: curve.color || seriesColor(index),
          dash: curve.dash,
          width: 1.5,
          spanGaps: true,
          points: { show: false },
        })),
      ],
    };
  }

  function data() {
    // A log scale cannot show zero or less: such points are left out rather than breaking it.
    const shown = logScale ? values.map((column) => column.map((v) => (v > 0 ? v : null))) : values;
    return [epochs, ...shown];
  }

  function build() {
    if (plot) plot.destroy();
    plot = new uPlot(options(container.clientWidth || 600), data(), container);
    container.dataset.points = String(epochs.length);
  }

  const resize = new ResizeObserver(() => plot && plot.setSize({ width: container.clientWidth, height }));
  resize.observe(container);
  build();

  return {
    setData(newEpochs, newValues) {
      epochs = newEpochs;
      values = newValues;
      plot.setData(data());
      // The tests (and anyone inspecting the page) read how many points are drawn here.
      container.dataset.points = String(epochs.length);
    },
    setLog(on) {
      logScale = on;
      build();
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
    },
  };
}
