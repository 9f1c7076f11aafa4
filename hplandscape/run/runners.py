"""Runners: what executes a study's plan, by name (``launcher.executor``, ``sweep --executor``).

A sweep (:func:`hplandscape.run.sweep.run_sweep`) checks, plans and summarises; how the planned runs
are executed is a :class:`Runner`'s: it says whether this machine can use it, checks the request
before anything is written, runs (or submits) the ready runs of each step, follows what it
submitted, and says where the jobs run for ``--dry-run``. The registry below maps each executor
name to its runner class; the config's ``launcher.executor`` and the CLI's ``--executor`` offer
:func:`executor_names`. Adding an executor is one module (a ``Runner`` subclass) and one line in
:data:`hplandscape.choices.BUILTIN_EXECUTORS` (or a :func:`register_runner` call in user code).

Light on purpose (no submitit, no torch); the table of names lives in :mod:`hplandscape.choices`,
so the config's validation and the CLI read the names without importing the running side; a
runner's module is imported when the runner is first asked for.

>>> executor_names()
('local', 'slurm', 'debug')
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

from hplandscape.choices import BUILTIN_EXECUTORS, EXECUTORS, executor_names
from hplandscape.errors import UserError
from hplandscape.store.claims import STALE_AFTER_S

__all__ = ["RunOptions", "Launch", "Outcome", "Runner", "executor_names", "get_runner", "runner_class",
           "register_runner", "unregister_runner"]

#: The registry: executor name → Runner subclass or "module:Class" (:data:`hplandscape.choices.EXECUTORS`,
#: where the config reads the names without importing the running side).
_BUILTIN = BUILTIN_EXECUTORS
_RUNNERS = EXECUTORS


@dataclass(frozen=True)
class RunOptions:
    """How a sweep's runs are run, beyond what the config says: the hooks of tests and benchmarks.

    Everything here has a default that a user's sweep keeps; one object travels from
    :func:`~hplandscape.run.sweep.run_sweep` to the runner and the jobs it makes instead of five
    keyword arguments passed down each layer.
    """

    #: Replaces :func:`hplandscape.training.sequential_engine.train_run` in the jobs (``spec -> record dict``); must be
    #: picklable (a module-level function), since the local and SLURM jobs are pickled. With it the
    #: sweep skips the machine checks (data directory, CUDA, reachable ratios) of
    #: :func:`hplandscape.run.preflight.check_runnable`.
    train_fn: Callable | None = None
    #: Replaces the pruning function of the prune step (:func:`hplandscape.run.prune_step.make_pruning_specs`'s
    #: ``prune_fn``); picklable. With it the sweep does not look for a damaged pruning source.
    prune_fn: Callable | None = None
    #: Seconds after its last heartbeat that a run's claim counts as abandoned (another job may take
    #: the run); :data:`hplandscape.store.claims.STALE_AFTER_S` by default.
    stale_after: float = STALE_AFTER_S
    #: Seconds between a job's heartbeats on the claims it holds; None: the default heartbeat, at
    #: most a sixth of ``stale_after``.
    heartbeat_s: float | None = None
    #: Seconds between checks while a runner waits (for its jobs, or for runs other sweeps hold).
    poll_s: float = 0.5


@dataclass(frozen=True)
class Launch:
    """What a runner gets to execute one sweep's plan.

    ``plan`` is the plan made after the study directory was written; ``replan()`` makes it again
    from the files (a runner that goes in rounds calls it each round). ``make_job(specs,
    raise_on_failure=False, pull_since=None)`` returns the picklable job
    (:class:`~hplandscape.run.worker.RunJob`) that trains a block of runs. ``max_parallel``: jobs at
    once on this machine; ``progress``: a progress bar while waiting; ``wait``: follow submitted
    jobs to their end (a runner whose :meth:`Runner.run` returns only when the runs are done
    ignores it).
    """

    config: object
    store: object
    plan: object
    replan: Callable
    make_job: Callable
    max_parallel: int
    progress: bool = True
    wait: bool = False
    options: RunOptions = RunOptions()


@dataclass(frozen=True)
class Outcome:
    """What a runner did: runs it trained or submitted, the ids of jobs it left running (for the
    summary), and jobs that died around their runs (:class:`~hplandscape.run.local_runner.JobFailure`)."""

    submitted: int
    job_ids: tuple = ()
    job_failures: tuple = ()


class Runner(ABC):
    """How a sweep's planned runs are executed; one subclass per executor name.

    The runner executes the plan and decides nothing about its order: a step's runs may start once
    every step it ``needs`` is done (:class:`~hplandscape.run.plan.Step`). A runner keeps no state
    between calls; :func:`get_runner` makes a new one per sweep.
    """

    #: Whether the runs execute on this machine (a CUDA device must then be here for
    #: ``launcher.device: cuda``); False for a runner that sends them to other machines.
    runs_here: bool = True

    def __init__(self, name: str):
        self.name = name

    def check_available(self) -> None:
        """Raise :class:`~hplandscape.errors.UserError` when this machine cannot use the executor at
        all (its commands are missing); the sweep's first check, before the study directory is read."""

    @abstractmethod
    def check_request(self, config) -> None:
        """Refuse what the executor cannot give the study's jobs (a ``ConfigError`` naming the
        ``launcher`` key), before anything is written; the dry run makes the same check."""

    @abstractmethod
    def run(self, launch: Launch) -> Outcome:
        """Run, or submit, the runs of ``launch.plan``, each step once the steps it needs are done.

        Raises :class:`~hplandscape.errors.RunFailure` when the prune step failed (the pruned runs
        cannot start).
        """

    @abstractmethod
    def follow(self, launch: Launch, outcome: Outcome) -> None:
        """After :meth:`run`: follow what it left running, when ``launch.wait`` asks (a runner that
        returned with its runs done has nothing to follow)."""

    @abstractmethod
    def where(self, config, max_parallel: int, plan) -> str:
        """Where the jobs of a sweep run, one line for the dry run's header."""

    def finishes(self, wait: bool) -> bool:
        """Whether a sweep returns with its runs ended (``--extend`` then goes on to the next round);
        a runner that only submits finishes only when it follows (``wait``)."""
        return True


