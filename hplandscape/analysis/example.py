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
# Network size of the constructed basemodel (a CIFAR ResNet-56: 0.85 M parameters, 2.5e8 FLOPs);
# a pruned condition keeps ``ratio`` of the FLOPs and, constructed too, ratio^0.9 of the parameters.
BASE_PARAMS, BASE_FLOPS = 853_018, 250_000_000

# name, method, ratio, peak top-1, centre (log10 lr, log10 wd), across-band a, along-band b
_CONDITIONS = (
    ("base", "none", 1.0, 93.3, (-1.0, -4.0), 12.0, 1.2),
    ("uniform-0.6", "uniform", 0.6, 92.9, (-1.2, -3.8), 14.0, 1.6),
    ("global-0.6", "global", 0.6, 92.6, (-0.8, -4.2), 16.0, 2.0),
    ("global-0.4", "global", 0.4, 92.4, (-0.4, -4.6), 30.0, 3.0),  # narrow, at the lr edge
)


def _size(ratio: float) -> dict:
    return {"params": int(round(BASE_PARAMS * ratio ** 0.9)), "flops": int(round(BASE_FLOPS * ratio))}


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
        Columns ``condition, method, ratio, lr, wd, log10_lr, log10_wd, seed, top1, diverged,
        params, flops`` (sizes constructed from :data:`BASE_PARAMS` and :data:`BASE_FLOPS`).
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
                                 "top1": round(float(top1), 3), "diverged": diverged, **_size(ratio)})
    return pd.DataFrame(rows)


# method, acc_p, a, b of acc(r) = acc_p − a·e^{b(r−1)} over r = fraction of FLOPs pruned
_RATIO_CURVES = (("uniform", 93.6, 2.5, 3.0), ("global", 93.6, 1.5, 4.5))
RATIOS = (0.8, 0.6, 0.4, 0.2)


def synthetic_ratio_results(seed: int = 0, noise: float = 0.03) -> pd.DataFrame:
    """A results table of a constructed study over pruning ratios (for the ratio curves).

    The basemodel plus ``uniform`` and ``global`` pruning at :data:`RATIOS` of the FLOPs kept, on
    a 5×5 grid (step 0.4 around lr 0.1, wd 1e-4), one seed. Each condition's peak top-1 follows
    acc(r) = acc_p − a·e^{b(r−1)} (uniform: 93.6, 2.5, 3.0; global: 93.6, 1.5, 4.5); from
    r = 0.6 on the optimum sits one grid step off the prior (uniform at a lower lr, global at a
    higher one), so the top-1 at the prior falls faster than the best. Constructed, like :func:`synthetic_results`; never mistake it for a result.

    Parameters
    ----------
    seed : int
        Seed of the noise (also the ``seed`` column).
    noise : float
        Standard deviation of the per-run noise in accuracy points.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`synthetic_results`.
    """
    axis = np.round(0.4 * (np.arange(5) - 2), 4)
    rng = np.random.default_rng(seed)
    specs = [("base", "none", 1.0, 0.0, 0.0)]
    for method, acc_p, a, b in _RATIO_CURVES:
        sign = 1.0 if method == "uniform" else -1.0  # uniform drifts to lower lr, global to higher
        for ratio in RATIOS:
            r = 1.0 - ratio
            specs.append((f"{method}-{ratio:g}", method, ratio, acc_p - a * np.exp(b * (r - 1.0)),
                          sign * 0.4 if r > 0.5 else 0.0))
    # the basemodel is r = 0 of both curves: midway between them there
    base_peak = float(np.mean([acc_p - a * np.exp(-b) for _, acc_p, a, b in _RATIO_CURVES]))
    rows = []
    for name, method, ratio, peak, shift in specs:
        peak = base_peak if method == "none" else peak
        for dlr in axis:
            for dwd in axis:
                u = ((dlr + shift) + dwd) / np.sqrt(2.0)  # across the band, whose centre moved by shift
                v = ((dlr + shift) - dwd) / np.sqrt(2.0)
                top1 = max(peak - 8.0 * u * u - 1.0 * v * v + rng.normal(0.0, noise), CHANCE_TOP1 + 1.0)
                rows.append({"condition": name, "method": method, "ratio": ratio,
                             "lr": float(10.0 ** (dlr - 1.0)), "wd": float(10.0 ** (dwd - 4.0)),
                             "log10_lr": float(round(dlr - 1.0, 4)), "log10_wd": float(round(dwd - 4.0, 4)),
                             "seed": int(seed), "top1": round(float(top1), 3), "diverged": False,
                             **_size(ratio)})
    return pd.DataFrame(rows)


# name, method, ratio, peak top-1, lr shift of the optimum (decades), curvature scale
_REPLICATE_CONDITIONS = (
    ("base", "none", 1.0, 93.3, 0.0, 1.0),
    ("uniform-0.6", "uniform", 0.6, 93.0, 0.0, 1.6),   # same optimum, narrower: more risk
    ("global-0.4", "global", 0.4, 92.6, 0.2, 1.3),     # optimum one grid step higher in lr
)


