"""LinePlot: a tiny SVG line chart (anywidget) that redraws in place when x/y change.

Only the two number lists and the y-axis ticks travel to the browser; the chart code is a few
dozen lines of JavaScript shipped with the widget (no CDN, no network). The ticks are chosen
here (`nice_ticks`: steps of 1, 2 or 5 times a power of ten, labels with just the decimals the
step needs), so the axis reads 20 / 40 / 60, not 17.414 / 90.006.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import anywidget
import traitlets as T

__all__ = ["LinePlot", "nice_ticks"]


def nice_ticks(values: Sequence[float], target: int = 5) -> tuple[list[float], list[str]]:
    """Y-axis ticks for `values`: about `target` steps of 1, 2 or 5 times a power of ten,
    from a multiple of the step at or below the smallest value (less a 4% margin) to one at or
    above the largest; and their labels. No finite values: no ticks."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [], []
    lo, hi = min(finite), max(finite)
    if hi == lo:
        lo, hi = lo - max(abs(lo) * 0.01, 0.5), hi + max(abs(hi) * 0.01, 0.5)
    margin = (hi - lo) * 0.04
    lo, hi = lo - margin, hi + margin
    raw = (hi - lo) / max(target, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    ticks = [round(i * step, decimals) for i in range(first, last + 1)]
    ticks = [0.0 if t == 0 else t for t in ticks]  # no "-0"
    return ticks, [f"{t:.{decimals}f}" for t in ticks]

_ESM = r"""
const NS = "http://www.w3.org/2000/svg";
function mk(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(v) {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return (Math.round(v * 1000) / 1000).toString();
}
function clock(t) {
  const d = new Date(t * 1000);
  return d.toTimeString().slice(0, 8);
}
function render({ model, el }) {
  const W = model.get("width"), H = model.get("height");
  const P = { l: 56, r: 16, t: 22, b: 26 };
  const svg = mk("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", class: "nb-plot-svg" });
  svg.style.maxWidth = W + "px";
  svg.style.display = "block";
  el.classList.add("nb-plot");
  el.append(svg);
  const draw = () => {
    const xs = model.get("x"), ys = model.get("y"), label = model.get("label");
    const parts = [mk("rect", { x: 0, y: 0, width: W, height: H, fill: "white" }),
                   mk("text", { x: P.l, y: 14, "font-size": 12, "font-weight": "bold",
                                fill: "#333" }, label)];
    const n = Math.min(xs.length, ys.length);
    if (n === 0) {
      parts.push(mk("text", { x: W / 2, y: H / 2, "text-anchor": "middle", "font-size": 12,
                              fill: "#888" }, model.get("empty")));
      svg.replaceChildren(...parts);
      return;
    }
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]);
      y0 = Math.min(y0, ys[i]); y1 = Math.max(y1, ys[i]);
    }
    if (x1 === x0) { x0 -= 1; x1 += 1; }
    if (y1 === y0) { y0 -= 1; y1 += 1; }
    const ticks = model.get("yticks"), tickLabels = model.get("ylabels");
    if (ticks.length >= 2) { y0 = ticks[0]; y1 = ticks[ticks.length - 1]; }
    else { const pad = (y1 - y0) * 0.08; y0 -= pad; y1 += pad; }
    const sx = (x) => P.l + (x - x0) / (x1 - x0) * (W - P.l - P.r);
    const sy = (y) => H - P.b - (y - y0) / (y1 - y0) * (H - P.t - P.b);
    const axis = { stroke: "#999", "stroke-width": 1 };
    parts.push(mk("line", { x1: P.l, y1: H - P.b, x2: W - P.r, y2: H - P.b, ...axis }));
    parts.push(mk("line", { x1: P.l, y1: P.t, x2: P.l, y2: H - P.b, ...axis }));
    const small = { "font-size": 10, fill: "#555" };
    if (ticks.length >= 2) {
      ticks.forEach((t, i) => {
        const y = sy(t);
        parts.push(mk("line", { x1: P.l, y1: y, x2: W - P.r, y2: y, stroke: "#eee",
                                "stroke-width": 1 }));
        parts.push(mk("line", { x1: P.l - 3, y1: y, x2: P.l, y2: y, ...axis }));
        parts.push(mk("text", { x: P.l - 5, y: y + 3, "text-anchor": "end", class: "nb-plot-tick",
                                ...small }, tickLabels[i]));
      });
    } else {
      parts.push(mk("text", { x: P.l - 4, y: sy(y1) + 4, "text-anchor": "end", ...small },
                    fmt(y1)));
      parts.push(mk("text", { x: P.l - 4, y: sy(y0), "text-anchor": "end", ...small }, fmt(y0)));
    }
    parts.push(mk("text", { x: P.l, y: H - 8, ...small }, clock(x0)));
    parts.push(mk("text", { x: W - P.r, y: H - 8, "text-anchor": "end", ...small }, clock(x1)));
    let pts = "";
    for (let i = 0; i < n; i++) pts += `${sx(xs[i]).toFixed(1)},${sy(ys[i]).toFixed(1)} `;
    parts.push(mk("polyline", { points: pts, fill: "none", stroke: "#1f77b4",
                                "stroke-width": 1.5, class: "nb-plot-line" }));
    const lx = sx(xs[n - 1]), ly = sy(ys[n - 1]);
    parts.push(mk("circle", { cx: lx, cy: ly, r: 3, fill: "#1f77b4" }));
    parts.push(mk("text", { x: W - P.r, y: 14, "text-anchor": "end", "font-size": 12,
                            fill: "#1f77b4", class: "nb-plot-last" },
                  `last ${fmt(ys[n - 1])} (${n} ${n === 1 ? "point" : "points"})`));
    svg.replaceChildren(...parts);
  };
  for (const t of ["x", "y", "label", "yticks"]) model.on(`change:${t}`, draw);
  draw();
}
export default { render };
"""


class LinePlot(anywidget.AnyWidget):
    """A line chart of ``y`` over ``x`` (epoch seconds) that redraws in place."""

    _esm = _ESM
    x = T.List(T.Float(), help="x values: epoch seconds").tag(sync=True)
    y = T.List(T.Float(), help="y values").tag(sync=True)
    label = T.Unicode("", help="title above the chart").tag(sync=True)
    empty = T.Unicode("no numeric data yet", help="text shown without points").tag(sync=True)
    yticks = T.List(T.Float(), help="y-axis ticks (set from y by nice_ticks)").tag(sync=True)
    ylabels = T.List(T.Unicode(), help="the ticks' labels").tag(sync=True)
    width = T.Int(560).tag(sync=True)
    height = T.Int(180).tag(sync=True)

    @T.observe("y")
    def _ticks(self, change: dict[str, Any]) -> None:
        ticks, labels = nice_ticks(change["new"])
        if ticks != self.yticks:
            # labels first: the view redraws on yticks and reads both
            self.ylabels = labels
            self.yticks = ticks
