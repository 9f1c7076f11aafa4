"""A small constructed results set for examples, notebooks and tests.

The landscape imitates the thesis's finding: the near-optimal region is a diagonal band in the
(log10 wd, log10 lr) plane (a larger learning rate needs a smaller weight decay, γλ ≈ const).
It is *constructed*, not measured; never mistake it for a result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hplandscape.atomic import write_text as write_text_atomic

CHANCE_TOP1 = 10.0  # ten classes

# name, method, ratio, peak top-1, centre (log10 lr, log10 wd), across-band a, along-band b
_CONDITIONS = (
    ("base", "none", 1.0, 93.3, (-1.0, -4.0), 12.0, 1.2),
    ("uniform-0.6", "uniform", 0.6, 92.9, (-1.2, -3.8), 14.0, 1.6),
    ("global-0.6", "global", 0.6, 92.6, (-0.8, -4.2), 16.0, 2.0),
    ("global-0.4", "global", 0.4, 92.4, (-0.4, -4.6), 30.0, 3.0),  # narrow, at the lr edge
)


def synthetic_results(seeds=(0, 1), noise: float = 0.08) -> pd.DataFrame:
    """A results table of a constructed 9×9 study (step 0.2 around lr 0.1, wd 1e-4).

    Four conditions (``base``, ``uniform-0.6``, ``global-0.6``, ``global-0.4``) × 81 points ×
    ``seeds``. The band of ``global-0.4`` is narrow (its 0.5-ROI is too small for an ellipse) and
    touches the high-lr edge of the grid. Runs at lr = 10^-0.2, wd = 10^-3.2 diverge (top-1 at
    chance level, 10 %) for the basemodel (all seeds) and ``global-0.6`` (first seed); the run
    ``uniform-0.6`` at lr = 10^-1.8, wd = 10^-4.8, last seed, is missing.

    Parameters
    ----------
    seeds : sequence of int
        Seeds to generate; each adds its own deterministic noise.
    noise : float
        Standard deviation of the per-run noise in accuracy points.

    Returns
    -------
    pandas.DataFrame
        Columns ``condition, method, ratio, lr, wd, log10_lr, log10_wd, seed, top1, diverged``.
    """
    axis_lr = np.round(-1.0 + 0.2 * (np.arange(9) - 4), 4)
    axis_wd = np.round(-4.0 + 0.2 * (np.arange(9) - 4), 4)
    rows = []
    for ci, (name, method, ratio, peak, (clr, cwd), a, b) in enumerate(_CONDITIONS):
        for seed in seeds:
            rng = np.random.default_rng(1000 * ci + int(seed))
            for llr in axis_lr:
                for lwd in axis_wd:
                    u = ((llr - clr) + (lwd - cwd)) / np.sqrt(2.0)  # across the band
                    v = ((llr - clr) - (lwd - cwd)) / np.sqrt(2.0)  # along the band
                    top1 = max(peak - a * u * u - b * v * v + rng.normal(0.0, noise), CHANCE_TOP1 + 1.0)
                    diverged = bool(llr == -0.2 and lwd == -3.2
                                    and (name == "base" or (name == "global-0.6" and seed == seeds[0])))
                    if diverged:
                        top1 = CHANCE_TOP1
                    if name == "uniform-0.6" and seed == seeds[-1] and llr == -1.8 and lwd == -4.8:
                        continue  # the one missing run
                    rows.append({"condition": name, "method": method, "ratio": ratio,
                                 "lr": float(10.0**llr), "wd": float(10.0**lwd),
                                 "log10_lr": float(llr), "log10_wd": float(lwd), "seed": int(seed),
                                 "top1": round(float(top1), 3), "diverged": diverged})
    return pd.DataFrame(rows)


def write_example_results(path) -> Path:
    """Write :func:`synthetic_results` as a results CSV at ``path`` (atomically) and return it."""
    return write_text_atomic(Path(path), synthetic_results().to_csv(index=False))