def synthetic_replicate_results(seeds=(0, 1, 2), noise: float = 0.15,
                                randomness: str = "independent") -> pd.DataFrame:
    """A constructed 9×9 study with replicate seeds: one optimum that moved, one that did not.

    The landscape of ``benchmarks/shift_power.py``, f = peak − s·(8·Δlr² + 4·Δwd²) in log10 units
    around lr 0.1, wd 1e-4 (step 0.2), plus N(0, ``noise``²) per run. ``base`` peaks at 93.3;
    ``uniform-0.6`` keeps the basemodel's optimum but is narrower (s = 1.6), so its risk is larger;
    ``global-0.4`` has its optimum 0.2 decades (one grid step) higher in lr. Constructed, like
    :func:`synthetic_results`; never mistake it for a result.

    Parameters
    ----------
    seeds : sequence of int
        Seeds to generate; each adds its own deterministic noise.
    noise : float
        Standard deviation of the per-run noise in accuracy points.
    randomness : {"independent", "common"}
        The design written to the ``randomness`` column. ``common`` gives every seed one noise
        draw per condition shared by all its grid points (a constant offset) plus half the
        independent noise variance.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`synthetic_results` plus ``randomness``.
    """
    axis = np.round(0.2 * (np.arange(9) - 4), 4)
    rows = []
    for ci, (name, method, ratio, peak, shift, scale) in enumerate(_REPLICATE_CONDITIONS):
        for seed in seeds:
            rng = np.random.default_rng([7, ci, int(seed)])
            offset = rng.normal(0.0, noise / np.sqrt(2.0)) if randomness == "common" else 0.0
            own = noise / np.sqrt(2.0) if randomness == "common" else noise
            for dlr in axis:
                for dwd in axis:
                    top1 = (peak - scale * (8.0 * (dlr - shift) ** 2 + 4.0 * dwd ** 2)
                            + offset + rng.normal(0.0, own))
                    rows.append({"condition": name, "method": method, "ratio": ratio,
                                 "lr": float(10.0 ** (dlr - 1.0)), "wd": float(10.0 ** (dwd - 4.0)),
                                 "log10_lr": float(round(dlr - 1.0, 4)), "log10_wd": float(round(dwd - 4.0, 4)),
                                 "seed": int(seed), "top1": round(float(max(top1, CHANCE_TOP1 + 1.0)), 3),
                                 "diverged": False, "randomness": randomness, **_size(ratio)})
    return pd.DataFrame(rows)


def synthetic_adaptive_results(seeds=(0, 1, 2), within: float = 1.5, noise: float = 0.15) -> pd.DataFrame:
    """:func:`synthetic_replicate_results` as an adaptive design would have run it (method §12).

    Round 1 is the first seed at every point and every seed at the prior (lr 0.1, wd 1e-4, the
    grid's centre) and its four axis neighbours; round k + 1 adds the k-th further seed at each
    point whose first-seed top-1 lies within ``within`` accuracy points of its condition's best
    first-seed top-1 (a stand-in for :mod:`hplandscape.analysis.adaptive`'s rule). So seeds per
    point are unequal by design, and the table says so in ``replicates`` ("adaptive") and
    ``round``. Constructed; never mistake it for a result.

    >>> t = synthetic_adaptive_results()
    >>> len(t) < 3 * 3 * 81, sorted(t["round"].unique().tolist()), t["replicates"].unique().tolist()
    (True, [1, 2, 3], ['adaptive'])
    """
    t = synthetic_replicate_results(seeds=seeds, noise=noise)
    first = t[t["seed"] == seeds[0]]
    best = first.groupby("condition")["top1"].transform("max")
    near = first[first["top1"] >= best - within].set_index(["condition", "log10_lr", "log10_wd"]).index
    block = {(-1.0, -4.0), (-1.2, -4.0), (-0.8, -4.0), (-1.0, -4.2), (-1.0, -3.8)}
    key = pd.MultiIndex.from_frame(t[["condition", "log10_lr", "log10_wd"]])
    in_block = np.array([(lr, wd) in block for lr, wd in zip(t["log10_lr"], t["log10_wd"])])
    later = t["seed"].map({s: k + 1 for k, s in enumerate(seeds)})  # seed k (from 0) comes in round k + 1
    t["round"] = np.where(in_block | (t["seed"] == seeds[0]), 1, later)
    keep = (t["round"] == 1) | key.isin(near)
    t = t[keep].reset_index(drop=True)
    t["replicates"] = "adaptive"
    return t


def synthetic_sparse_results() -> pd.DataFrame:
    """:func:`synthetic_results` with an unstructured, fine-tuned condition and gradient flow.

    ``global-0.4`` becomes ``magnitude-0.2-finetune`` (density 0.2, half its FLOPs); every run gets
    ``pipeline`` and ``density`` and a constructed gradient flow (``egf2_mean`` = e^{±top-1/10},
    ``egf1_mean`` = 3 × that) that falls with the top-1 for the basemodel and rises with it
    elsewhere, so Kendall's τ is exactly −1 and +1. Constructed; never mistake it for a result.
    """
    t = synthetic_results()
    sparse = t["condition"] == "global-0.4"
    t.loc[sparse, ["condition", "method", "ratio"]] = ["magnitude-0.2-finetune", "magnitude", 0.2]
    t["pipeline"] = np.where(sparse, "finetune", "retrain")
    t["density"] = np.where(sparse, 0.2, 1.0)
    t.loc[sparse, "flops"] = t.loc[sparse, "flops"] // 2
    sign = np.where(t["condition"] == "base", -1.0, 1.0)
    t["egf2_mean"] = np.exp(sign * t["top1"] / 10.0)
    t["egf1_mean"] = 3 * t["egf2_mean"]
    return t


def write_example_results(path) -> Path:
    """Write :func:`synthetic_results` as a results CSV at ``path`` (atomically) and return it."""
    return write_text_atomic(Path(path), synthetic_results().to_csv(index=False))
