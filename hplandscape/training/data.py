"""The datasets a study may name, opened as one kind of object: :func:`dataset_info`, :func:`load_data`.

The datasets (method §6, and any image data of one's own):

- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, 1 channel), split once
  into a fixed stratified train/test split.
- ``cifar10`` / ``cifar100``: a directory in torchvision's on-disk format (``cifar-10-batches-py/``,
  ``cifar-100-python/``: CIFAR-100's 100 fine labels), read with torchvision's own readers;
  ``download=True`` fetches it on machines with internet.
- ``imagenet``: ``train/`` and ``val/`` ImageFolder directories, streamed through a ``DataLoader``
  with torchvision's ImageNet transforms and published statistics.
- ``imagefolder``: ``train/<class>/`` and ``val/<class>/`` folders of images of any size and mode,
  resized to ``image_size``; held in memory when the decoded images fit, streamed otherwise, with
  the same batches either way (:mod:`hplandscape.training.image_folder`).
- ``python``: ``(train, test)`` returned by a loader of one's own, ``data.python:
  "package.module:loader"`` (:mod:`hplandscape.training.user_data`).

Small datasets (digits, CIFAR, an image folder that fits, a loader's data) are held in memory as
uint8 tensors and augmented a whole batch at a time with tensor ops (zero-pad, random crop,
horizontal flip) instead of per-image PIL transforms (:mod:`hplandscape.training.batches`).
Normalisation statistics (per-channel mean and std) come from the training split. Every random
choice (order, crop offsets, flips) is drawn from the ``torch.Generator`` the caller passes, so a
seed fixes the data stream and saving the generator's state is enough to resume it.

Examples
--------
>>> from hplandscape.study.config import DataConfig
>>> data = load_data(DataConfig(name="digits"))
>>> data.info
DatasetInfo(name='digits', num_classes=10, in_channels=1, image_size=8)
>>> g = torch.Generator().manual_seed(0)
>>> x, y = next(iter(data.train_batches(64, g, augment="digits")))
>>> tuple(x.shape), x.dtype
((64, 1, 8, 8), torch.float32)
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from hplandscape.atomic import atomic_open
from hplandscape.choices import DATASETS
from hplandscape.errors import UserError
# The batch pipeline is batches.py's; its names are importable from here as they always were.
from hplandscape.training.batches import (SUBSET_SEED, DatasetInfo, InMemoryData, random_crop,  # noqa: F401
                                          resize_uint8, train_steps)

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_META_FILE = "batches.meta"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")
CIFAR100_FOLDER = "cifar-100-python"
# torchvision's published ImageNet statistics; they were computed on the training split, and
# recomputing them over 1.28 M JPEGs for every run would cost more than an epoch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# scikit-learn's train_test_split(test_size=0.25, stratify=labels, random_state=0), stored as
# indices: importing scikit-learn to recompute it cost every worker 1 s (docs/performance.md).
DIGITS_SPLIT_FILE = Path(__file__).with_name("digits_split.json")
DIGITS_IMAGES = 1797


def dataset_info(cfg) -> DatasetInfo:
    """Number of classes, channels and the (square) training image size, without loading images.

    Parameters
    ----------
    cfg : hplandscape.study.config.DataConfig

    Raises
    ------
    UserError
        The data directory or one of its files is missing (CIFAR-10 without ``download``,
        ImageNet); the message names the path.
    """
    if cfg.name == "digits":
        return DatasetInfo("digits", 10, 1, cfg.image_size or 8)
    if cfg.name in CIFAR_FORMATS:
        fmt = CIFAR_FORMATS[cfg.name]
        if not cfg.download:
            _cifar_folder(cfg, fmt)  # fail at planning time, before any job is launched
        return DatasetInfo(cfg.name, fmt.num_classes, 3, cfg.image_size or 32)
    if cfg.name == "imagenet":
        train_dir = _imagenet_dirs(cfg)[0]
        classes = [e.name for e in os.scandir(train_dir) if e.is_dir()]
        return DatasetInfo("imagenet", len(classes), 3, cfg.image_size or 224)
    if cfg.name == "imagefolder":
        from hplandscape.training.image_folder import folder_info

        return folder_info(cfg)
    if cfg.name == "python":
        from hplandscape.training.user_data import python_data

        return python_data(cfg).info  # the loader runs once per process: load_data reuses it
    raise UserError(f"data.name: unknown dataset {cfg.name!r}; allowed: {', '.join(DATASETS)}")


def load_data(cfg):
    """Open the dataset described by ``cfg``.

    Parameters
    ----------
    cfg : hplandscape.study.config.DataConfig

    Returns
    -------
    InMemoryData, FolderData or StreamedFolderData
        All offer ``info``, ``num_train``, ``num_test``, ``to(device)``,
        ``train_batches(batch_size, generator, augment, device=...)`` (one epoch of augmented,
        normalised training batches in a generator-determined order; :func:`train_steps` of
        them) and
        ``eval_batches(batch_size, device=...)`` (the held-out split, in order, normalised).

    Raises
    ------
    UserError
        The data directory is missing, is not in the expected format, or its classes do not match.
    """
    if cfg.name == "digits":
        data = _load_digits(cfg)
    elif cfg.name in CIFAR_FORMATS:
        data = _load_cifar(cfg, CIFAR_FORMATS[cfg.name])
    elif cfg.name == "imagenet":
        return FolderData(cfg)
    elif cfg.name == "imagefolder":
        from hplandscape.training.image_folder import load_image_folder

        return load_image_folder(cfg)  # decodes only the subsets' images
    elif cfg.name == "python":
        from hplandscape.training.user_data import python_data

        data = python_data(cfg)
    else:
        raise UserError(f"data.name: unknown dataset {cfg.name!r}; allowed: {', '.join(DATASETS)}")
    return data.subset(cfg.train_subset, cfg.test_subset)


# --------------------------------------------------------------------------------------------
# digits


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as ``(images (1797, 8, 8) float64 counts 0..16, labels)``,
    read from its ``digits.csv.gz`` as ``load_digits`` reads it, without importing scikit-learn
    (it finds the installed package's folder; ``load_digits`` itself is the fallback)."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # a top-level package: found, not imported
    if spec is None:
        raise UserError("the digits dataset is scikit-learn's: pip install scikit-learn")
    path = Path(next(iter(spec.submodule_search_locations or [""]))) / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",")
        images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    else:  # pragma: no cover - a scikit-learn that keeps its data elsewhere
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels = bunch.images, bunch.target.astype(np.int64)
    if len(labels) != DIGITS_IMAGES:
        raise UserError(f"{path}: expected scikit-learn's {DIGITS_IMAGES} digits, found {len(labels)}")
    return images, labels


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """``(train indices, test indices)`` into :func:`digits_arrays`, in the split's order."""
    import json

    doc = json.loads(DIGITS_SPLIT_FILE.read_text())
    return np.asarray(doc["train"], dtype=np.int64), np.asarray(doc["test"], dtype=np.int64)


