"""Export to Optuna (one study per condition), Parquet and TensorBoard: round trips and clear errors."""

import json
import math
import sys

import pandas as pd
import pytest
from conftest import run_cli, study_record, tiny_config

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results
from hplandscape.cli import main
from hplandscape.errors import UserError
from hplandscape.interop.optuna_storage import to_optuna
from hplandscape.interop.parquet_file import to_parquet
from hplandscape.interop.tensorboard_logs import HPARAMS, MANIFEST, run_name, to_tensorboard
from hplandscape.store.study_store import StudyStore
from hplandscape.study.grid import GridPoint

optuna = pytest.importorskip("optuna")


def _small():
    """Two conditions of the example on a 3×3 corner, two seeds, with a diverged and a failed run."""
    df = synthetic_results()
    df = df[df["condition"].isin(["base", "global-0.6"]) & (df["log10_lr"] >= -0.6) & (df["log10_wd"] >= -3.6)]
    df = df.reset_index(drop=True)
    failed = (df["condition"] == "global-0.6") & (df["log10_lr"] == -0.6) & (df["log10_wd"] == -3.6) & (df["seed"] == 1)
    df.loc[failed, "top1"] = float("nan")
    return df


def test_optuna_round_trip_keeps_every_value_and_attribute(tmp_path):
    df = _small()
    url = f"sqlite:///{tmp_path / 'out.db'}"
    names = to_optuna(df, url, prefix="demo")
    assert names == ["demo/base", "demo/global-0.6"]
    assert sorted(optuna.study.get_all_study_names(storage=url)) == sorted(names)
    got = []
    for name in names:
        study = optuna.load_study(study_name=name, storage=url)
        assert study.direction == optuna.study.StudyDirection.MAXIMIZE
        assert study.user_attrs["condition"] == name.split("/")[1]
        for t in study.get_trials(deepcopy=False):
            assert set(t.distributions) == {"lr", "wd"} and all(d.log for d in t.distributions.values())
            assert t.distributions["lr"].low == pytest.approx(df["lr"].min())
            assert t.distributions["wd"].high == pytest.approx(df["wd"].max())
            assert set(t.user_attrs) == {"seed", "flops", "params", "diverged", "round"}
            assert t.user_attrs["round"] == 1  # the example table has no round column: the first
            got.append({"condition": study.user_attrs["condition"], "method": study.user_attrs["method"],
                        "ratio": study.user_attrs["ratio"], "lr": t.params["lr"], "wd": t.params["wd"],
                        "seed": t.user_attrs["seed"], "top1": t.value, "state": t.state.name,
                        "diverged": t.user_attrs["diverged"], "flops": t.user_attrs["flops"],
                        "params": t.user_attrs["params"]})
    got = pd.DataFrame(got).sort_values(["condition", "lr", "wd", "seed"]).reset_index(drop=True)
    want = df.sort_values(["condition", "lr", "wd", "seed"]).reset_index(drop=True)
    assert len(got) == len(want) == 2 * 9 * 2
    for col in ("condition", "method", "seed", "diverged", "flops", "params"):
        assert got[col].tolist() == want[col].tolist(), col
    for col in ("ratio", "lr", "wd"):
        assert got[col].tolist() == pytest.approx(want[col].tolist(), rel=1e-15), col
    ok = want["top1"].notna()
    assert got.loc[ok, "top1"].tolist() == want.loc[ok, "top1"].tolist()
    assert (got.loc[ok, "state"] == "COMPLETE").all()
    assert got.loc[~ok, "state"].tolist() == ["FAIL"] and got.loc[~ok, "top1"].isna().all()
    assert got["diverged"].any()  # the example's diverged corner made it through
    # Optuna's own plots read it as a study it ran itself
    fig = optuna.visualization.plot_contour(optuna.load_study(study_name="demo/base", storage=url), params=["lr", "wd"])
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"


