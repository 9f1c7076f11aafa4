"""Datasets and the fast in-memory batch pipeline.

Three datasets (method §6):

- ``digits``: scikit-learn's bundled 8×8 handwritten digits (1,797 images, 1 channel), split once
  into a fixed stratified train/test split.
- ``cifar10``: a directory in torchvision's on-disk format (``cifar-10-batches-py/``), read with
  torchvision's own ``CIFAR10`` reader; ``download=True`` fetches it on machines with internet.
- ``imagenet``: ``train/`` and ``val/`` ImageFolder directories, streamed through a ``DataLoader``.

Small datasets (digits, CIFAR-10) are held in memory as uint8 tensors and augmented a whole batch
at a time with tensor ops (zero-pad, random crop, horizontal flip) instead of per-image PIL
transforms: it's much faster to index and crop a uint8 tensor than to build 128 PIL images per
step, and the same code runs on the GPU when the tensors live there. Normalisation statistics
(per-channel mean and std) come from the training split.

Every random choice (order, crop offsets, flips) is drawn from the ``torch.Generator`` the caller
passes, so a seed fixes the data stream and saving the generator's state is enough to resume it.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from hplandscape.atomic import atomic_open
from hplandscape.choices import DATASETS
from hplandscape.errors import UserError
from hplandscape.study.recipes import AUGMENTATIONS

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_META_FILE = "batches.meta"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")
# torchvision's published ImageNet statistics; they were computed on the training split, and
# recomputing them over 1.28 M JPEGs for every run would cost more than an epoch.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# scikit-learn's train_test_split(test_size=0.25, stratify=labels, random_state=0), stored as
# indices: importing scikit-learn to recompute it cost every worker 1 s (docs/performance.md).
DIGITS_SPLIT_FILE = Path(__file__).with_name("digits_split.json")
DIGITS_IMAGES = 1797
SUBSET_SEED = 0  # subsets are a property of the data, not of the run: the same for every seed


class DatasetInfo(NamedTuple):
    """Shape facts about a dataset, cheap to obtain (the planner needs them for FLOPs)."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int


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
    if cfg.name == "cifar10":
        if not cfg.download:
            _cifar_folder(cfg)  # fail at planning time, before any job is launched
        return DatasetInfo("cifar10", 10, 3, cfg.image_size or 32)
    if cfg.name == "imagenet":
        train_dir = _imagenet_dirs(cfg)[0]
        classes = [e.name for e in os.scandir(train_dir) if e.is_dir()]
        return DatasetInfo("imagenet", len(classes), 3, cfg.image_size or 224)
    raise UserError(f"data.name: unknown dataset {cfg.name!r}; allowed: {', '.join(DATASETS)}")