def runner_class(name: str) -> type:
    """The :class:`Runner` subclass registered as ``name``.

    Raises
    ------
    UserError
        ``name`` is not registered; the message lists the executors that are.
    """
    try:
        target = _RUNNERS[name]
    except (KeyError, TypeError):
        raise UserError(f"unknown executor {name!r}; available: {', '.join(_RUNNERS)}") from None
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    return target


def get_runner(name: str) -> Runner:
    """A new runner for the executor ``name`` (``UserError`` when it is not registered)."""
    return runner_class(name)(name)


def register_runner(name: str, runner) -> None:
    """Register ``runner`` (a :class:`Runner` subclass, or ``"module:Class"`` imported when first
    used) as the executor ``name``.

    Raises
    ------
    ValueError
        ``name`` is taken (a registry never replaces an entry silently) or is not a plain name.
    TypeError
        ``runner`` is neither a ``Runner`` subclass nor a ``"module:Class"`` string.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"an executor name must be a plain word, got {name!r}")
    if name in _RUNNERS:
        raise ValueError(f"executor {name!r} is already registered ({_RUNNERS[name]!r})")
    if not (isinstance(runner, str) and ":" in runner) and not (isinstance(runner, type) and issubclass(runner, Runner)):
        raise TypeError(f"executor {name!r}: expected a Runner subclass or 'module:Class', got {runner!r}")
    _RUNNERS[name] = runner


def unregister_runner(name: str) -> None:
    """Remove an executor added by :func:`register_runner` (the built-in ones stay)."""
    if name in _BUILTIN:
        raise ValueError(f"executor {name!r} is built in and cannot be removed")
    _RUNNERS.pop(name, None)