def test_optuna_refuses_to_overwrite_unless_asked(tmp_path):
    url = f"sqlite:///{tmp_path / 'out.db'}"
    df = _small()
    to_optuna(df, url, prefix="demo")
    with pytest.raises(UserError, match="'demo/base' already exists; pass --overwrite"):
        to_optuna(df, url, prefix="demo")
    to_optuna(df.assign(top1=df["top1"] + 1), url, prefix="demo", overwrite=True)
    best = optuna.load_study(study_name="demo/base", storage=url).best_value
    assert best == pytest.approx(df.loc[df["condition"] == "base", "top1"].max() + 1)


def test_bad_storage_url_is_a_user_error():
    with pytest.raises(UserError, match=r"'out\.db': cannot open this Optuna storage .* sqlite:///FILE\.db"):
        to_optuna(_small(), "out.db")


def test_parquet_round_trip_reads_back_with_load_results(tmp_path):
    df = _small()
    path = to_parquet(df, tmp_path / "r.parquet")
    back = analysis.load_results(path)
    want = analysis.load_results(df)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), want.reset_index(drop=True), check_like=False)
    assert not list(tmp_path.glob(".*tmp*"))


def test_cli_export_writes_both_and_names_the_studies(tmp_path, capsys):
    study = tmp_path / "mystudy"
    study.mkdir()
    _small().to_csv(study / "results.csv", index=False)
    url = f"sqlite:///{tmp_path / 'o.db'}"
    assert main(["export", str(study), "--optuna", url, "--parquet", str(tmp_path / "r.parquet")]) == 0
    out = capsys.readouterr().out
    assert "Optuna: 2 studies" in out and "mystudy/base" in out and "r.parquet" in out
    assert (tmp_path / "r.parquet").stat().st_size > 0
    assert main(["export", str(study), "--optuna", url]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(study)]) == 2
    assert "nothing to write" in capsys.readouterr().err


def test_export_without_optuna_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    csv = tmp_path / "results.csv"
    _small().to_csv(csv, index=False)
    assert main(["export", str(csv), "--optuna", f"sqlite:///{tmp_path / 'o.db'}"]) == 2
    err = capsys.readouterr().err
    assert "needs the optuna package" in err and "pip install optuna" in err
    assert not (tmp_path / "o.db").exists()


# -- TensorBoard ---------------------------------------------------------------------------------
# Read back with TensorBoard's own reader (the event multiplexer) and its HParams plugin's handlers,
# the code that fills the HParams table and parallel-coordinates view of `tensorboard --logdir DIR`.

DIVERGED = "uniform-0.5/lr-1.0000_wd-4.0000/seed1"


def _tb():
    return pytest.importorskip("tensorboard")


def _history(run_id, p, seed, diverged):
    """Three epochs of values that differ from run to run; the pruned condition's history also has
    a top-5 per epoch. A diverged run stops at epoch 1 with a null loss."""
    out = []
    for e in range(2 if diverged else 3):
        entry = {"epoch": e, "lr": p.lr * (1 - e / 3), "train_loss": 2.0 / (e + 1) + seed / 10 - p.log10_wd / 100,
                 "train_acc": 30.0 + 10 * e + seed + p.log10_lr, "val_acc": 35.0 + 9 * e + seed - p.log10_wd}
        if run_id.startswith("uniform"):
            entry["top5"] = entry["val_acc"] + 20
        if diverged and e == 1:
            entry["train_loss"] = None
        out.append(entry)
    return out


