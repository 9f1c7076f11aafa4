"""Training runs: the data, a run's set-up, checkpoints and life, and the two engines.

- :mod:`~hplandscape.training.data` — the datasets a study may name (:func:`load_data`);
- :mod:`~hplandscape.training.batches` — the in-memory batch pipeline they share;
- :mod:`~hplandscape.training.image_folder` — class folders of images, in memory or streamed,
  and the cache of their decoded arrays;
- :mod:`~hplandscape.training.user_data` — ``(train, test)`` from a loader of one's own;
- :mod:`~hplandscape.training.setup` — process, device, network, optimiser, seeds, fingerprint;
- :mod:`~hplandscape.training.checkpoints` — saving, loading and resuming a run's state;
- :mod:`~hplandscape.training.lifecycle` — a run's progress, what it carries, its evaluation, its
  record;
- :mod:`~hplandscape.training.sequential_engine` — one run at a time (:func:`train_run`);
- :mod:`~hplandscape.training.fused_engine` — many runs as one fused network (:func:`train_fused`),
  built by :mod:`~hplandscape.training.model_fusion`;
- :mod:`~hplandscape.training.gradient_flow` — effective gradient flow measured during training.
"""
