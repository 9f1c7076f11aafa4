"""Risk pooled over several studies, per architecture and pruning method (the method's Fig. 4.5).

Fig. 4.5 of the thesis sets the risk box plots of its three architectures side by side. Here each
box is one (architecture, method, ratio): studies of the same architecture and condition (e.g.
two datasets, or a study run twice) pool their d values into one box. numpy only; both back
ends draw :class:`PooledRiskInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hplandscape.analysis.notation import metric_label
from hplandscape.pruning.methods import STRUCTURED, get_method, method_names

#: The basemodel's box colour, darker than the pruning methods' (as in the single-study figure).
BASE_COLOUR = "#1f3b73"
#: A method that declares no colour in the registry (the unstructured ones) is drawn grey.
OTHER_COLOUR = "#999999"


def method_order(method: str) -> int:
    """Where ``method``'s boxes go within an architecture: the basemodel first, then the structured
    methods in the registry's order, then every other method (ordered by ratio among themselves)."""
    if method == "none":
        return 0
    structured = list(method_names(STRUCTURED))
    return 1 + structured.index(method) if method in structured else 9


def method_colour(method: str) -> str:
    """A box's colour: the basemodel's, else the colour the method's registry entry declares."""
    if method == "none":
        return BASE_COLOUR
    colour = get_method(method).colour if method in method_names() else None
    return colour or OTHER_COLOUR


@dataclass(frozen=True)
class PooledBox:
    """One box: the d (points) and dᴿ (percent of the best) values of one architecture × condition."""

    architecture: str
    label: str  # "base", "uniform 60 %", …
    method: str
    ratio: float
    d: np.ndarray
    dR: np.ndarray
    studies: tuple  # the study labels pooled here

    @property
    def colour(self) -> str:
        return method_colour(self.method)


@dataclass(frozen=True)
class PooledRiskInfo:
    """Boxes grouped by architecture (in the order studies were given), within one the basemodel,
    then uniform, then global pruning, each by decreasing FLOPs kept."""

    boxes: tuple
    architectures: tuple
    metric: str
    title: str


def condition_label(method: str, ratio: float) -> str:
    """``"base"`` or ``"global 40 %"`` (the FLOPs kept), as the thesis labels its boxes."""
    return "base" if method == "none" else f"{method} {ratio:.0%}".replace("%", " %")


def pooled_risk_info(studies) -> PooledRiskInfo:
    """Pool the risk of several analysed studies per architecture and condition.

    Parameters
    ----------
    studies : sequence of (str, str, StudyAnalysis)
        ``(study label, architecture, result)`` per study; results must share one metric.

    Returns
    -------
    PooledRiskInfo

    Raises
    ------
    ValueError
        No study, or studies analysed on different metrics.
    """
    if not studies:
        raise ValueError("pooled_risk_info needs at least one study")
    metrics = {r.metric for _, _, r in studies}
    if len(metrics) > 1:
        raise ValueError(f"the studies were analysed on different metrics ({', '.join(sorted(metrics))})")
    groups: dict = {}
    architectures = []
    for label, arch, result in studies:
        if arch not in architectures:
            architectures.append(arch)
        for c in result.conditions:
            key = (arch, c.method, round(float(c.ratio), 4))
            g = groups.setdefault(key, {"d": [], "dR": [], "studies": []})
            g["d"] += list(c.risk.d)
            g["dR"] += [100.0 * v for v in c.risk.dR]
            if label not in g["studies"]:
                g["studies"].append(label)
    order = sorted(groups, key=lambda k: (architectures.index(k[0]), method_order(k[1]), -k[2]))
    boxes = tuple(PooledBox(a, condition_label(m, r), m, r, np.array(groups[(a, m, r)]["d"], float),
                            np.array(groups[(a, m, r)]["dR"], float), tuple(groups[(a, m, r)]["studies"]))
                  for a, m, r in order)
    metric = metric_label(metrics.pop())
    title = (f"risk of keeping each basemodel's near-optimal settings, pooled per architecture and condition "
             f"({len(studies)} studies; {metric})")
    return PooledRiskInfo(boxes=boxes, architectures=tuple(architectures), metric=metric, title=title)