def _tb_study(root, name="tiny", conditions=None):
    """A finished 2 × 2 study (base and uniform-0.5, seeds 0 and 1) with per-epoch histories, one
    diverged run, and a top-5 in the pruned condition's records only."""
    config = tiny_config(name=name, seeds=[0, 1], **({"conditions": conditions} if conditions else {}))
    store = StudyStore(root)
    store.init_study(config)
    for i, run_id in enumerate(store.run_ids()):
        condition, key, seed = run_id.split("/")  # <condition>/lr-1.0000_wd-4.0000/seed<k>
        p, seed = GridPoint(*(float(part[2:]) for part in key.split("_"))), int(seed[4:])
        diverged = run_id == DIVERGED
        top1 = 10.0 if diverged else 60.0 + i + seed / 4
        store.write_record(run_id, study_record(
            config, run_id, top1, diverged=diverged, diverged_epoch=1 if diverged else None,
            top5=None if condition == "base" else top1 + 25, history=_history(run_id, p, seed, diverged)))
    return root


@pytest.fixture(scope="module")
def tb_study(tmp_path_factory):
    _tb()
    return _tb_study(tmp_path_factory.mktemp("tb") / "study")


def _records(study):
    return list(StudyStore(study).iter_records())


def _multiplexer(logdir):
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    mux = EventMultiplexer(tensor_size_guidance={"hparams": 0})
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    return mux


def _scalars(mux, run, tag):
    """[(step, value)] of a scalar as TensorBoard's Scalars dashboard reads it."""
    from tensorboard.util import tensor_util

    return [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in mux.Tensors(run, tag)]


def _scalar_tags(mux, run):
    return set(mux.PluginRunToTagToContent("scalars").get(run, {}))


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_tensorboard_has_one_run_per_record_with_its_curves_hparams_and_metrics(tb_study, tmp_path):
    from tensorboard.plugins.hparams import metadata

    logdir = tmp_path / "tb"
    records = _records(tb_study)
    assert len(records) == 16 and any(r["diverged"] for r in records)
    names = to_tensorboard(tb_study, logdir)
    assert names == [run_name(r["run_id"]) for r in records] and len(set(names)) == 16
    mux = _multiplexer(logdir)
    assert set(mux.Runs()) == {".", *names}  # the experiment at the top, one run per record, nothing else
    hparams_data = mux.PluginRunToTagToContent(metadata.PLUGIN_NAME)
    for record, name in zip(records, names):
        history = record["history"]
        tags = _scalar_tags(mux, name)
        top5 = record["top5"] is not None
        assert tags == ({"train/loss", "train/acc", "eval/top1", "lr", "final/top1", "final/diverged"}
                        | ({"eval/top5", "final/top5"} if top5 else set())), name
        for tag, key in (("train/loss", "train_loss"), ("train/acc", "train_acc"), ("eval/top1", "val_acc"),
                         ("lr", "lr")) + ((("eval/top5", "top5"),) if top5 else ()):
            events = _scalars(mux, name, tag)
            assert [step for step, _ in events] == [h["epoch"] for h in history], (name, tag)
            want = [math.nan if h[key] is None else h[key] for h in history]
            assert [v for _, v in events] == pytest.approx(want, rel=1e-6, nan_ok=True), (name, tag)
        if record["diverged"]:
            assert math.isnan(_scalars(mux, name, "train/loss")[-1][1])
        last = history[-1]["epoch"]
        finals = {tag: _scalars(mux, name, tag) for tag in tags if tag.startswith("final/")}
        assert finals["final/top1"] == [(last, pytest.approx(record["top1"], rel=1e-6))]
        assert finals["final/diverged"] == [(last, float(record["diverged"]))]
        if top5:
            assert finals["final/top5"] == [(last, pytest.approx(record["top5"], rel=1e-6))]
        # the HParams session: in the run's own folder, its group the run id, every hyperparameter
        content = hparams_data[name]
        assert set(content) == {metadata.SESSION_START_INFO_TAG, metadata.SESSION_END_INFO_TAG}
        start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
        assert start.group_name == record["run_id"]
        got = {k: (v.string_value if v.HasField("string_value") else v.number_value) for k, v in start.hparams.items()}
        assert got == {"condition": record["condition"], "method": record["method"],
                       "ratio": pytest.approx(record["ratio"]), "lr": pytest.approx(record["lr"], rel=1e-12),
                       "wd": pytest.approx(record["wd"], rel=1e-12), "log10_lr": record["log10_lr"],
                       "log10_wd": record["log10_wd"], "seed": record["seed"], "pipeline": "retrain"}
        end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
        assert end.status == 1  # STATUS_SUCCESS: a diverged run is a result
    # the experiment: written once, at the top; every hyperparameter with its domain, the metrics
    assert [run for run, tags in hparams_data.items() if metadata.EXPERIMENT_TAG in tags] == ["."]
    experiment = metadata.parse_experiment_plugin_data(hparams_data["."][metadata.EXPERIMENT_TAG])
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == set(HPARAMS) == {"condition", "method", "ratio", "lr", "wd", "log10_lr", "log10_wd",
                                          "seed", "pipeline"}
    assert [v.string_value for v in infos["condition"].domain_discrete.values] == ["base", "uniform-0.5"]
    assert [v.number_value for v in infos["seed"].domain_discrete.values] == [0, 1]
    assert [v.number_value for v in infos["ratio"].domain_discrete.values] == [0.5, 1.0]
    lrs = [r["lr"] for r in records]
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == (min(lrs), max(lrs))
    assert [m.name.tag for m in experiment.metric_infos] == ["final/top1", "final/top5", "final/diverged"]
    assert [m.display_name for m in experiment.metric_infos] == ["top1", "top5", "diverged"]
    manifest = json.loads((logdir / MANIFEST).read_text())
    assert manifest["runs"] == names and manifest["source"] == str(tb_study.resolve()) and manifest["curves"]
    assert not [p for p in logdir.iterdir() if p.name.startswith(".")]  # no staging folder left behind