def load_data(cfg):
    """Open the dataset described by ``cfg``.

    Parameters
    ----------
    cfg : hplandscape.study.config.DataConfig

    Returns
    -------
    InMemoryData or FolderData
        Both offer ``info``, ``num_train``, ``num_test``, ``to(device)``,
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
    elif cfg.name == "cifar10":
        data = _load_cifar10(cfg)
    elif cfg.name == "imagenet":
        return FolderData(cfg)
    else:
        raise UserError(f"data.name: unknown dataset {cfg.name!r}; allowed: {', '.join(DATASETS)}")
    return data.subset(cfg.train_subset, cfg.test_subset)


def train_steps(num_train: int, batch_size: int) -> int:
    """SGD steps in one epoch of ``train_batches``: one per batch, but a lone last image is
    dropped (BatchNorm cannot train on a batch of one) unless it is the whole split.

    >>> train_steps(256, 64), train_steps(257, 64), train_steps(258, 64), train_steps(1, 64)
    (4, 4, 5, 1)
    """
    full, rest = divmod(num_train, batch_size)
    return full + (1 if rest > 1 or (rest == 1 and num_train == 1) else 0)


# --------------------------------------------------------------------------------------------
# In-memory datasets and batch augmentation


@dataclass
class InMemoryData:
    """A small dataset held as uint8 NCHW tensors, batched and augmented with tensor ops."""

    info: DatasetInfo
    train_x: torch.Tensor  # uint8, (N, C, H, W)
    train_y: torch.Tensor  # int64, (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor

    def __post_init__(self):
        # Statistics of the training split (method §6), in [0, 1] units, in float64 so that they
        # do not depend on the device or the thread count. They come from each channel's histogram
        # of the 256 pixel values (exact integer counts): converting CIFAR-10's training split to
        # float64 instead took 1.3 s and 2.4 GB at the start of every run.
        c = self.train_x.shape[1]
        counts = torch.stack([torch.bincount(self.train_x[:, i].reshape(-1), minlength=256) for i in range(c)])
        counts = counts.double()
        values = torch.arange(256, dtype=torch.float64) / 255.0
        n = counts.sum(1)
        mean = (counts * values).sum(1) / n
        var = (counts * (values - mean[:, None]) ** 2).sum(1) / (n - 1).clamp_min(1)  # unbiased, as Tensor.std
        self.mean = mean.float()
        self.std = var.sqrt().float().clamp_min(1e-3)

    @property
    def num_train(self) -> int:
        return len(self.train_y)

    @property
    def num_test(self) -> int:
        return len(self.test_y)

    def subset(self, n_train: int | None, n_test: int | None) -> "InMemoryData":
        """The first ``n`` images of a fixed permutation of each split (None: all)."""
        def take(x, y, n):
            if n is None or n >= len(y):
                return x, y
            idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(SUBSET_SEED))[:n]
            idx = idx.sort().values
            return x[idx], y[idx]

        if n_train is None and n_test is None:
            return self
        return InMemoryData(self.info, *take(self.train_x, self.train_y, n_train),
                            *take(self.test_x, self.test_y, n_test))

    def to(self, device) -> "InMemoryData":
        """Move the uint8 tensors to ``device`` once, so batches never cross the bus again."""
        out = InMemoryData.__new__(InMemoryData)
        out.info = self.info
        out.train_x, out.train_y = self.train_x.to(device), self.train_y.to(device)
        out.test_x, out.test_y = self.test_x.to(device), self.test_y.to(device)
        out.mean, out.std = self.mean.to(device), self.std.to(device)
        return out

    def _normalise(self, x_uint8: torch.Tensor, memory_format=torch.contiguous_format) -> torch.Tensor:
        x = x_uint8.float().div_(255.0)
        x = (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        return x.contiguous(memory_format=memory_format)

    def train_batches(self, batch_size: int, generator: torch.Generator, augment: str = "none",
                      device=None, memory_format=torch.contiguous_format) -> Iterator:
        """One epoch of shuffled, augmented, normalised training batches.

        Parameters
        ----------
        batch_size : int
        generator : torch.Generator
            A CPU generator; it alone decides the order, the crops and the flips.
        augment : {"cifar", "digits", "none", "imagenet"}
            ``cifar``: zero-pad 4 px, random crop back to size, random horizontal flip.
            ``digits``: zero-pad ``size // 8`` px and random crop, no flip (a flipped digit is
            another symbol). ``imagenet`` on an in-memory set behaves like ``cifar``.
        device : torch.device, optional
            Where batches are produced (default: where the data lives).

        Yields
        ------
        (x, y) : float32 (B, C, H, W) normalised images and int64 labels.
        """
        n = self.num_train
        order = torch.randperm(n, generator=generator)
        size = self.info.image_size
        pad, flip = _augment_params(augment, size)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) == 1 and n > 1:
                # BatchNorm cannot train on a batch of one image; drop that lone remainder
                # (train_steps counts the batches the same way).
                break
            b = len(idx)
            # Draw every random number on the CPU generator, whatever the device: the stream is
            # then identical on CPU and GPU, and one saved generator state resumes it.
            offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator) if pad else None
            flips = torch.rand(b, generator=generator) < 0.5 if flip else None
            dev = self.train_x.device
            x = self.train_x[idx.to(dev)]
            y = self.train_y[idx.to(dev)]
            if pad:
                x = random_crop(x, offsets[0].to(dev), offsets[1].to(dev), pad)
            if flip:
                x = torch.where(flips.to(dev).view(-1, 1, 1, 1), x.flip(3), x)
            x = self._normalise(x, memory_format)
            if device is not None:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            yield x, y

    def eval_batches(self, batch_size: int, device=None, memory_format=torch.contiguous_format) -> Iterator:
        """The held-out split in order, normalised with the training statistics, no augmentation."""
        for start in range(0, self.num_test, batch_size):
            x = self._normalise(self.test_x[start:start + batch_size], memory_format)
            y = self.test_y[start:start + batch_size]
            if device is not None:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            yield x, y


def _augment_params(augment: str, size: int) -> tuple[int, bool]:
    if augment in ("cifar", "imagenet"):
        return 4 * max(1, size // 32), True
    if augment == "digits":
        return max(1, size // 8), False
    if augment == "none":
        return 0, False
    raise UserError(f"train.augment: unknown augmentation {augment!r}; allowed: {', '.join(AUGMENTATIONS)}")


def random_crop(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad a batch by ``pad`` pixels and crop each image back at its own offset.

    Parameters
    ----------
    x : (B, C, H, W) tensor
    dy, dx : (B,) int64 tensors in ``[0, 2 * pad]``
        Per-image offsets into the padded image (``pad`` = no shift).

    Returns
    -------
    (B, C, H, W) tensor: the same as torchvision's ``RandomCrop(H, padding=pad)`` per image.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (dy.view(b, 1) + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (dx.view(b, 1) + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    bi = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    ci = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[bi, ci, rows, cols]


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
        tr_x, te_x = _resize_uint8(tr_x, size), _resize_uint8(te_x, size)
    return InMemoryData(DatasetInfo("digits", 10, 1, size), tr_x, torch.from_numpy(tr_y),
                        te_x, torch.from_numpy(te_y))


def _resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                      antialias=size < x.shape[-1])
    return y.round_().clamp_(0, 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_reader():
    """torchvision's CIFAR10 reader with the per-file md5 check relaxed to an existence check.

    The reading code (pickles, reshape to HWC, label names from ``batches.meta``) is torchvision's
    own; only the checksums are not enforced, so regenerated or reduced files in the same format
    load too. Their content is validated after loading instead (shapes, labels, classes).
    """
    from torchvision.datasets import CIFAR10

    class _CIFAR10(CIFAR10):
        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = dict(CIFAR10.meta, md5=None)

    return _CIFAR10


def _cifar_folder(cfg) -> Path:
    """The ``cifar-10-batches-py`` folder of ``cfg.root``, checked for every file the reader needs."""
    if not cfg.root:
        raise UserError("data.root is required for cifar10: the directory that holds "
                        f"{CIFAR_FOLDER}/ (or where data.download=true should put it)")
    root = Path(cfg.root)
    folder = root / CIFAR_FOLDER
    if not root.is_dir():
        raise UserError(f"CIFAR-10 data directory {root} does not exist; point data.root at the "
                        f"directory holding {CIFAR_FOLDER}/, or set data.download=true on a machine with internet")
    missing = [n for n in CIFAR_TRAIN_FILES + (CIFAR_TEST_FILE, CIFAR_META_FILE) if not (folder / n).is_file()]
    if missing:
        raise UserError(f"{folder} is not a CIFAR-10 directory in torchvision's format: missing "
                        f"{', '.join(missing)} (expected {', '.join(CIFAR_TRAIN_FILES)}, {CIFAR_TEST_FILE}, "
                        f"{CIFAR_META_FILE}); set data.download=true to fetch it")
    return folder


def _load_cifar10(cfg) -> InMemoryData:
    from torchvision.datasets import CIFAR10

    if cfg.download and cfg.root:
        Path(cfg.root).mkdir(parents=True, exist_ok=True)
        CIFAR10(cfg.root, train=True, download=True)  # verifies the archive's md5
    folder = _cifar_folder(cfg)
    root = folder.parent
    reader = _cifar_reader()
    splits = []
    for train in (True, False):
        try:
            ds = reader(str(root), train=train, download=False)
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, UnicodeDecodeError,
                AttributeError, RuntimeError) as e:
            raise UserError(f"{folder}: cannot read the {'training' if train else 'test'} batches as "
                            f"CIFAR-10 pickles ({e.__class__.__name__}: {e}); the files are corrupt or "
                            "not in torchvision's format") from None
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        y = torch.tensor(ds.targets, dtype=torch.int64)
        if x.dtype != torch.uint8 or len(y) != len(x):
            raise UserError(f"{folder}: expected uint8 images with one label each, got {x.dtype} "
                            f"images and {len(y)} labels for {len(x)} images")
        if len(y) and (y.min() < 0 or y.max() >= len(CIFAR_CLASSES)):
            raise UserError(f"{folder}: labels must lie in 0..9 for CIFAR-10, found {int(y.min())}..{int(y.max())}")
        if len(ds.classes) != len(CIFAR_CLASSES):
            raise UserError(f"{folder / CIFAR_META_FILE}: lists {len(ds.classes)} classes, CIFAR-10 has 10")
        splits += [x, y]
    size = cfg.image_size or 32
    if size != 32:
        splits[0], splits[2] = _resize_uint8(splits[0], size), _resize_uint8(splits[2], size)
    return InMemoryData(DatasetInfo("cifar10", 10, 3, size), *splits)


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
