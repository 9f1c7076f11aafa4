"""Pruning: which methods exist, what a pruned network is, and how it is made (method §5).

- :mod:`~hplandscape.pruning.methods` — the registry of pruning methods (no torch): each method's
  kind, how it makes its spec, its settings;
- :mod:`~hplandscape.pruning.arch_spec` — a structurally pruned architecture (per-layer widths) and
  its JSON file; :mod:`~hplandscape.pruning.mask_spec` — an unstructured condition's masks,
  described;
- :mod:`~hplandscape.pruning.structured` — L1 filter pruning to a FLOPs budget (uniform, global);
- :mod:`~hplandscape.pruning.unstructured` — weight masks (magnitude, random, SET) held through
  training; :mod:`~hplandscape.pruning.set_topology` — SET's prune-and-regrow step between epochs.
"""