#: TensorBoard's web code imports its vendored bleach, which warns about html5lib's sanitizer.
VENDORED_WARNING = "ignore:html5lib's sanitizer is deprecated:DeprecationWarning"


def _hparams_dashboard(logdir):
    """(experiment, session groups) as the HParams dashboard asks TensorBoard's HParams plugin for them:
    through the plugin's HTTP routes (``/experiment``, ``/session_groups``)."""
    from google.protobuf import json_format
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, hparams_plugin
    from werkzeug.test import Client

    tb_context = base_plugin.TBContext(data_provider=MultiplexerDataProvider(_multiplexer(logdir), str(logdir)),
                                       logdir=str(logdir))
    routes = hparams_plugin.HParamsPlugin(tb_context).get_plugin_apps()

    def ask(route, request, response):
        got = Client(routes[route]).post(route, data=json.dumps(request), content_type="application/json")
        assert got.status_code == 200, got.get_data(as_text=True)
        return json_format.Parse(got.get_data(as_text=True), response, ignore_unknown_fields=True)

    experiment = ask("/experiment", {}, api_pb2.Experiment())
    groups = ask("/session_groups", {"startIndex": 0, "sliceSize": 10_000,
                                     "allowedStatuses": ["STATUS_SUCCESS", "STATUS_UNKNOWN"]},
                 api_pb2.ListSessionGroupsResponse())
    return experiment, groups


@pytest.mark.filterwarnings(VENDORED_WARNING)
def test_the_hparams_dashboard_lists_every_run_with_its_hparams_and_metrics(tb_study, tmp_path):
    records = _records(tb_study)
    to_tensorboard(tb_study, tmp_path / "tb")
    experiment, groups = _hparams_dashboard(tmp_path / "tb")
    assert {h.name for h in experiment.hparam_infos} == set(HPARAMS)
    assert {m.name.tag for m in experiment.metric_infos} == {"final/top1", "final/top5", "final/diverged"}
    assert groups.total_size == len(records) == 16
    by_name = {g.name: g for g in groups.session_groups}
    assert set(by_name) == {r["run_id"] for r in records}
    for r in records:
        group = by_name[r["run_id"]]
        assert [s.name for s in group.sessions] == [run_name(r["run_id"])]
        assert group.hparams["condition"].string_value == r["condition"]
        assert group.hparams["lr"].number_value == pytest.approx(r["lr"], rel=1e-12)
        assert group.hparams["wd"].number_value == pytest.approx(r["wd"], rel=1e-12)
        assert group.hparams["seed"].number_value == r["seed"]
        metrics = {m.name.tag: m.value for m in group.metric_values}
        want = {"final/top1": r["top1"], "final/diverged": float(r["diverged"])}
        if r["top5"] is not None:
            want["final/top5"] = r["top5"]
        assert metrics == pytest.approx(want, rel=1e-6)


