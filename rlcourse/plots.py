"""Standard plots: curves with a moving average, several runs side by side."""
from __future__ import annotations

import numpy as np


def moving_average(values, window: int = 10) -> np.ndarray:
    """Trailing mean over up to ``window`` points (same length as ``values``)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return values
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(0, idx - window)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


def plot_curve(ax, values, label: str | None = None, window: int = 10, color=None):
    """Raw values faintly, their moving average boldly."""
    steps = np.arange(len(values))
    line, = ax.plot(steps, values, alpha=0.3, color=color)
    ax.plot(steps, moving_average(values, window), color=line.get_color(), label=label)
    return ax


def plot_history(history: dict, window: int = 10, title: str | None = None, ncols: int = 3):
    """One panel per key of ``history`` (e.g. reward, kl, clip fraction), x = training step."""
    import matplotlib.pyplot as plt

    keys = list(history)
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, min(ncols, len(keys)), figsize=(4.2 * min(ncols, len(keys)), 3.2 * nrows),
                             squeeze=False)
    for ax, key in zip(axes.flat, keys):
        plot_curve(ax, history[key], window=window)
        ax.set_title(key)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
