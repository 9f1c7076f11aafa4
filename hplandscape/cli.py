"""Command-line interface: argument parsing only; every subcommand calls the public API.

Exit codes: 0 success, 2 bad input (the message names the culprit, no traceback), 1 runtime
failure (the message names the log to read).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from hplandscape.choices import (COLOUR_SCALES, DEFAULT_DPI, DPI_RANGE, ENGINES, FIGURE_FORMATS, METRICS, WATCH_S,
                                 executor_names)
from hplandscape.errors import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, RunFailure, Terminated, UserError
from hplandscape.pruning.arch_spec import DEFAULT_MAX_LAYER_PRUNE, DEFAULT_NORMALIZER
from hplandscape.pruning.arch_spec import METHODS as PRUNING_METHODS
from hplandscape.pruning.arch_spec import NORMALIZERS


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))


def _study_config(args, command: str):
    """The study config of ``args.config`` (default: the quickstart) with ``args.overrides`` applied."""
    from hplandscape.study.loading import load_quickstart, load_study
    from hplandscape.study.overrides import split_config

    path, overrides = split_config(args.config, args.overrides)
    if path is None and command == "grid":
        raise UserError(f"grid: give the study YAML before its overrides, e.g. `hplandscape grid "
                        f"grids/quickstart.yaml {' '.join(overrides)}`")
    return load_quickstart(overrides) if path is None else load_study(path, overrides)


# -- subcommands ------------------------------------------------------------------------------


def cmd_models(args) -> int:
    from hplandscape.models import list_models, model_info

    infos = [model_info(name) for name in list_models()]
    if args.json:
        _print_json({"models": [{"name": i.name, "params": i.params, "flops": i.flops,
                                 "input_shape": list(i.input_shape)} for i in infos]})
        return EXIT_OK
    print(f"{'model':<24}{'params':>14}{'FLOPs':>14}  input")
    for i in infos:
        shape = "×".join(str(s) for s in i.input_shape)
        print(f"{i.name:<24}{i.params / 1e6:>12.3f} M{i.flops:>14.3e}  {shape}")
    print("FLOPs = 2 × multiply-accumulates of conv and linear layers, at the input shape shown.")
    return EXIT_OK


def cmd_grid(args) -> int:
    from hplandscape.study.grid import make_grid

    config = _study_config(args, "grid")
    points = make_grid(config.grid)
    if args.json:
        _print_json({"study": config.name, "points": [p.to_dict() for p in points]})
        return EXIT_OK
    print(f"{config.name}: {len(points)} grid points "
          f"({len(config.grid.log10_lr_values())} lr × {len(config.grid.log10_wd_values())} wd)")
    print(f"{'lr':>12}{'wd':>12}{'log10 lr':>10}{'log10 wd':>10}")
    for p in points:
        print(f"{p.lr:>12.4g}{p.wd:>12.4g}{p.log10_lr:>10.2f}{p.log10_wd:>10.2f}")
    return EXIT_OK


def cmd_sweep(args) -> int:
    from hplandscape.run.sweep import run_sweep
    from hplandscape.store.layout import default_study_dir
    from hplandscape.store.study_store import StudyStore

    config = _study_config(args, "sweep")
    study_dir = Path(args.study_dir) if args.study_dir else default_study_dir(config.name)
    summary = run_sweep(config, study_dir, executor=args.executor, max_parallel=args.max_parallel,
                        dry_run=args.dry_run, force=args.force, engine=args.engine,
                        extend=args.extend, progress=not args.no_progress, wait=args.wait,
                        estimate=args.estimate)
    print(summary.describe())
    if args.dry_run or (summary.job_ids and not args.wait):
        return EXIT_OK  # what was asked is done: the plan shown, or the jobs submitted
    if not summary.finished:
        raise RunFailure(summary.incomplete())
    if args.no_report:
        from hplandscape.store.results import collect

        collect(study_dir)
        print(f"Results table: {StudyStore(study_dir).results_csv}")
        return EXIT_OK
    from hplandscape.report.study_report import write_report

    report = write_report(study_dir)
    print(f"Report: {report}")
    return EXIT_OK


def cmd_status(args) -> int:
    from hplandscape.run.status import follow, study_status
    from hplandscape.store.study_store import StudyStore
    store = StudyStore.open(args.study_dir)
    if args.follow:
        status = follow(store, interval=args.interval)
        print(status.render())
        if not status.complete:
            raise RunFailure(f"nothing is running or queued for {store.root} any more, but "
                             f"{status.total - status.finished} of {status.total} runs are not finished "
                             "(failed or missing: see above); re-run `hplandscape sweep` to retry them")
        return EXIT_OK
    status = study_status(store)
    if args.json:
        _print_json(status.to_json())
    else:
        print(status.render())
    return EXIT_OK


def cmd_collect(args) -> int:
    from hplandscape.store.results import collect
    from hplandscape.store.study_store import StudyStore
    table = collect(args.study_dir, out=args.out, format=args.format)
    out = args.out or StudyStore(args.study_dir).results_path(args.format)
    print(f"{len(table)} runs -> {out}")
    return EXIT_OK


def cmd_analyze(args) -> int:
    from hplandscape import analysis

    table = analysis.load_results(args.source)
    result = analysis.analyze(table, xs=args.x and tuple(args.x), k=args.k, base=args.base, n_boot=args.n_boot,
                              metric=args.metric)
    from hplandscape.store.layout import check_dir_target, output_dir
    out_dir = check_dir_target(args.out or output_dir(args.source, "analysis"), "the analysis folder")
    written = analysis.write_tables(result, out_dir)
    if args.json:
        _print_json(analysis.to_json(result))
    else:
        print(analysis.format_tables(result))
        print("Tables: " + ", ".join(str(p) for p in written))
    return EXIT_OK


def cmd_report(args) -> int:
    options = dict(xs=args.x and tuple(args.x), k=args.k, n_boot=args.n_boot, base=args.base, metric=args.metric,
                   scale=args.color_scale, formats=args.format, dpi=args.dpi)
    if args.watch is not None and (len(args.source) > 1 or args.json):
        raise UserError("report --watch follows one study directory as it runs (no --json, no several sources)")
    if len(args.source) > 1:
        from hplandscape.report.multi_study import make_multi_report

        report = make_multi_report(args.source, out_dir=args.out, **options)
        if args.json:
            _print_json(report.to_json())
        else:
            print(f"Report over {len(args.source)} studies: {report.index}")
        return EXIT_OK
    if args.watch is not None:
        from hplandscape.report.watch import watch_report

        return watch_report(args.source[0], args.out, args.watch, report_kw=options)
    from hplandscape.analysis import to_json
    from hplandscape.report.study_report import make_report

    report = make_report(args.source[0], out_dir=args.out, **options)
    if args.json:
        _print_json({"report": str(report.index), "summary": str(report.summary),
                     "figures": [str(p) for p in report.figures], "tables": [str(p) for p in report.tables],
                     **to_json(report.result)})
    else:
        print(f"Report: {report.index}")
    return EXIT_OK


def cmd_export(args) -> int:
    from hplandscape.interop.optuna_storage import to_optuna  # late: pandas
    from hplandscape.interop.parquet_file import to_parquet
    from hplandscape.interop.tensorboard_logs import has_curves, to_tensorboard  # torch only when it writes

    if not (args.optuna or args.parquet or args.tensorboard):
        raise UserError("export: nothing to write; give --optuna sqlite:///FILE.db, --parquet FILE.parquet "
                        "and/or --tensorboard DIR")
    if args.parquet:
        path = to_parquet(args.source, args.parquet)
        print(f"Parquet: {path}")
    if args.optuna:
        names = to_optuna(args.source, args.optuna, prefix=args.name, overwrite=args.overwrite)
        print(f"Optuna: {len(names)} studies in {args.optuna}: {', '.join(names)}")
        print(f"  open them with optuna.load_study(study_name=..., storage={args.optuna!r}) "
              f"or `optuna-dashboard {args.optuna}`")
    if args.tensorboard:
        runs = to_tensorboard(args.source, args.tensorboard, overwrite=args.overwrite)
        what = "per-epoch curves and HParams" if has_curves(args.source) else \
            "HParams and final metrics only (a results table has no per-epoch curves: export the study directory)"
        print(f"TensorBoard: {len(runs)} runs in {args.tensorboard} ({what})")
        print(f"  open them with `tensorboard --logdir {args.tensorboard}` (the HParams tab shows the grid)")
    return EXIT_OK


def cmd_prune(args) -> int:
    from hplandscape.models import declares_groups
    from hplandscape.models.graph_groups import graph_groups
    from hplandscape.pruning.structured import prune_model
    from hplandscape.store.layout import check_file_target
    if args.out:  # before the pruning: its result must have somewhere to go
        check_file_target(args.out, "the spec file", example="spec.json")
    from hplandscape.user_code import is_import_path
    if is_import_path(args.model):  # your own: on PYTHONPATH or in the working directory
        from hplandscape.models.imported import locate_model
        locate_model(args.model, os.getcwd())
    shape = None if args.input_size is None else (args.in_channels or 3, args.input_size, args.input_size)
    spec, model = prune_model(args.model, args.method, args.ratio, num_classes=args.num_classes,
                              in_channels=args.in_channels, input_shape=shape, source=args.source, seed=args.seed,
                              normalizer=args.normalizer, max_layer_prune=args.max_layer_prune)
    summary = spec.summary()
    if not declares_groups(model):  # the dependency graph's groups: say which layers each width carries
        tied = {g.key: [m for m in g.members if m != g.key] for g in graph_groups(model, spec.input_shape)}
        for layer in summary["layers"]:
            layer["tied_layers"] = tied.get(layer["name"], [])
    if args.out:
        from hplandscape.pruning.arch_spec import save_spec

        save_spec(spec, args.out)
    if args.json:
        _print_json(summary)
        return EXIT_OK
    o, p = summary["original"], summary["pruned"]
    print(f"{summary['model']}  {summary['method']} pruning to {summary['target_ratio']:.0%} of FLOPs")
    print(f"  original: {o['params'] / 1e6:.3f} M params, {o['flops']:.3e} FLOPs")
    print(f"  pruned:   {p['params'] / 1e6:.3f} M params, {p['flops']:.3e} FLOPs "
          f"(achieved ratio {summary['achieved_ratio']:.4f})")
    print(f"  importance source: {summary.get('source', '?')}")
    if spec.normalizer is not None:
        print(f"  importance normalizer: {spec.normalizer}; no layer loses more than "
              f"{spec.max_layer_prune:.0%} of its channels")
    print(f"  {'layer':<40}{'original':>10}{'kept':>8}{'fraction':>10}")
    for layer in summary["layers"]:
        print(f"  {layer['name']:<40}{layer['original_channels']:>10}{layer['kept_channels']:>8}"
              f"{layer['kept_fraction']:>10.3f}"
              + (f"   (with {', '.join(layer['tied_layers'])})" if layer.get("tied_layers") else ""))
    print(f"  minimum kept fraction: {summary['min_kept_fraction']:.3f}"
          + ("" if spec.layers_at_cap is None else f"; {len(spec.layers_at_cap)} of {len(spec.widths)} layers at the cap"))
    if args.out:
        print(f"Spec written to {args.out}")
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def _ratio(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1], got {text!r}") from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"must be the fraction of FLOPs kept, in (0, 1], got {text!r}")
    return v


def _layer_cap(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"must be the largest fraction of one layer's channels that may be "
                                         f"removed, in (0, 1), got {text!r}")
    return v


class _Version(argparse.Action):
    """``--version``: read only when asked (package metadata costs a scan of the installed packages)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from hplandscape.provenance import git_state, package_version

        commit, dirty = git_state()
        where = "" if commit is None else f" (git {commit[:10]}{', with local changes' if dirty else ''})"
        print(f"hplandscape {package_version()}{where}")
        parser.exit()