@pytest.mark.filterwarnings(VENDORED_WARNING)
def test_tensorboard_from_a_results_table_has_hparams_and_final_metrics_only(tmp_path, capsys):
    _tb()
    df = _small()
    csv = tmp_path / "results.csv"
    df.to_csv(csv, index=False)
    code, out, err = run_cli(capsys, "export", csv, "--tensorboard", tmp_path / "tb")
    assert code == 0, err
    assert f"TensorBoard: {len(df)} runs in {tmp_path / 'tb'}" in out and "no per-epoch curves" in out
    _, groups = _hparams_dashboard(tmp_path / "tb")
    assert groups.total_size == len(df) == 36
    table = analysis.load_results(df)
    got = {(g.hparams["condition"].string_value, g.hparams["log10_lr"].number_value,
            g.hparams["log10_wd"].number_value, int(g.hparams["seed"].number_value)):
           {m.name.tag: m.value for m in g.metric_values} for g in groups.session_groups}
    for r in table.itertuples():
        metrics = got[(r.condition, r.log10_lr, r.log10_wd, r.seed)]
        if math.isnan(r.top1):  # the failed run: no top-1 to show
            assert "final/top1" not in metrics
        else:
            assert metrics["final/top1"] == pytest.approx(r.top1, rel=1e-6)
        assert metrics["final/diverged"] == float(r.diverged)
    assert any(g.metric_values and dict((m.name.tag, m.value) for m in g.metric_values)["final/diverged"] == 1.0
               for g in groups.session_groups)
    mux = _multiplexer(tmp_path / "tb")
    assert len(mux.Runs()) == len(df) + 1
    for r in table.itertuples():
        name = run_name(f"{r.condition}/{GridPoint(r.log10_lr, r.log10_wd).key}/seed{r.seed}")
        finals = {"final/diverged"} | ({"final/top1"} if math.isfinite(r.top1) else set())
        assert _scalar_tags(mux, name) == finals  # no curves: a table has none


