"""Data of one's own: image folders (in memory, streamed, cached), CIFAR-100 and Python loaders."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import run_cli

from hplandscape.errors import ConfigChanged, UserError
from hplandscape.study.config import DataConfig
from hplandscape.study.loading import load_study
from hplandscape.study.validation import study_from_dict
from hplandscape.training import image_folder
from hplandscape.training.data import CIFAR100_FOLDER, _cifar_reader, dataset_info, load_data, write_fake_cifar100

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test decodes into a cache of its own, never the user's."""
    path = tmp_path / "cache"
    monkeypatch.setenv("HPLANDSCAPE_CACHE", str(path))
    return path / "imagefolder"


def write_image_folder(root: Path, classes=("ant", "bee", "cat"), n_train=5, n_val=2, seed=0) -> Path:
    """PNGs (and a JPEG) of different sizes and modes: RGB, greyscale, RGBA, palette."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    modes = ("RGB", "L", "RGBA", "P")
    for split, n in (("train", n_train), ("val", n_val)):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                h, w = (int(v) for v in rng.integers(9, 40, 2))
                rgb = np.clip(40 * c + rng.normal(80, 40, (h, w, 3)), 0, 255).astype(np.uint8)
                im = Image.fromarray(rgb).convert(modes[i % len(modes)])
                im.save(d / f"{i}.png")
            Image.fromarray(rgb).save(d / "photo.JPEG", quality=85)
    return root


def _folder_cfg(root, **kw):
    kw.setdefault("image_size", 16)
    kw.setdefault("num_workers", 0)
    return DataConfig(name="imagefolder", root=str(root), **kw)


def _same_batches(a, b):
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


# -- image folders ----------------------------------------------------------------------------


def test_an_image_folder_loads_in_memory_and_streamed_with_the_same_batches(tmp_path):
    root = write_image_folder(tmp_path / "images")
    cfg = _folder_cfg(root)
    assert dataset_info(cfg) == ("imagefolder", 3, 3, 16)
    held = load_data(dataclasses.replace(cfg, in_memory=True))
    streamed = load_data(dataclasses.replace(cfg, in_memory=False, num_workers=2))
    assert type(held).__name__ == "InMemoryData" and type(streamed).__name__ == "StreamedFolderData"
    assert held.info == streamed.info == ("imagefolder", 3, 3, 16)
    assert (held.num_train, held.num_test) == (streamed.num_train, streamed.num_test) == (18, 9)
    assert held.train_x.shape == (18, 3, 16, 16) and held.train_x.dtype == torch.uint8
    # classes in sorted folder order, every file of a class folder (the JPEG too) labelled with it
    assert held.train_y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert torch.equal(held.mean, streamed.mean) and torch.equal(held.std, streamed.std)
    for seed in (0, 1):
        a = list(held.train_batches(4, torch.Generator().manual_seed(seed), "cifar"))
        b = list(streamed.train_batches(4, torch.Generator().manual_seed(seed), "cifar"))
        assert [len(y) for _, y in a] == [4, 4, 4, 4, 2] and _same_batches(a, b)
    assert _same_batches(list(held.eval_batches(4)), list(streamed.eval_batches(4)))
    x, y = next(held.eval_batches(100))
    assert x.shape == (9, 3, 16, 16) and sorted(y.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_images_are_their_central_square_resized_and_greyscale_on_request(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    for split in ("train", "val"):
        for name, colour in (("left", 0), ("right", 255)):
            (root / split / name).mkdir(parents=True)
            wide = np.zeros((20, 60, 3), np.uint8)
            wide[:, 20:40] = (colour, 128, 255 - colour)  # the central square; the sides are black
            Image.fromarray(wide).save(root / split / name / "x.png")
    rgb = load_data(_folder_cfg(root, image_size=10))
    assert rgb.train_x.shape == (2, 3, 10, 10)
    inside = rgb.train_x[0, :, 1:-1, 1:-1]  # the border may blend in the black beside the square
    assert torch.equal(inside, torch.tensor([0, 128, 255], dtype=torch.uint8).view(3, 1, 1).expand_as(inside))
    grey = load_data(_folder_cfg(root, image_size=10, channels=1))
    assert grey.info.in_channels == dataset_info(_folder_cfg(root, image_size=10, channels=1)).in_channels == 1
    assert grey.train_x.shape == (2, 1, 10, 10)


def test_the_decoded_images_are_cached_and_decoded_again_when_a_file_changes(tmp_path, monkeypatch, cache):
    root = write_image_folder(tmp_path / "images")
    decoded = []
    real = image_folder.decode_image
    monkeypatch.setattr(image_folder, "decode_image", lambda path, *a: decoded.append(path) or real(path, *a))
    first = load_data(_folder_cfg(root))
    assert len(decoded) == 27
    assert len(list(cache.glob("*.npy"))) == 2 and len(list(cache.glob("*.counts.json"))) == 1

    decoded.clear()
    again = load_data(_folder_cfg(root))
    assert decoded == [], "a second load maps the cached arrays"
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.mean, again.mean)
    streamed = load_data(_folder_cfg(root, in_memory=False))
    assert decoded == [] and torch.equal(streamed.mean, first.mean), "the statistics are cached too"

    changed = root / "train" / "bee" / "photo.JPEG"
    os.utime(changed, ns=(0, changed.stat().st_mtime_ns + 10**9))  # as if rewritten
    third = load_data(_folder_cfg(root))
    assert len(decoded) == 18 and str(changed) in decoded, "the changed split is decoded again, val is not"
    assert torch.equal(third.train_x, first.train_x)
    assert len(list(cache.glob("*.npy"))) == 3
    decoded.clear()
    load_data(_folder_cfg(root, image_size=12))
    assert len(decoded) == 27, "another size is another entry"


def test_subsets_decode_only_their_images_and_match_in_memory_subsets(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "images", n_train=8)
    everything = load_data(_folder_cfg(root))
    decoded = []
    real = image_folder.decode_image
    monkeypatch.setattr(image_folder, "decode_image", lambda path, *a: decoded.append(path) or real(path, *a))
    part = load_data(_folder_cfg(root, train_subset=10, test_subset=4))
    assert len(decoded) == 14
    expected = everything.subset(10, 4)
    assert torch.equal(part.train_x, expected.train_x) and torch.equal(part.test_y, expected.test_y)
    assert torch.equal(part.mean, expected.mean)
    streamed = load_data(_folder_cfg(root, train_subset=10, test_subset=4, in_memory=False))
    g = torch.Generator
    assert _same_batches(list(part.train_batches(4, g().manual_seed(0), "cifar")),
                         list(streamed.train_batches(4, g().manual_seed(0), "cifar")))


def test_auto_holds_a_folder_in_memory_below_the_limit_and_streams_it_above(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "images")
    decoded_bytes = 27 * 3 * 16 * 16
    monkeypatch.setattr(image_folder, "in_memory_limit", lambda: decoded_bytes)
    assert type(load_data(_folder_cfg(root))).__name__ == "InMemoryData"
    monkeypatch.setattr(image_folder, "in_memory_limit", lambda: decoded_bytes - 1)
    assert type(load_data(_folder_cfg(root))).__name__ == "StreamedFolderData"
    assert type(load_data(_folder_cfg(root, in_memory=True))).__name__ == "InMemoryData"
    assert 0 < image_folder.in_memory_limit() < os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_a_cache_that_cannot_be_written_is_skipped(tmp_path, monkeypatch, caplog):
    root = write_image_folder(tmp_path / "images")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("HPLANDSCAPE_CACHE", str(blocker))
    data = load_data(_folder_cfg(root))
    assert data.train_x.shape == (18, 3, 16, 16)
    assert "cannot cache the decoded images" in caplog.text


@pytest.mark.parametrize("damage, culprit", [
    ("mismatch", "train and val"), ("empty", "train/bee"), ("text", "train/cat/notes.txt"),
    ("corrupt", "val/ant/0.png"), ("no val", "val"),
])
def test_a_bad_image_folder_is_a_user_error_naming_the_culprit(tmp_path, damage, culprit):
    root = write_image_folder(tmp_path / "images")
    if damage == "mismatch":
        (root / "val" / "cat").rename(root / "val" / "cow")
    elif damage == "empty":
        for f in (root / "train" / "bee").iterdir():
            f.unlink()
    elif damage == "text":
        (root / "train" / "cat" / "notes.txt").write_text("not an image")
    elif damage == "corrupt":
        (root / "val" / "ant" / "0.png").write_bytes(b"\x89PNG but not really")
    else:
        for split in ("val",):
            import shutil
            shutil.rmtree(root / split)
    for in_memory in (True, False):
        with pytest.raises(UserError) as e:
            data = load_data(_folder_cfg(root, in_memory=in_memory, num_workers=2 if damage == "corrupt" else 0))
            list(data.eval_batches(4))
        msg = str(e.value)
        if damage == "mismatch":
            assert f"{root / 'train'} and {root / 'val'} hold different classes" in msg
            assert "only in train/: cat; only in val/: cow" in msg
        else:
            assert str(root / culprit) in msg, msg
        assert "Traceback" not in msg
    if damage != "corrupt":  # the planner finds layout errors without decoding anything
        with pytest.raises(UserError):
            dataset_info(_folder_cfg(root))


def test_imagefolder_config_needs_an_image_size_and_takes_channels_and_in_memory(tmp_path):
    base = {"name": "t", "model": "resnet20", "conditions": [{"method": "none"}],
            "grid": {"prior_lr": 0.1, "prior_wd": 1e-4, "size": 1, "step": 0.5}}

    def config(**data):
        return study_from_dict({**base, "data": {"name": "imagefolder", "root": str(tmp_path), **data}}, "x.yaml")

    with pytest.raises(UserError, match="x.yaml: data.image_size is required for imagefolder"):
        config()
    cfg = config(image_size=32, channels=1, in_memory="auto")
    assert (cfg.data.channels, cfg.data.in_memory) == (1, None)
    assert config(image_size=32, in_memory=False).data.in_memory is False
    assert (cfg.recipe.preset, cfg.recipe.augment) == ("cifar10", "cifar")
    for bad, match in ((dict(channels=2), "data.channels must be 3 .* or 1"),
                       (dict(in_memory="yes"), "data.in_memory must be auto .* got 'yes'")):
        with pytest.raises(UserError, match=match):
            config(image_size=32, **bad)
    with pytest.raises(UserError, match="data.channels is only for data.name imagefolder"):
        study_from_dict({**base, "data": {"name": "digits", "channels": 1}})
    # the resolved config shows the new keys only when set, so older studies compare equal
    assert "channels" not in study_from_dict({**base, "data": {"name": "digits"}}).to_dict()["data"]


def test_an_imagefolder_study_sweeps_from_the_command_line(tmp_path):
    """``python -m hplandscape sweep`` on a tiny image folder: resnet20, 8×8 images, 2 epochs, 2×2."""
    root = write_image_folder(tmp_path / "images", n_train=6, n_val=2)
    study = {"name": "folder", "model": "resnet20",
             "data": {"name": "imagefolder", "root": str(root), "image_size": 8, "num_workers": 0},
             "conditions": [{"method": "none"}],
             "grid": {"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0], "log10_wd": [-4.5, -4.0]},
             "train": {"epochs": 2, "batch_size": 8},
             "launcher": {"executor": "local", "max_parallel": 2, "cpus_per_task": 1, "mem_gb": 1.0}}
    path = tmp_path / "folder.yaml"
    path.write_text(yaml.safe_dump(study))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "hplandscape", "sweep", str(path), "--study-dir", str(tmp_path / "s"),
                           "--no-progress", "--no-report"], capture_output=True, text=True, timeout=600, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = sorted((tmp_path / "s").rglob("record.json"))
    assert len(records) == 4
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2, "the workers shared one decoded copy"


def test_every_dataset_has_a_default_preset_and_augmentation():
    from hplandscape.choices import DATASETS
    from hplandscape.study.recipes import AUGMENTATIONS, DATASET_DEFAULTS, PRESETS

    assert set(DATASET_DEFAULTS) == set(DATASETS)
    assert all(preset in PRESETS and augment in AUGMENTATIONS for preset, augment in DATASET_DEFAULTS.values())


# -- CIFAR-100 --------------------------------------------------------------------------------


def test_cifar100_in_torchvisions_format_loads_with_its_fine_labels(tmp_path):
    folder = write_fake_cifar100(tmp_path, n_train=300, n_test=50, seed=1)
    assert folder.name == CIFAR100_FOLDER and sorted(p.name for p in folder.iterdir()) == ["meta", "test", "train"]
    ds = _cifar_reader("CIFAR100")(str(tmp_path), train=True)  # torchvision's reader: fine labels
    cfg = DataConfig(name="cifar100", root=str(tmp_path))
    data = load_data(cfg)
    assert data.info == dataset_info(cfg) == ("cifar100", 100, 3, 32)
    assert (data.num_train, data.num_test) == (300, 50)
    assert data.train_y.tolist() == ds.targets and int(data.train_y.max()) > 19  # fine, not coarse
    assert torch.equal(data.train_x, torch.from_numpy(ds.data).permute(0, 3, 1, 2))
    (folder / "test").unlink()
    with pytest.raises(UserError, match=f"{folder} is not a CIFAR-100 directory.*missing test"):
        dataset_info(cfg)
    cfg = study_from_dict({"name": "c", "model": "resnet20", "data": {"name": "cifar100", "root": "/x"},
                           "conditions": [{"method": "none"}], "grid": {"prior_lr": 0.1, "prior_wd": 1e-4,
                                                                         "size": 1, "step": 0.5}})
    assert (cfg.recipe, cfg.data.download) == (study_from_dict({**cfg.to_dict(), "data": {
        "name": "cifar10", "root": "/x"}}).recipe, False)  # CIFAR-10's recipe and augmentation


# -- Python loaders ---------------------------------------------------------------------------


@pytest.fixture
def clean_imports():
    """Loader modules written by a test are forgotten afterwards (each test names its own)."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


