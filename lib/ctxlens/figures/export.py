"""The numbers behind any plotly figure, as a long table for CSV download."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def _axis_values(values, n: int) -> list:
    """A trace's x or y: its values, or positions when plotly would number them itself."""
    return list(values) if values is not None and len(values) == n else list(range(n))


def _tick_names(fig: go.Figure, axis: str, trace) -> dict:
    """Positions → tick labels, where a figure shows tokens at numeric positions."""
    ref = getattr(trace, f"{axis}axis", None) or axis
    layout_axis = fig.layout[f"{axis}axis{ref[1:]}"] if len(ref) > 1 else fig.layout[f"{axis}axis"]
    vals, text = layout_axis.tickvals, layout_axis.ticktext
    return dict(zip(vals, text)) if vals is not None and text is not None else {}


def figure_table(fig: go.Figure) -> pd.DataFrame:
    """One row per plotted value: heatmap cells (x, y, z) or points and bars (x, y).

    Axis tick labels (tokens, layers) are added beside numeric positions, so the table reads
    without the figure.
    """
    frames = []
    for number, trace in enumerate(fig.data):
        name = trace.name or f"trace {number}"
        if getattr(trace, "z", None) is not None:
            z = np.asarray(trace.z, dtype=float)
            if z.ndim != 2:
                continue
            xs = _axis_values(trace.x, z.shape[1])
            ys = _axis_values(trace.y, z.shape[0])
            yy, xx = np.meshgrid(np.arange(z.shape[0]), np.arange(z.shape[1]), indexing="ij")
            frame = pd.DataFrame({"x": np.array(xs, dtype=object)[xx.ravel()],
                                  "y": np.array(ys, dtype=object)[yy.ravel()], "value": z.ravel()})
            shown = (trace.meta or {}).get("customdata") if isinstance(trace.meta, dict) else None
            if shown:  # the numbers behind a transformed colour (a log scale colours log10 of them)
                frame[shown] = np.asarray(trace.customdata, dtype=float).ravel()
        elif getattr(trace, "x", None) is not None or getattr(trace, "y", None) is not None:
            n = len(trace.y if trace.y is not None else trace.x)
            frame = pd.DataFrame({"x": _axis_values(trace.x, n), "y": _axis_values(trace.y, n)})
            text = getattr(trace, "text", None)
            if text is not None and not isinstance(text, str) and len(text) == n:
                frame["text"] = list(text)
        else:
            continue
        for axis in ("x", "y"):
            names = _tick_names(fig, axis, trace)
            if names:
                frame[f"{axis}_label"] = frame[axis].map(names)
        frame.insert(0, "trace", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def figure_csv(fig: go.Figure) -> str:
    return figure_table(fig).to_csv(index=False)
