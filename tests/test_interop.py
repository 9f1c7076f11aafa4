"""Export to Optuna (one study per condition) and Parquet: round trips and clear errors."""

import sys

import pandas as pd
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results
from hplandscape.cli import main
from hplandscape.errors import UserError
from hplandscape.interop.optuna_storage import to_optuna
from hplandscape.interop.parquet_file import to_parquet

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
            assert set(t.user_attrs) == {"seed", "flops", "params", "diverged"}
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
