"""The pruning step of a study: the pruned architecture of every pruned condition (method §5).

:func:`make_pruning_specs` is a plain function: the local runner calls it in process, the SLURM
runner submits it as a job that depends on the pruning source's job. It ranks filters (or, for
unstructured conditions, weights) by the magnitudes of the basemodel trained at the prior
(``pruning.source: trained``, its ``model.pt``) or of a random He init seeded with the first seed
(``random``), and stores per condition through the study store: an
:class:`~hplandscape.pruning.arch_spec.ArchSpec` for a structured condition (plus, when it fine-tunes, the
trained filters it keeps), a :class:`~hplandscape.pruning.mask_spec.MaskSpec` and its masks for an
unstructured one.
"""

from __future__ import annotations

from pathlib import Path

from hplandscape.errors import RunFailure
from hplandscape.pruning.methods import get_method
from hplandscape.store.study_store import RunState, StudyStore, set_aside
from hplandscape.study.runs import source_run


def stored_arch(store: StudyStore, config, condition):
    """The stored architecture of a pruned condition when it was made for this config (model,
    method, ratio, ranking source and the method's settings, e.g. global pruning's normaliser and
    layer cap; a fine-tuned condition also needs its start weights), else None."""
    if condition.sparse:
        return stored_masks(store, config, condition)
    if condition.finetune and not store.start_weights_path(condition.name).exists():
        return None
    spec = _read_or_none(store.read_arch, condition.name)
    if spec is None:
        return None
    want_source = _source_prefix(config)
    ok = (spec.model == config.model and spec.method == condition.method
          and abs(spec.target_ratio - condition.ratio) < 1e-9 and spec.source.startswith(want_source)
          # the method's settings (global: normaliser and cap; a spec without them predates them)
          and get_method(condition.method).stored_settings_match(spec, config.pruning))
    return spec if ok else None


def _read_or_none(read, name: str):
    """A stored spec, or None when it is absent, damaged or foreign (it is made again, not trusted)."""
    try:
        return read(name)
    except Exception:
        return None


def _source_prefix(config) -> str:
    """How the ``source`` of a spec made for this config's pruning source begins."""
    return "checkpoint:" if config.pruning.source == "trained" else "random-init"


def stored_masks(store: StudyStore, config, condition):
    """The stored MaskSpec of an unstructured condition when it was made for this config (model,
    method, density, ranking source, the seed of random positions, the method's settings: the floor
    or ζ), else None."""
    spec = _read_or_none(store.read_mask_spec, condition.name)
    if spec is None:
        return None
    want_source = _source_prefix(config)
    p = config.pruning
    return spec if (spec.model == config.model and spec.method == condition.method
                    and abs(spec.target_density - condition.ratio) < 1e-9 and spec.source.startswith(want_source)
                    and spec.mask_seed in (None, config.seeds[0])
                    # the method's settings (the floor, SET's ζ), as its registry entry checks them
                    and get_method(condition.method).stored_settings_match(spec, p)) else None


def conditions_to_prune(store: StudyStore, config) -> list:
    """The pruned conditions that have no valid stored architecture (or masks) yet."""
    return [c for c in config.conditions if c.pruned and stored_arch(store, config, c) is None]


def make_pruning_specs(config, study_dir, *, prune_fn=None, mask_fn=None) -> list[str]:
    """Prune every pruned condition that has no valid architecture (or masks) yet and store it.

    Parameters
    ----------
    config : StudyConfig
    study_dir : str or Path
    prune_fn : callable, optional
        Replacement for :func:`hplandscape.pruning.structured.prune` (tests); must take its keyword
        arguments (``normalizer`` and ``max_layer_prune`` included) and return an ArchSpec.
    mask_fn : callable, optional
        Replacement for :func:`hplandscape.pruning.unstructured.make_masks` (tests); must take its keyword
        arguments and return ``(MaskSpec, masks)``.

    Returns
    -------
    list of str
        The spec files written.

    Raises
    ------
    RunFailure
        The trained source is needed but missing, failed or diverged (the message names the file
        to read).
    """
    store = StudyStore(study_dir)
    missing = conditions_to_prune(store, config)
    if not missing:
        return []
    if config.model_source is not None:  # a job on another node: the user's model, registered as the CLI did
        from hplandscape.models.imported import use_source

        use_source(config.model_source)
    source = _source_weights(store, config) if config.pruning.source == "trained" else None
    if prune_fn is None:
        from hplandscape.pruning.structured import prune as prune_fn
    if mask_fn is None and any(c.sparse for c in missing):
        from hplandscape.pruning.unstructured import make_masks as mask_fn
    from hplandscape.training.data import dataset_info

    info = dataset_info(config.data)
    shape = (info.in_channels, info.image_size, info.image_size)
    common = dict(num_classes=info.num_classes, in_channels=info.in_channels, input_shape=shape, source=source,
                  seed=config.seeds[0])
    from hplandscape.models.weights import UnreadableWeights  # late: torch

    written = []
    try:
        for c in missing:
            written += _prune_one(store, config, c, prune_fn, mask_fn, common, source)
    except UnreadableWeights as e:
        if source is not None and e.path == source:
            raise _damaged_source(store, config, source, e) from None
        raise
    return written