LOADERS = {
    "pairs": """
        import numpy as np
        def load():
            rng = np.random.default_rng(0)
            x = rng.integers(0, 256, (40, 1, 8, 8), dtype=np.uint8)
            y = np.arange(40) % 4
            return (x[:30], y[:30]), (x[30:], list(y[30:]))
    """,
    "dataset": """
        import torch
        from PIL import Image

        class Split(torch.utils.data.Dataset):
            classes = ["a", "b", "c"]
            def __init__(self, n, pil):
                self.n, self.pil = n, pil
            def __len__(self):
                return self.n
            def __getitem__(self, i):
                g = torch.Generator().manual_seed(i)
                if self.pil:
                    rgb = torch.randint(0, 256, (12, 10, 3), dtype=torch.uint8, generator=g)
                    return Image.fromarray(rgb.numpy()), i % 3
                return torch.rand(3, 12, 10, generator=g), torch.tensor(i % 2)
        def load(root):
            assert root.endswith("somewhere"), root
            return Split(12, pil=True), Split(5, pil=False)
    """,
}


def _study_with_loader(tmp_path, name, code, **data) -> Path:
    folder = tmp_path / "study"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(code))
    doc = {"name": "own", "model": "resnet20", "data": {"python": f"{name}:load", **data},
           "conditions": [{"method": "none"}], "grid": {"prior_lr": 0.1, "prior_wd": 1e-4, "size": 1, "step": 0.5},
           "train": {"epochs": 1, "batch_size": 8}}
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("kind", ["pairs", "dataset"])
def test_a_loader_beside_the_study_yaml_is_located_recorded_and_loaded(tmp_path, monkeypatch, clean_imports, kind):
    monkeypatch.chdir(tmp_path)  # neither the working directory nor PYTHONPATH holds the loader
    name = f"loader_{kind}"
    extra = {"root": "somewhere", "image_size": 8} if kind == "dataset" else {}
    path = _study_with_loader(tmp_path, name, LOADERS[kind], **extra)
    cfg = load_study(path)
    source = cfg.data.python_source
    assert cfg.data.name == "python" and source["import_root"] == str(path.parent)
    assert source["file"] == str(path.parent / f"{name}.py") and len(source["sha256"]) == 64
    assert (cfg.recipe.preset, cfg.recipe.augment) == ("cifar10", "cifar")
    data = load_data(cfg.data)
    if kind == "pairs":
        assert data.info == dataset_info(cfg.data) == ("python", 4, 1, 8)
        assert (data.num_train, data.num_test) == (30, 10) and data.test_y.tolist() == [2, 3, 0, 1] * 2 + [2, 3]
    else:  # 12×10 PIL and float images, cropped to 10×10 and resized to 8; 3 classes from .classes
        assert data.info == ("python", 3, 3, 8) and data.train_x.shape == (12, 3, 8, 8)
        assert data.test_y.tolist() == [0, 1, 0, 1, 0]
    x, y = next(data.train_batches(8, torch.Generator().manual_seed(0), "cifar"))
    assert x.dtype == torch.float32 and x.shape[0] == 8


