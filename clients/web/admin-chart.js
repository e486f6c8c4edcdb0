// The dashboard's chart: forwarded packets/s (left scale, filled) and packet
// loss in percent (right scale, a line) over the last 5 minutes, drawn as
// inline SVG paths; no library. Until 5 minutes have been seen the time axis
// spans what has (at least one minute), so a fresh page is not a blank chart.

const WINDOW_MS = 5 * 60 * 1000;
const MIN_SPAN_MS = 60 * 1000;
const WIDTH = 640;
const HEIGHT = 200;
const PAD_TOP = 8;
const PAD_BOTTOM = 4;
const GRID_LINES = 4;
const MIN_LOSS_SCALE = 0.05; // 5 %: small losses still sit low on the chart

/** The smallest "nice" number (1, 2, 2.5, 5 x 10^n) at least `value`. */
export function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/** A span rounded up to a whole minute. */
function niceSpan(ms) {
  return Math.ceil(ms / 60000) * 60000;
}

/** "2.5 min", "30 s"; `long` spells "minutes". */
function spanLabel(ms, long = false) {
  const minutes = ms / 60000;
  if (minutes < 1) return `${Math.round(ms / 1000)} s`;
  const value = +minutes.toFixed(1);
  return long ? `${value} minute${value === 1 ? "" : "s"}` : `${value} min`;
}

/** An SVG path through [x, y] points, broken where a value is missing (null). */
export function linePath(points) {
  let d = "";
  let drawing = false;
  for (const point of points) {
    if (!point) {
      drawing = false;
      continue;
    }
    d += `${drawing ? "L" : "M"}${point[0].toFixed(1)} ${point[1].toFixed(1)}`;
    drawing = true;
  }
  return d;
}

export class MediaChart {
  constructor(svg) {
    this.svg = svg;
    this.points = []; // {t, packets, loss}: packets/s and loss fraction, null when unknown
    this.drawGrid();
  }

  add(t, packets, loss) {
    this.points.push({ t, packets, loss });
    const oldest = t - WINDOW_MS;
    while (this.points.length && this.points[0].t < oldest) this.points.shift();
    this.draw(t);
  }

  clear() {
    this.points = [];
    this.draw(Date.now());
  }

  drawGrid() {
    const grid = this.svg.querySelector(".chart-grid");
    grid.replaceChildren();
    for (let line = 0; line <= GRID_LINES; line += 1) {
      const y = this.y(line / GRID_LINES);
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", `M0 ${y.toFixed(1)}H${WIDTH}`);
      grid.append(path);
    }
  }

  /** y for a share (0..1) of the scale. */
  y(share) {
    return HEIGHT - PAD_BOTTOM - share * (HEIGHT - PAD_TOP - PAD_BOTTOM);
  }

  draw(now) {
    const first = this.points.length ? this.points[0].t : now;
    const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, niceSpan(now - first)));
    const x = (t) => ((t - (now - span)) / span) * WIDTH;
    const packetsMax = niceCeiling(Math.max(10, ...this.points.map((p) => p.packets ?? 0)));
    const worstLoss = Math.max(0, ...this.points.map((p) => p.loss ?? 0));
    const lossMax = worstLoss > MIN_LOSS_SCALE ? Math.min(1, niceCeiling(worstLoss)) : MIN_LOSS_SCALE;
    const packets = this.points.map((p) => (p.packets == null ? null : [x(p.t), this.y(p.packets / packetsMax)]));
    const loss = this.points.map((p) => (p.loss == null ? null : [x(p.t), this.y(Math.min(1, p.loss / lossMax))]));
    const line = linePath(packets);
    this.svg.querySelector(".chart-packets").setAttribute("d", line);
    this.svg.querySelector(".chart-loss").setAttribute("d", linePath(loss));
    // The filled area under the packet line: each unbroken run closed to the baseline.
    const base = this.y(0).toFixed(1);
    const area = line.replace(/M([\d.]+) ([\d.]+)((?:L[\d.]+ [\d.]+)*)/g, (run, x0, y0, rest) => {
      const last = rest ? rest.slice(rest.lastIndexOf("L") + 1).split(" ")[0] : x0;
      return `M${x0} ${base}L${x0} ${y0}${rest}L${last} ${base}Z`;
    });
    this.svg.querySelector(".chart-area").setAttribute("d", area);

    const document = this.svg.ownerDocument;
    document.getElementById("chart-packets-max").textContent = `${packetsMax.toLocaleString("en")} packets/s`;
    document.getElementById("chart-loss-max").textContent = `${+(lossMax * 100).toFixed(1)} % loss`;
    document.getElementById("chart-start").textContent = `−${spanLabel(span)}`;
    document.getElementById("chart-middle").textContent = `−${spanLabel(span / 2)}`;
    document.getElementById("chart-heading").textContent = `Media, last ${spanLabel(span, true)}`;
    const latest = this.points[this.points.length - 1];
    const peak = Math.max(0, ...this.points.map((p) => p.packets ?? 0));
    this.svg.querySelector("title").textContent = latest
      ? `Now ${Math.round(latest.packets ?? 0)} forwarded packets/s and ${((latest.loss ?? 0) * 100).toFixed(1)} % loss; ` +
        `peak ${Math.round(peak)} packets/s in the last ${spanLabel(span, true)}`
      : "No data yet";
  }
}