def _load_digits(cfg) -> InMemoryData:
    raw, labels = digits_arrays()
    # Pixel values are counts 0..16 (4×4 blocks of a 32×32 bitmap); map them onto uint8 0..255.
    images = np.rint(raw * (255.0 / 16.0)).astype(np.uint8)[:, None]
    train, test = digits_split()
    tr_x, te_x, tr_y, te_y = images[train], images[test], labels[train], labels[test]
    size = cfg.image_size or 8
    tr_x, te_x = torch.from_numpy(tr_x), torch.from_numpy(te_x)
    if size != 8:
        tr_x, te_x = resize_uint8(tr_x, size), resize_uint8(te_x, size)
    return InMemoryData(DatasetInfo("digits", 10, 1, size), tr_x, torch.from_numpy(tr_y),
                        te_x, torch.from_numpy(te_y))


# --------------------------------------------------------------------------------------------
# CIFAR-10 and CIFAR-100


class CifarFormat(NamedTuple):
    """What tells one CIFAR on disk from the other (torchvision's reader knows the rest)."""

    title: str  # in messages
    reader: str  # torchvision.datasets class
    folder: str
    train_files: tuple
    test_file: str
    meta_file: str
    num_classes: int


CIFAR_FORMATS = {
    "cifar10": CifarFormat("CIFAR-10", "CIFAR10", CIFAR_FOLDER, CIFAR_TRAIN_FILES, CIFAR_TEST_FILE, CIFAR_META_FILE,
                           10),
    # torchvision's CIFAR100 reads the 100 fine labels (``fine_labels``, ``fine_label_names``).
    "cifar100": CifarFormat("CIFAR-100", "CIFAR100", CIFAR100_FOLDER, ("train",), "test", "meta", 100),
}