def test_a_worker_loads_the_recorded_loader_in_a_fresh_process(tmp_path, clean_imports):
    from hplandscape.store.study_store import StudyStore

    path = _study_with_loader(tmp_path, "loader_fresh", LOADERS["pairs"])
    store = StudyStore(tmp_path / "run")
    store.init_study(load_study(path))
    code = ("import sys; from hplandscape.store.study_store import StudyStore; "
            "from hplandscape.training.data import load_data; "
            f"cfg = StudyStore({str(store.root)!r}).config(); d = load_data(cfg.data); "
            "print(d.info, d.num_train, 'loader_fresh' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path / "run", env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "DatasetInfo(name='python', num_classes=4, in_channels=1, image_size=8) 30 True"
    # the worker imports the file the study recorded and checks its hash: a changed file is refused
    (path.parent / "loader_fresh.py").write_text(textwrap.dedent(LOADERS["pairs"]) + "\n# edited\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path / "run", env=env)
    assert run.returncode != 0 and "changed since the study recorded it" in run.stderr
    # and a sweep of the study YAML locates the changed file and refuses the directory by name
    with pytest.raises(ConfigChanged, match="data.python_source.sha256") as refused:
        store.check_config(load_study(path))
    assert f"The data loader's source file {path.parent / 'loader_fresh.py'} changed since the study began" \
        in str(refused.value)


BAD_LOADERS = [
    ("import", "import not_a_module_anywhere\ndef load(): pass",
     r"study.yaml: data.python 'loader_import:load': importing module 'loader_import' failed \(No module named "
     r"'not_a_module_anywhere'\)"),
    ("attribute", "def other(): pass", "has no attribute 'load'"),
    ("raises", "def load(): raise FileNotFoundError('no data in /nowhere')",
     "the loader raised FileNotFoundError: no data in /nowhere"),
    ("triple", "def load(): return 1, 2, 3", r"must return \(train, test\), got tuple \(1, 2, 3\)"),
    ("float", "import torch\ndef load():\n"
              "    return (torch.rand(4, 3, 8, 8), [0, 1, 0, 1]), (torch.rand(2, 3, 8, 8), [0, 1])",
     r"the training images must be a uint8 N×C×H×W tensor or array, got float32 of shape \(4, 3, 8, 8\)"),
    ("3d", "import torch\ndef load():\n    x = torch.zeros(4, 8, 8, dtype=torch.uint8)\n"
           "    return (x, [0, 1, 0, 1]), (x, [0] * 4)",
     r"got uint8 of shape \(4, 8, 8\)"),
    ("float labels", "import torch\ndef load(): x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8); "
                     "return (x, [0, 1.5, 0, 1]), (x, [0] * 4)", "the training labels must be 4 integers"),
    ("short labels", "import torch\ndef load(): x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8); "
                     "return (x, [0, 1, 0, 1]), (x, [0, 1])", r"the test labels must be 4 integers.*shape \(2,\)"),
    ("negative", "import torch\ndef load(): x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8); "
                 "return (x, [0, 1, -1, 1]), (x, [0] * 4)", r"training label -1 \(item 2\) is outside 0..1"),
    ("unseen", "import torch\ndef load(): x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8); "
               "return (x, [0, 1, 0, 1]), (x, [0, 1, 2, 0])",
     r"test label 2 \(item 2\) is outside 0..1 \(the training split's largest label is 1\)"),
    ("sizes", "import torch\nclass D:\n    def __len__(self): return 3\n    def __getitem__(self, i):\n"
              "        return torch.zeros(3, 8, 8 + (i == 2), dtype=torch.uint8), i % 2\n"
              "def load(): return D(), D()",
     "training item 2 is 3×8×9, item 0 is 3×8×8: all images must have one size"),
    ("split sizes", "import torch\ndef load(): return ((torch.zeros(4, 1, 8, 8, dtype=torch.uint8), [0, 1, 0, 1]), "
                    "(torch.zeros(2, 1, 6, 6, dtype=torch.uint8), [0, 1]))",
     "the training images are 1×8×8, the test images 1×6×6"),
]


@pytest.mark.parametrize("case, code, message", BAD_LOADERS, ids=[b[0] for b in BAD_LOADERS])
def test_a_bad_loader_is_a_user_error_before_anything_is_written(tmp_path, capsys, clean_imports, case, code,
                                                                    message):
    import re

    name = "loader_" + re.sub(r"\W", "_", case)
    path = _study_with_loader(tmp_path, name, code)
    study = tmp_path / "out"
    exit_code, out, err = run_cli(capsys, "sweep", path, "--study-dir", study, "--executor", "debug", "--no-progress")
    assert exit_code == 2, out + err
    assert re.search(message, err), err
    assert f"data.python '{name}:load'" in err and "Traceback" not in err
    assert not study.exists(), "nothing is written before the data is checked"


def test_a_python_loader_and_another_dataset_name_conflict(tmp_path):
    with pytest.raises(UserError, match="data.python names a loader of one's own, which is data.name: python"):
        study_from_dict({"name": "x", "model": "resnet20", "data": {"name": "digits", "python": "m:f"},
                         "conditions": [{"method": "none"}], "grid": {"prior_lr": 0.1, "prior_wd": 1e-4, "size": 1,
                                                                       "step": 0.5}})
