"""Error types shared by the whole toolkit and the exit codes the CLI maps them to.

``UserError`` means the input was wrong (a config key, a CLI value, a file that is not what it
should be): the CLI prints the message alone and exits 2. ``RunFailure`` means something broke
while working on valid input: the CLI prints the message, which names the log to read, and exits 1.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2


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
        self.source, self.key = source, key
        super().__init__(f"{source}: {key} {message}" if key else f"{source}: {message}")


class RunFailure(RuntimeError):
    """Work on valid input failed; the message names the log to read next."""

    exit_code = EXIT_RUNTIME