def _cifar_reader(reader: str = "CIFAR10"):
    """torchvision's CIFAR10 (or CIFAR100) reader with the per-file md5 check relaxed to an
    existence check.

    The reading code (pickles, reshape to HWC, labels, label names from the meta file) is
    torchvision's own; only the checksums are not enforced, so regenerated or reduced files in the
    same format load too. Their content is validated after loading instead (shapes, labels, classes).
    """
    import torchvision.datasets

    base = getattr(torchvision.datasets, reader)

    class _Relaxed(base):
        train_list = [[name, None] for name, _ in base.train_list]
        test_list = [[name, None] for name, _ in base.test_list]
        meta = dict(base.meta, md5=None)

    _Relaxed.__name__ = f"_{reader}"
    return _Relaxed


def _cifar_folder(cfg, fmt: CifarFormat = CIFAR_FORMATS["cifar10"]) -> Path:
    """The ``cifar-10-batches-py`` (``cifar-100-python``) folder of ``cfg.root``, checked for every
    file the reader needs."""
    if not cfg.root:
        raise UserError(f"data.root is required for {cfg.name}: the directory that holds "
                        f"{fmt.folder}/ (or where data.download=true should put it)")
    root = Path(cfg.root)
    folder = root / fmt.folder
    if not root.is_dir():
        raise UserError(f"{fmt.title} data directory {root} does not exist; point data.root at the "
                        f"directory holding {fmt.folder}/, or set data.download=true on a machine with internet")
    missing = [n for n in fmt.train_files + (fmt.test_file, fmt.meta_file) if not (folder / n).is_file()]
    if missing:
        raise UserError(f"{folder} is not a {fmt.title} directory in torchvision's format: missing "
                        f"{', '.join(missing)} (expected {', '.join(fmt.train_files)}, {fmt.test_file}, "
                        f"{fmt.meta_file}); set data.download=true to fetch it")
    return folder


def _load_cifar(cfg, fmt: CifarFormat) -> InMemoryData:
    import torchvision.datasets

    if cfg.download and cfg.root:
        Path(cfg.root).mkdir(parents=True, exist_ok=True)
        getattr(torchvision.datasets, fmt.reader)(cfg.root, train=True, download=True)  # verifies the md5
    folder = _cifar_folder(cfg, fmt)
    root = folder.parent
    reader = _cifar_reader(fmt.reader)
    splits = []
    for train in (True, False):
        try:
            ds = reader(str(root), train=train, download=False)
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, UnicodeDecodeError,
                AttributeError, RuntimeError) as e:
            raise UserError(f"{folder}: cannot read the {'training' if train else 'test'} batches as "
                            f"{fmt.title} pickles ({e.__class__.__name__}: {e}); the files are corrupt or "
                            "not in torchvision's format") from None
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        y = torch.tensor(ds.targets, dtype=torch.int64)
        if x.dtype != torch.uint8 or len(y) != len(x):
            raise UserError(f"{folder}: expected uint8 images with one label each, got {x.dtype} "
                            f"images and {len(y)} labels for {len(x)} images")
        if len(y) and (y.min() < 0 or y.max() >= fmt.num_classes):
            raise UserError(f"{folder}: labels must lie in 0..{fmt.num_classes - 1} for {fmt.title}, found "
                            f"{int(y.min())}..{int(y.max())}")
        if len(ds.classes) != fmt.num_classes:
            raise UserError(f"{folder / fmt.meta_file}: lists {len(ds.classes)} classes, {fmt.title} has "
                            f"{fmt.num_classes}")
        splits += [x, y]
    size = cfg.image_size or 32
    if size != 32:
        splits[0], splits[2] = resize_uint8(splits[0], size), resize_uint8(splits[2], size)
    return InMemoryData(DatasetInfo(cfg.name, fmt.num_classes, 3, size), *splits)


