"""Running a study: check, plan, hand the plan to a runner, follow it, and the worker side of a job.

- :mod:`~hplandscape.run.sweep` — one sweep call: arguments → store → plan → runner → summary;
- :mod:`~hplandscape.run.preflight` — what only this machine can tell, checked before anything is
  written;
- :mod:`~hplandscape.run.plan` — the frozen plan of what is left and the method's phase order;
- :mod:`~hplandscape.run.extend` — grid extension rounds (``sweep --extend``);
- :mod:`~hplandscape.run.runners` — the runner interface and the executors by name;
  :mod:`~hplandscape.run.local_runner` (local, debug) and :mod:`~hplandscape.run.slurm_runner`;
- :mod:`~hplandscape.run.executors` — submitit executors and SLURM queries;
- :mod:`~hplandscape.run.worker` — what runs inside a job (:class:`RunJob`);
- :mod:`~hplandscape.run.prune_step` — the prune step of a study (specs, masks, start weights);
- :mod:`~hplandscape.run.status` — counts and grid maps per condition, followed live.
"""
