"""Error types shared by the whole toolkit and the exit codes the CLI maps them to.

``UserError`` means the input was wrong (a config key, a CLI value, a file that is not what it
should be): the CLI prints the message alone and exits 2. ``RunFailure`` means something broke
while working on valid input: the CLI prints the message, which names the log to read, and exits 1.
``Terminated`` means the process was told to stop (SIGTERM): the CLI prints what was stopped and
exits 143 (128 + 15), as a shell reports a process that SIGTERM ended.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_TERMINATED = 128 + 15  # SIGTERM


class UserError(Exception):
    """Bad input from the user; the message must say what is wrong and what is allowed."""

    exit_code = EXIT_USAGE


class ConfigError(UserError):
    """A study config value is invalid.

    Parameters
    ----------
    source : str
        Where the config came from (a file path or ``"<quickstart>"``).
    key : str
        Dotted key of the offending entry, e.g. ``"train.epochs"``.
    message : str
        What is wrong and what is allowed, e.g. ``"must be a positive integer, got -3"``.

    Examples
    --------
    >>> str(ConfigError("grids/x.yaml", "train.epochs", "must be a positive integer, got -3"))
    'grids/x.yaml: train.epochs must be a positive integer, got -3'
    """

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: {key} {message}" if key else f"{source}: {message}")


class ConfigChanged(UserError):
    """A study directory holds a study made from another config; its records would not match.

    Parameters
    ----------
    study_yaml : str or Path
        The stored config (``STUDY/study.yaml``).
    changes : sequence of (key, stored, new)
        Dotted key, stored value and new value of every setting that differs.
    hint : str
        A further sentence, e.g. which command-line override made the difference.

    Examples
    --------
    >>> str(ConfigChanged("s/study.yaml", [("train.epochs", 6, 3)]))[:72]
    's/study.yaml was made from a different config (train.epochs: 6 → 3). Its'
    """

    def __init__(self, study_yaml, changes, hint: str = ""):
        self.study_yaml, self.changes, self.hint = str(study_yaml), tuple(changes), hint
        shown = "; ".join(f"{k}: {_short(old)} → {_short(new)}" for k, old, new in self.changes[:5])
        super().__init__(
            f"{study_yaml} was made from a different config ({shown}{'; …' if len(self.changes) > 5 else ''}). "
            "Its records would not match the new settings: use a new --study-dir for the new config, or pass "
            "--force to adopt the new config here (existing records are kept)." + (f" {hint}" if hint else ""))


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


class RunFailure(RuntimeError):
    """Work on valid input failed; the message names the log to read next."""

    exit_code = EXIT_RUNTIME


class Terminated(BaseException):
    """The process received SIGTERM; the message says what it stopped and how to resume.

    A ``BaseException``, like ``KeyboardInterrupt``: no ``except Exception`` around a run mistakes
    it for that run's failure.
    """

    exit_code = EXIT_TERMINATED
