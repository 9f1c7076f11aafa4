"""hplandscape: hyperparameter-landscape grid studies of pruned neural networks.

When a network is pruned, do its best learning rate and weight decay move, and what is lost by
not re-tuning? A study trains one run per (condition, lr × wd grid point, seed), then fits
confidence ellipses to the near-optimal regions and computes the performance risk of keeping the
unpruned model's hyperparameters.

One package per layer, data flowing one way (see ``docs/architecture.md``)::

    study (config, grid, runs) -> run (preflight, plan, runner, worker) -> training (engines)
        -> store (records, results table) -> analysis -> plots -> report; pruning and models below
"""

#: The one place the version is written: ``setup.cfg`` reads it (``version = attr:``), and
#: ``hplandscape --version`` reports the installed metadata, falling back to this.
__version__ = "0.1.0"
