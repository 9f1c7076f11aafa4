"""hplandscape: hyperparameter-landscape grid studies of pruned neural networks.

When a network is pruned, do its best learning rate and weight decay move, and what is lost by
not re-tuning? A study trains one run per (condition, lr × wd grid point, seed), then fits
confidence ellipses to the near-optimal regions and computes the performance risk of keeping the
unpruned model's hyperparameters.

The pipeline, one module per concept (see ``docs/architecture.md``)::

    config -> grid -> spec -> train (launch, sweep, store) -> results -> analysis -> plots -> report
"""

#: The one place the version is written: ``setup.cfg`` reads it (``version = attr:``), and
#: ``hplandscape --version`` reports the installed metadata, falling back to this.
__version__ = "0.1.0"
