"""Where a study's files are: the one place that names them (paths only; reading and writing them
is :mod:`hplandscape.store.study_store`'s).

A study directory holds the resolved config, the pruned conditions' specs, one folder per run and
the launcher logs::

    STUDY/study.yaml
    STUDY/specs/<condition>.json        ArchSpec (structured) or MaskSpec (unstructured)
    STUDY/specs/<condition>.masks.pt    the masks of an unstructured condition
    STUDY/specs/<condition>.weights.pt  what a fine-tuned structured condition starts from
    STUDY/runs/<condition>/<point.key>/seed<k>/{record.json, checkpoint.pt, model.pt, claim.json,
                                                error.json, error.log}
    STUDY/logs/
    STUDY/rounds.json                   the later rounds of an adaptive design (design.replicates)
    STUDY/results.csv, STUDY/analysis/, STUDY/report/   outputs, made again from the runs' files

An output path given by a user is checked here too: it may not replace the study's own files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hplandscape.errors import UserError
from hplandscape.path_checks import check_path


@dataclass(frozen=True)
class RunFiles:
    """The files of one run directory; the store names them and engines and jobs use these.

    Examples
    --------
    >>> RunFiles("/s/runs/base/lr-1.0000_wd-4.0000/seed0").checkpoint.name
    'checkpoint.pt'
    """

    dir: Path

    def __init__(self, directory):
        object.__setattr__(self, "dir", Path(directory))

    @property
    def record(self) -> Path:
        return self.dir / "record.json"

    @property
    def checkpoint(self) -> Path:
        """Per-epoch training state while the run is unfinished (deleted once the record is stored)."""
        return self.dir / "checkpoint.pt"

    @property
    def weights(self) -> Path:
        """Final weights (the basemodel at the prior: the pruning source)."""
        return self.dir / "model.pt"

    @property
    def claim(self) -> Path:
        return self.dir / "claim.json"

    @property
    def claim_lock(self) -> Path:
        return self.dir / ".claim.lock"

    @property
    def error(self) -> Path:
        return self.dir / "error.json"

    @property
    def error_log(self) -> Path:
        return self.dir / "error.log"


#: What a study directory holds that no output may replace: its config, its rounds and its runs' files.
STUDY_OWN = ("study.yaml", "rounds.json", "specs", "runs", "logs")


def check_not_study_file(path, what: str) -> Path:
    """``UserError`` when ``path`` is, or lies under, a study's own files (its ``study.yaml``,
    ``rounds.json``, ``specs/``, ``runs/``, ``logs/``): an output written there would destroy what the study
    computed. The study's results table, ``analysis/`` and ``report/`` are outputs, allowed.
    A path the file system cannot look up is refused first (:func:`check_path`)."""
    path = check_path(path, what)
    resolved = path.resolve()
    for folder in resolved.parents:
        if (folder / "study.yaml").is_file():
            first = resolved.relative_to(folder).parts[0]
            if first in STUDY_OWN:
                raise UserError(f"{what} {path} would overwrite the study's own files in {folder} "
                                f"({', '.join(STUDY_OWN)}); choose a path outside them")
            break
    return path


def check_dir_target(path, what: str) -> Path:
    """``path`` as a directory we may create or write into; ``UserError`` naming it when it, or one
    of its parents, is a file, or when it lies among a study's own files."""
    path = Path(path)
    check_not_study_file(path, what)
    for p in [path, *path.parents]:
        if p.exists() and not p.is_dir():
            where = "it" if p == path else f"its parent {p}"
            raise UserError(f"{what} {path} cannot be a directory: {where} is a file; choose another path")
    return path


def check_file_target(path, what: str, example: str = "results.csv") -> Path:
    """``path`` as a file we may write; ``UserError`` naming it when it is a directory (suggesting
    ``example`` in it), a parent is a file, or it is one of a study's own files."""
    path = Path(path)
    check_not_study_file(path, what)
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory; give a file name (e.g. {path / example})")
    check_dir_target(path.parent, f"the folder of {what}")
    return path


def default_study_dir(study_name: str) -> Path:
    """Where a study goes when no ``--study-dir`` is given: ``studies/<name>`` under the current
    directory."""
    return Path("studies") / study_name


def output_dir(source, kind: str) -> Path:
    """Default folder of ``analysis`` or ``report`` outputs for a study directory or a results file
    (next to the file)."""
    source = Path(source)
    store = StudyLayout(source if source.is_dir() else source.parent)
    return {"analysis": store.analysis_dir, "report": store.report_dir}[kind]


class StudyLayout:
    """Every path of one study directory, named once (nothing here touches the file system except
    :meth:`submitted_job_ids`, which lists the scheduler's files).

    Parameters
    ----------
    root : str or Path
        The study directory.
    """

    def __init__(self, root):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    @property
    def study_yaml(self) -> Path:
        return self.root / "study.yaml"

    @property
    def study_lock(self) -> Path:
        """Held while a sweep checks ``study.yaml`` against its config and writes it."""
        return self.root / ".study.lock"

    @property
    def rounds_json(self) -> Path:
        """The rounds an adaptive design decided after its first (``design.replicates: adaptive``)."""
        return self.root / "rounds.json"

    @property
    def rounds_lock(self) -> Path:
        """Held while a sweep reads ``rounds.json`` and appends a round to it."""
        return self.root / ".rounds.lock"

    @property
    def specs_dir(self) -> Path:
        return self.root / "specs"

    def spec_path(self, condition_name: str) -> Path:
        """The condition's ArchSpec (structured) or MaskSpec (unstructured)."""
        return self.specs_dir / f"{condition_name}.json"

    def masks_path(self, condition_name: str) -> Path:
        """The masks of an unstructured condition (described by its MaskSpec)."""
        return self.specs_dir / f"{condition_name}.masks.pt"

    def start_weights_path(self, condition_name: str) -> Path:
        """The trained filters a fine-tuned structured condition starts from."""
        return self.specs_dir / f"{condition_name}.weights.pt"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        parts = run_id.split("/")
        if len(parts) != 3 or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not a run id (condition/point/seedK): {run_id!r}")
        return self.runs_dir.joinpath(*parts)

    def files(self, run_id: str) -> RunFiles:
        """The files of one run (record, checkpoint, weights, claim, error)."""
        return RunFiles(self.run_dir(run_id))

    def record_path(self, run_id: str) -> Path:
        return self.files(run_id).record

    def checkpoint_path(self, run_id: str) -> Path:
        return self.files(run_id).checkpoint

    def model_path(self, run_id: str) -> Path:
        return self.files(run_id).weights

    def claim_path(self, run_id: str) -> Path:
        return self.files(run_id).claim

    def error_path(self, run_id: str) -> Path:
        return self.files(run_id).error

    def error_log_path(self, run_id: str) -> Path:
        return self.files(run_id).error_log

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def local_controllers_log(self) -> Path:
        """Output of the processes that supervise local jobs (kept off the user's terminal)."""
        return self.logs_dir / "local-controllers.log"

    def submitted_job_ids(self) -> list[str]:
        """Ids of the scheduler jobs submitted for this study (submitit leaves
        ``logs/<job id>_submitted.pkl`` behind for each)."""
        suffix = "_submitted.pkl"
        return sorted(p.name[:-len(suffix)] for p in self.logs_dir.glob(f"*{suffix}"))

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    def results_path(self, format: str = "csv") -> Path:
        """Where ``collect`` writes the results table in ``format`` (csv or parquet)."""
        return self.root / f"results.{format}"

    @property
    def analysis_dir(self) -> Path:
        return self.root / "analysis"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"