def write_fake_cifar10(root, n_train: int = 500, n_test: int = 100, seed: int = 0) -> Path:
    """Write a small CIFAR-10 in torchvision's real on-disk format.

    The images are random but learnable: each class has its own mean colour, plus noise. Files:
    ``root/cifar-10-batches-py/data_batch_1..5``, ``test_batch`` and ``batches.meta``, pickled
    dicts with ``data`` (uint8, N×3072, channel-major rows), ``labels`` and ``batch_label``, exactly
    as in the original archive, so the real loader reads them.

    Parameters
    ----------
    root : str or Path
    n_train, n_test : int
        Number of training images (spread over the five batches) and test images.
    seed : int

    Returns
    -------
    Path
        The ``cifar-10-batches-py`` directory.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    colours = rng.integers(40, 216, size=(10, 3))

    def make(n):
        labels = rng.integers(0, 10, size=n)
        img = colours[labels][:, :, None, None] + rng.normal(0, 40, size=(n, 3, 32, 32))
        return np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3072), labels.tolist()

    parts = np.array_split(np.arange(n_train), len(CIFAR_TRAIN_FILES))
    data, labels = make(n_train)
    for i, (name, idx) in enumerate(zip(CIFAR_TRAIN_FILES, parts)):
        _pickle_atomic(folder / name, {"batch_label": f"training batch {i + 1} of 5",
                                       "labels": [labels[j] for j in idx], "data": data[idx],
                                       "filenames": [f"img_{j}.png" for j in idx]})
    data, labels = make(n_test)
    _pickle_atomic(folder / CIFAR_TEST_FILE, {"batch_label": "testing batch 1 of 1", "labels": labels,
                                               "data": data, "filenames": [f"test_{j}.png" for j in range(n_test)]})
    _pickle_atomic(folder / CIFAR_META_FILE, {"label_names": list(CIFAR_CLASSES), "num_cases_per_batch": 10000,
                                               "num_vis": 3072})
    return folder


def write_fake_cifar100(root, n_train: int = 1000, n_test: int = 200, seed: int = 0) -> Path:
    """Write a small CIFAR-100 in torchvision's real on-disk format.

    As :func:`write_fake_cifar10`, for 100 classes: ``root/cifar-100-python/train`` and ``test``,
    pickled dicts with ``data`` (uint8, N×3072, channel-major rows), ``fine_labels`` (0..99),
    ``coarse_labels`` (0..19), ``filenames`` and ``batch_label``, and ``meta`` with
    ``fine_label_names`` and ``coarse_label_names``, as in the original archive.

    Returns
    -------
    Path
        The ``cifar-100-python`` directory.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR100_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    colours = rng.integers(40, 216, size=(100, 3))
    for name, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 100, size=n)
        img = colours[labels][:, :, None, None] + rng.normal(0, 40, size=(n, 3, 32, 32))
        data = np.clip(img, 0, 255).astype(np.uint8).reshape(n, 3072)
        _pickle_atomic(folder / name, {"batch_label": f"{'training' if name == 'train' else 'testing'} batch 1 of 1",
                                       "fine_labels": labels.tolist(), "coarse_labels": (labels // 5).tolist(),
                                       "data": data, "filenames": [f"{name}_{j}.png" for j in range(n)]})
    _pickle_atomic(folder / "meta", {"fine_label_names": [f"class_{i:02d}" for i in range(100)],
                                     "coarse_label_names": [f"superclass_{i:02d}" for i in range(20)]})
    return folder


def _pickle_atomic(path: Path, obj) -> None:
    with atomic_open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


# --------------------------------------------------------------------------------------------
# ImageNet (ImageFolder, streamed)


def _imagenet_dirs(cfg) -> tuple[Path, Path]:
    if not cfg.root:
        raise UserError("data.root is required for imagenet: the directory holding train/ and val/")
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError(f"ImageNet data directory {root} does not exist; it must hold train/ and val/ "
                        "class folders (torchvision ImageFolder layout)")
    dirs = root / "train", root / "val"
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"{root} is not an ImageNet directory: {d} is missing (expected train/<class>/*.JPEG "
                            "and val/<class>/*.JPEG)")
    return dirs