def _prune_one(store: StudyStore, config, c, prune_fn, mask_fn, common: dict, source) -> list:
    """Prune one condition and store its architecture (or masks); the files written."""
    if c.sparse:
        spec, masks = mask_fn(config.model, c.method, c.ratio, layer_floor=config.pruning.sparse_layer_floor,
                              zeta=config.pruning.set_zeta, **common)
        return [str(store.write_masks(c.name, spec, masks))]
    spec = prune_fn(config.model, c.method, c.ratio, normalizer=config.pruning.normalizer,
                    max_layer_prune=config.pruning.max_layer_prune, **common)
    if c.finetune:  # before the spec: a stored spec of a fine-tuned condition implies its weights
        from hplandscape.pruning.structured import pruned_source

        store.write_start_weights(c.name, spec, pruned_source(spec, source))
    return [str(store.write_arch(c.name, spec))]


def _source_weights(store: StudyStore, config) -> str:
    run_id = source_run(config).run_id
    state, _ = store.read_record(run_id)
    weights = store.model_path(run_id)
    if state is RunState.DIVERGED:
        raise RunFailure(f"the basemodel at the prior ({run_id}) diverged, so its weights cannot "
                         f"rank filters; see {store.record_path(run_id)}. Use pruning.source: "
                         "random or a prior that trains.")
    if not state.finished or not weights.exists():
        err = store.read_error(run_id)
        where = err.get("traceback") if err else store.run_dir(run_id)
        raise RunFailure(f"pruned conditions need the trained basemodel at the prior ({run_id}) "
                         f"but {weights} is missing; see {where}. If its record exists without "
                         f"weights, delete {store.record_path(run_id)} and sweep again.")
    return str(weights)


def _damaged_source(store: StudyStore, config, source: str, error) -> RunFailure:
    """Set a damaged pruning source and its record aside (kept for inspection), so that the next
    sweep trains the basemodel at the prior again; the failure says so."""
    run_id = source_run(config).run_id
    kept = set_source_aside(store, config)
    return RunFailure(f"the pruning source {source} is damaged ({error}); it and its record were set aside as "
                      f"{', '.join(str(k) for k in kept)}. Re-run the same sweep: it trains the basemodel at the "
                      f"prior ({run_id}) again, then the pruned conditions.")


def set_source_aside(store: StudyStore, config) -> list:
    """Rename the pruning source's weights and record to ``*.corrupt-<time>`` (kept), so that the
    basemodel at the prior is planned and trained again; the new names."""
    run_id = source_run(config).run_id
    return [set_aside(p) for p in (store.model_path(run_id), store.record_path(run_id)) if p.exists()]


def damaged_source(store: StudyStore, config):
    """The error of reading the trained pruning source, when the prune step will read it and it
    cannot be read; else None.

    A sweep asks before it writes anything, so that its dry run can say what it will do: set the
    source and its record aside (:func:`set_source_aside`) and train the basemodel at the prior
    again before pruning, instead of failing at the prune step. Imports torch.

    Raises
    ------
    UserError
        The file is readable but holds another architecture than the study's (as pruning would).
    """
    if config.pruning.source != "trained" or not conditions_to_prune(store, config):
        return None
    run_id = source_run(config).run_id
    weights = store.model_path(run_id)
    if not store.read_record(run_id)[0].finished or not weights.exists():
        return None  # trained first by this sweep, or named by _source_weights at the prune step
    from hplandscape.models.weights import UnreadableWeights, load_weights  # late: torch

    try:
        load_weights(weights, expected_model=config.model)
    except UnreadableWeights as e:
        return e
    return None
