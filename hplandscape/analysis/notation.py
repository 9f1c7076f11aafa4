"""How numbers are written: one convention for every figure, table and sentence.

- Learning rate and weight decay: scientific notation with two significant digits and a bare
  exponent, ``1.0e-4``, ``3.2e-5``, ``1.6e-1`` — never ``0.000316`` beside ``3.16e-05``. Two
  digits tell apart every point of a grid whose step is at least 0.05 decades.
- Relative risk dᴿ: a percentage of the condition's best accuracy (``1.23 %``); the CSV tables
  keep the fraction, as data.
- Accuracy: percent with two decimals in words, colour-bar ticks on round steps
  (:func:`nice_ticks`), never ``98.6667``.
"""

from __future__ import annotations

import math

import numpy as np

HP_DIGITS = 2  # significant digits of a learning rate or weight decay


def metric_label(metric: str) -> str:
    """``"top1"`` → ``"top-1"``: the metric as figures and sentences name it.

    >>> metric_label("top5")
    'top-5'
    """
    return {"top1": "top-1", "top5": "top-5"}.get(metric, metric)


def hp_text(value: float, digits: int = HP_DIGITS) -> str:
    """A learning rate or weight decay as written everywhere: ``3.2e-5``.

    Examples
    --------
    >>> hp_text(1e-4), hp_text(10 ** -4.5), hp_text(0.1), hp_text(10 ** -0.2), hp_text(2.0)
    ('1.0e-4', '3.2e-5', '1.0e-1', '6.3e-1', '2.0e0')
    """
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        return str(value)
    mantissa, exponent = f"{float(value):.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def hp_log10_text(log10_value: float, digits: int = HP_DIGITS) -> str:
    """:func:`hp_text` of ``10 ** log10_value`` (a grid coordinate).

    >>> hp_log10_text(-3.8)
    '1.6e-4'
    """
    return hp_text(10.0 ** float(log10_value), digits)


def percent_text(fraction: float, decimals: int = 2) -> str:
    """A fraction as a percentage: ``0.0123`` → ``1.23 %`` (``—`` when undefined).

    >>> percent_text(0.0123)
    '1.23 %'
    """
    if fraction is None or not math.isfinite(fraction):
        return "—"
    return f"{100.0 * fraction:.{decimals}f} %"


def nice_step(span: float, target: int = 6) -> float:
    """The round step (1, 2 or 5 × 10^k) nearest to cutting ``span`` into ``target`` parts.

    >>> nice_step(1.4), nice_step(12.0), nice_step(0.3)
    (0.2, 2.0, 0.05)
    """
    if not (span > 0 and math.isfinite(span)):
        return 1.0
    raw = span / max(1, target)
    power = 10.0 ** math.floor(math.log10(raw))
    # nearest on a log scale, so ticks number between about target/1.6 and target·1.6
    best = min((1.0, 2.0, 5.0, 10.0), key=lambda m: abs(math.log(m * power / raw)))
    return round(best * power, 12)


def nice_ticks(lo: float, hi: float, target: int = 6) -> tuple:
    """Round tick values inside ``[lo, hi]``: multiples of :func:`nice_step`, exact to 10 decimals.

    >>> nice_ticks(97.3333, 98.6667)
    (97.4, 97.6, 97.8, 98.0, 98.2, 98.4, 98.6)
    """
    step = nice_step(hi - lo, target)
    first = math.ceil(lo / step - 1e-9) * step
    n = int(math.floor((hi - first) / step + 1e-9)) + 1
    return tuple(round(first + i * step, 10) + 0.0 for i in range(max(n, 0)))


def tick_text(values) -> tuple:
    """Labels of :func:`nice_ticks` values with just enough decimals for their step.

    >>> tick_text((97.5, 98.0, 98.5)), tick_text((90.0, 92.0))
    (('97.5', '98.0', '98.5'), ('90', '92'))
    """
    values = tuple(float(v) for v in values)
    if len(values) < 2:
        return tuple(f"{v:g}" for v in values)
    step = min(abs(b - a) for a, b in zip(values, values[1:]))
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > 1e-9:
        decimals += 1
    return tuple(f"{v:.{decimals}f}" for v in values)