class FolderData:
    """ImageNet from ``root/train`` and ``root/val`` ImageFolders (method §6 transforms)."""

    def __init__(self, cfg):
        from torchvision import datasets
        from torchvision import transforms as T

        train_dir, val_dir = _imagenet_dirs(cfg)
        crop = cfg.image_size or 224
        resize = int(round(crop * 256 / 224))
        norm = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        # method §6: random crop of the image resized to 256, random flip; eval: centre crop.
        self._train_tf = T.Compose([T.Resize(resize), T.RandomCrop(crop), T.RandomHorizontalFlip(),
                                    T.ToTensor(), norm])
        self._plain_train_tf = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), norm])
        eval_tf = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), norm])
        try:
            self.train = datasets.ImageFolder(str(train_dir), transform=self._train_tf)
            self.val = datasets.ImageFolder(str(val_dir), transform=eval_tf)
        except (FileNotFoundError, RuntimeError) as e:
            raise UserError(f"{cfg.root}: not a valid ImageFolder layout ({e})") from None
        if self.train.classes != self.val.classes:
            only_t = sorted(set(self.train.classes) - set(self.val.classes))[:5]
            only_v = sorted(set(self.val.classes) - set(self.train.classes))[:5]
            raise UserError(f"{cfg.root}: train/ and val/ hold different classes ({len(self.train.classes)} vs "
                            f"{len(self.val.classes)}; only in train: {only_t}, only in val: {only_v})")
        self.num_workers = cfg.num_workers
        self.info = DatasetInfo("imagenet", len(self.train.classes), 3, crop)
        self._subsets(cfg)

    def _subsets(self, cfg):
        import torch.utils.data as tud

        g = torch.Generator().manual_seed(SUBSET_SEED)
        if cfg.train_subset and cfg.train_subset < len(self.train):
            self.train = tud.Subset(self.train, torch.randperm(len(self.train), generator=g)[:cfg.train_subset].sort().values.tolist())
        if cfg.test_subset and cfg.test_subset < len(self.val):
            self.val = tud.Subset(self.val, torch.randperm(len(self.val), generator=g)[:cfg.test_subset].sort().values.tolist())

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_test(self) -> int:
        return len(self.val)

    def to(self, device) -> "FolderData":
        return self  # images are decoded per batch by the workers

    def train_batches(self, batch_size, generator, augment="imagenet", device=None,
                      memory_format=torch.contiguous_format):
        """One epoch through a shuffling DataLoader whose sampler and worker seeds come from ``generator``."""
        from torch.utils.data import DataLoader

        base = self.train.dataset if hasattr(self.train, "dataset") else self.train
        base.transform = self._train_tf if augment != "none" else self._plain_train_tf
        loader = DataLoader(self.train, batch_size=batch_size, shuffle=True, generator=generator,
                            num_workers=self.num_workers, pin_memory=device is not None and str(device).startswith("cuda"),
                            drop_last=False, persistent_workers=False)
        for x, y in loader:
            if len(y) == 1 and self.num_train > 1:
                break  # as in InMemoryData, and as train_steps counts
            yield _to(x, y, device, memory_format)

    def eval_batches(self, batch_size, device=None, memory_format=torch.contiguous_format):
        from torch.utils.data import DataLoader

        loader = DataLoader(self.val, batch_size=batch_size, shuffle=False, num_workers=self.num_workers,
                            pin_memory=device is not None and str(device).startswith("cuda"))
        for x, y in loader:
            yield _to(x, y, device, memory_format)


def _to(x, y, device, memory_format):
    if device is not None:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return x.contiguous(memory_format=memory_format), y