def test_tensorboard_refuses_a_folder_that_is_not_its_own_unless_overwrite(tb_study, tmp_path, capsys):
    logdir = tmp_path / "tb"
    logdir.mkdir()
    (logdir / "notes.txt").write_text("mine")
    (logdir / "other-run").mkdir()
    (logdir / "other-run" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    before = _files(logdir)
    code, _, err = run_cli(capsys, "export", tb_study, "--tensorboard", logdir)
    assert code == 2 and "is not empty and holds no export of" in err and "--overwrite" in err
    assert _files(logdir) == before  # nothing written, nothing left over
    code, out, err = run_cli(capsys, "export", tb_study, "--tensorboard", logdir, "--overwrite")
    assert code == 0, err
    assert (logdir / "notes.txt").read_text() == "mine" and (logdir / "other-run").is_dir()  # never deleted
    assert "TensorBoard: 16 runs" in out and "per-epoch curves" in out
    # a run folder of an export's name that no export wrote: refused even with --overwrite
    other = tmp_path / "tb2"
    (other / run_name(DIVERGED)).mkdir(parents=True)
    (other / run_name(DIVERGED) / "train.log").write_text("someone's")
    code, _, err = run_cli(capsys, "export", tb_study, "--tensorboard", other, "--overwrite")
    assert code == 2 and "was not written by an export" in err
    assert _files(other) == [run_name(DIVERGED), f"{run_name(DIVERGED)}/train.log"]


def test_tensorboard_brings_an_earlier_export_of_the_same_study_up_to_date(tmp_path, capsys):
    _tb()
    study = _tb_study(tmp_path / "study")
    logdir = tmp_path / "tb"
    first = to_tensorboard(study, logdir)
    store = StudyStore(study)
    record = store.read_record(DIVERGED)[1]
    store.write_record(DIVERGED, {**record, "top1": 12.5})
    assert to_tensorboard(study, logdir) == first  # the same study: no --overwrite needed
    for name in first:  # each run replaced, not doubled
        assert len(list((logdir / name).iterdir())) == 1, name
    assert len([p for p in logdir.iterdir() if p.is_file() and p.name.startswith("events.")]) == 1
    mux = _multiplexer(logdir)
    assert _scalars(mux, run_name(DIVERGED), "final/top1") == [(1, 12.5)]
    assert len(_scalars(mux, run_name(DIVERGED), "train/loss")) == 2
    # another study's export is someone else's: refused; with --overwrite its runs are replaced
    other = _tb_study(tmp_path / "other", name="other", conditions=[{"method": "none"}])
    code, _, err = run_cli(capsys, "export", other, "--tensorboard", logdir)
    assert code == 2 and f"holds an export of {study.resolve()}, not of {other}" in err
    code, _, err = run_cli(capsys, "export", other, "--tensorboard", logdir, "--overwrite")
    assert code == 0, err
    names = [run_name(r["run_id"]) for r in _records(other)]
    assert set(_multiplexer(logdir).Runs()) == {".", *names} and len(names) == 8
    assert not any(n.startswith("uniform") for n in _files(logdir))


def test_tensorboard_logs_stay_out_of_the_study_files(tb_study, capsys):
    code, _, err = run_cli(capsys, "export", tb_study, "--tensorboard", tb_study / "runs" / "tb")
    assert code == 2 and "would overwrite the study's own files" in err, err
    code, _, err = run_cli(capsys, "export", tb_study, "--tensorboard", tb_study)
    assert code == 2 and "is the study directory itself" in err and str(tb_study / "tensorboard") in err, err
    assert not (tb_study / "runs" / "tb").exists()
    assert not list(tb_study.glob("events.*")) and not (tb_study / MANIFEST).exists()


def test_export_without_tensorboard_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    study = _tb_study(tmp_path / "study")
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    code, _, err = run_cli(capsys, "export", study, "--tensorboard", tmp_path / "tb")
    assert code == 2
    assert "needs the tensorboard package" in err and "pip install tensorboard" in err
    assert "hplandscape[tensorboard]" in err
    assert not (tmp_path / "tb").exists()


def test_a_tensorboard_export_that_fails_midway_leaves_the_folder_as_it_was(tb_study, tmp_path, monkeypatch):
    from hplandscape.interop import tensorboard_logs

    write_run, written = tensorboard_logs._write_run, []

    def failing(tb, folder, trial):
        if len(written) == 3:
            raise RuntimeError("disk full")
        written.append(trial.name)
        write_run(tb, folder, trial)

    monkeypatch.setattr(tensorboard_logs, "_write_run", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        to_tensorboard(tb_study, tmp_path / "new")
    assert written and not (tmp_path / "new").exists()  # the folder it created is gone again
    monkeypatch.setattr(tensorboard_logs, "_write_run", write_run)
    to_tensorboard(tb_study, tmp_path / "tb")
    before = {p: p.read_bytes() for p in (tmp_path / "tb").rglob("*") if p.is_file()}
    written.clear()
    monkeypatch.setattr(tensorboard_logs, "_write_run", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        to_tensorboard(tb_study, tmp_path / "tb")
    assert {p: p.read_bytes() for p in (tmp_path / "tb").rglob("*") if p.is_file()} == before  # the earlier export intact
    assert len(before) == 16 + 2