_OVERRIDES_HELP = ("overrides of config keys, applied before validation, e.g. train.epochs=3 'seeds=[0, 1, 2]' "
                   "grid.size=[3,3] conditions[1].ratio=0.4 (VALUE is YAML; see README, Overrides)")


def _add_config(s: argparse.ArgumentParser, optional: bool) -> None:
    """The study YAML and its KEY=VALUE overrides (the first positional may be an override when
    the config is optional: ``sweep train.epochs=3`` runs the quickstart)."""
    if optional:
        s.add_argument("config", nargs="?",
                       help="study YAML, e.g. grids/resnet56_cifar10.yaml; omitted: the embedded quickstart study")
    else:
        s.add_argument("config", help="study YAML, e.g. grids/resnet56_cifar10.yaml")
    s.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=_OVERRIDES_HELP)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hplandscape",
        description="Hyperparameter-landscape grid studies of pruned neural networks.",
        epilog="`hplandscape COMMAND --help` describes a command. Exit codes: 0 success, 2 bad input, "
               "1 a runtime failure (the message names the log).")
    p.add_argument("--version", action=_Version, help="print the version (and git commit) and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("models", help="registered architectures with parameters and FLOPs")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("grid", help="the grid points of a study")
    _add_config(s, optional=False)
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_grid)

    s = sub.add_parser("sweep", help="run every missing run of a study (default: the embedded quickstart)")
    _add_config(s, optional=True)
    s.add_argument("--study-dir", help="where results go (default: studies/<study name>)")
    s.add_argument("--executor", choices=executor_names(),
                   help="overrides launcher.executor of the config")
    s.add_argument("--engine", choices=ENGINES,
                   help="overrides launcher.engine of the config")
    s.add_argument("--max-parallel", type=_positive_int, help="jobs running at once (local executor)")
    s.add_argument("--dry-run", action="store_true",
                   help="make every check the sweep makes, then print what would run and where; run and write nothing")
    s.add_argument("--estimate", action="store_true",
                   help="with --dry-run: time a few training steps of each architecture on the configured device "
                        "and print what the runs will cost (compute hours, wall time)")
    s.add_argument("--extend", action="store_true",
                   help="extend the grid where the near-optimal region touches its edge, run only new points")
    s.add_argument("--force", action="store_true",
                   help="accept a study directory made from a different config (its records are kept)")
    s.add_argument("--wait", action="store_true",
                   help="with --executor slurm: follow the submitted jobs to the end, then report")
    s.add_argument("--no-report", action="store_true", help="stop after the results table")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("status", help="per-condition counts of done/running/failed/missing/diverged runs")
    s.add_argument("study_dir", metavar="STUDY_DIR", help="a study directory (made by `hplandscape sweep`)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--follow", action="store_true", help="show a progress bar until the study is complete")
    s.add_argument("--interval", type=_positive_float, default=5.0,
                   help="seconds between refreshes with --follow (default 5)")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("collect", help="one results table with a row per run")
    s.add_argument("study_dir", metavar="STUDY_DIR", help="a study directory (made by `hplandscape sweep`)")
    s.add_argument("--out", help="output path (default: STUDY_DIR/results.csv or results.parquet)")
    s.add_argument("--format", choices=["csv", "parquet"], default="csv",
                   help="file format of the table: csv (default) or parquet (typed columns, for pandas/pyarrow)")
    s.set_defaults(func=cmd_collect)

    for name, func, helptext in (("analyze", cmd_analyze, "ROIs, confidence ellipses and performance risk"),
                                 ("report", cmd_report, "self-contained HTML report and Markdown summary; "
                                                        "several sources: one report over all of them")):
        s = sub.add_parser(name, help=helptext)
        if name == "report":
            s.add_argument("source", nargs="+", help="study directories or results CSVs; two or more give one "
                                                     "report over all (pooled risk, combined tables)")
        else:
            s.add_argument("source", help="a study directory or a results CSV")
        s.add_argument("--x", type=_positive_float, nargs="+", default=None,
                       help="ROI widths in accuracy points (default: the study's analysis.roi, else 0.5 1.0)")
        s.add_argument("--k", type=_positive_float, default=2.0, help="ellipse SDE multiplier (default 2)")
        s.add_argument("--out", help="output directory")
        s.add_argument("--n-boot", type=_positive_int, default=1999, metavar="B",
                       help="bootstrap resamples per condition for the intervals over seeds (default 1999, "
                            "at least 99)")
        s.add_argument("--base", help="name of the basemodel condition (default: the one with method none)")
        s.add_argument("--metric", choices=METRICS, default="top1",
                       help="the accuracy analysed (default top1; top5 where the records have it)")
        s.add_argument("--json", action="store_true", help="machine-readable output"
                       + (" (the analyze --json document plus the files written)" if name == "report" else ""))
        if name == "report":
            s.add_argument("--color-scale", choices=COLOUR_SCALES, default="condition",
                           help="landscape colours: each condition its own range (default), or one shared range "
                                "that still shows every condition's near-optimal band")
            s.add_argument("--format", default="png", metavar="FORMATS",
                           help=f"static figure formats, comma-separated from {','.join(FIGURE_FORMATS)} "
                                "(default png; svg and pdf are vector figures for a paper)")
            s.add_argument("--dpi", type=_positive_int, default=DEFAULT_DPI,
                           help=f"resolution of PNG figures (default {DEFAULT_DPI}, from {DPI_RANGE[0]} to "
                                f"{DPI_RANGE[1]})")
            s.add_argument("--watch", type=_positive_int, nargs="?", const=WATCH_S, default=None, metavar="SECONDS",
                           help=f"a study still running: rewrite the report whenever records land, every SECONDS "
                                f"(default {WATCH_S}) the page reloads itself; ends with exit 0 when every run "
                                "is recorded, 1 when nothing runs or waits any more")
        s.set_defaults(func=func)

    s = sub.add_parser("export", help="write the results as Optuna studies (one per condition), Parquet and/or "
                                      "TensorBoard logs")
    s.add_argument("source", help="a study directory or a results CSV/Parquet file")
    s.add_argument("--optuna", metavar="URL", help="Optuna storage URL, e.g. sqlite:///FILE.db")
    s.add_argument("--parquet", metavar="PATH", help="write the results table as Parquet here")
    s.add_argument("--tensorboard", metavar="DIR",
                   help="write one TensorBoard run per run (per-epoch curves from a study directory) and the "
                        "HParams data here; open with `tensorboard --logdir DIR`")
    s.add_argument("--name", help="Optuna study names are NAME/CONDITION (default: the study's name)")
    s.add_argument("--overwrite", action="store_true",
                   help="replace Optuna studies of the same names; write into a non-empty --tensorboard DIR "
                        "that is not an earlier export of this source (nothing an export did not write is deleted)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("prune", help="prune an architecture to a FLOPs budget and show the result")
    s.add_argument("model", help="registered architecture (see `hplandscape models`), or your own builder as "
                                 "package.module:function (on PYTHONPATH or in the working directory)")
    s.add_argument("--method", required=True, choices=PRUNING_METHODS,
                   help="uniform: every layer loses the same fraction of channels; global: channels of all "
                        "layers are ranked together")
    s.add_argument("--ratio", required=True, type=_ratio, help="fraction of FLOPs kept, in (0, 1]")
    s.add_argument("--source", help="trained weights (model.pt) for the L1 ranking; omitted: random He init")
    s.add_argument("--seed", type=int, default=0, help="seed of the random init when no --source")
    s.add_argument("--normalizer", choices=NORMALIZERS, default=DEFAULT_NORMALIZER,
                   help="global: per-layer normaliser of the L1 importance, torch-pruning's names; 'none' "
                        f"ranks the raw norms with one threshold (default: {DEFAULT_NORMALIZER})")
    s.add_argument("--max-layer-prune", type=_layer_cap, default=DEFAULT_MAX_LAYER_PRUNE,
                   help="global: largest fraction of one layer's channels that may be removed, in (0, 1) "
                        f"(default: {DEFAULT_MAX_LAYER_PRUNE}, every layer keeps ≥ 10 %%)")
    s.add_argument("--num-classes", type=_positive_int,
                   help="classifier outputs (default: from --source, else the model's own)")
    s.add_argument("--in-channels", type=_positive_int,
                   help="input channels (default: from --source, else 3)")
    s.add_argument("--input-size", type=_positive_int, help="square input side (default: the model's)")
    s.add_argument("--out", help="write the architecture spec (JSON) here")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_prune)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """Parse a command line; KEY=VALUE overrides may stand anywhere after the config.

    argparse reads the positionals of a command only before its first option, so the overrides
    after an option (``sweep CONFIG --dry-run seeds=[0]``) come back unrecognised; they join the
    command's overrides here, in order. Anything else unrecognised is an error, exit 2.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides"):
        # Not options: a malformed one is reported by the override parser, quoting it.
        args.overrides = [*args.overrides, *(x for x in extra if not x.startswith("-"))]
        extra = [x for x in extra if x.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv=None) -> int:
    """Run the CLI; returns the exit code."""
    args = parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"hplandscape: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunFailure as e:
        print(f"hplandscape: failed: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: not a failure of ours; silence the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Terminated as e:
        print(f"hplandscape: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("hplandscape: interrupted; finished runs are kept, re-run the same command to resume",
              file=sys.stderr)
        return 130
    except Exception:
        log = Path(tempfile.mkstemp(prefix="hplandscape-error-", suffix=".log")[1])
        log.write_text(traceback.format_exc())
        print(f"hplandscape: failed: {traceback.format_exc().splitlines()[-1]}\n"
              f"  full traceback: {log}", file=sys.stderr)
        return EXIT_RUNTIME
