"""Any image dataset as class folders: ``data.name: imagefolder``.

Layout (torchvision's ImageFolder): ``root/train/<class>/…`` and ``root/val/<class>/…``. Every
folder in ``train/`` is a class (classes are numbered in sorted order), images in folders below a
class folder count for it, and ``val/`` must hold the same classes. Images may have any size and
mode, in any format Pillow reads (:data:`IMAGE_EXTENSIONS`): each is cropped to its central square
and resized to ``image_size`` × ``image_size`` (Pillow's bilinear resize of that box, antialiased
when it shrinks), in RGB, or in greyscale with ``data.channels: 1``. Hidden files and folders
(``.DS_Store``, ``.ipynb_checkpoints``) are skipped; any other file that is not an image, an empty
class folder or an image that cannot be decoded is an error that names it.

Two ways to serve the images give the same batches (the same pixels, order, crops, flips and
normalisation statistics), so neither enters a run's fingerprint:

- **in memory**: decoded once into uint8 N×C×H×W arrays, cached on disk and memory-mapped, then
  batched by :class:`~hplandscape.training.batches.InMemoryData`;
- **streamed** (:class:`StreamedFolderData`): each batch's files are decoded again, every epoch, by
  ``data.num_workers`` DataLoader processes, then cropped, flipped and normalised by the same
  tensor code.

``data.in_memory: auto`` (the default) holds them in memory when the decoded train and val images
take at most :func:`in_memory_limit` bytes; ``true`` and ``false`` force either way. A subset
(``train_subset``, ``test_subset``) is chosen from the file lists first, so only its images are
decoded, and counted against the limit.

The cache
---------
The decoded arrays live in ``$HPLANDSCAPE_CACHE/imagefolder/`` (default
``~/.cache/hplandscape/imagefolder/``): ``<key>.npy`` per split, and ``<key>.counts.json``, the
training split's per-channel pixel histograms (its normalisation statistics; a streamed folder
has only these). The key is a hash of every selected file's path, class, size and modification
time, the image size, the channels and Pillow's version: a changed, added or removed image makes
a new entry, and an old one is never read again (delete the folder to reclaim its space). Entries
are written atomically under a lock, so concurrent workers wait for the one that decodes and then
map the same file, whose pages the operating system shares between them. Where the cache cannot
be written (a read-only home), every process decodes for itself, with a warning.

Examples
--------
>>> import tempfile, numpy as np
>>> from PIL import Image
>>> from hplandscape.study.config import DataConfig
>>> root = Path(tempfile.mkdtemp())
>>> for split in ("train", "val"):
...     for c in ("cat", "dog"):
...         (root / split / c).mkdir(parents=True)
...         Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(root / split / c / "a.png")
>>> folder_info(DataConfig(name="imagefolder", root=str(root), image_size=16))
DatasetInfo(name='imagefolder', num_classes=2, in_channels=3, image_size=16)
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from hplandscape.atomic import atomic_open, file_lock, write_text
from hplandscape.errors import UserError
from hplandscape.training.batches import (DatasetInfo, InMemoryData, augment_batch, augment_params, channel_counts,
                                          channel_stats, epoch_batches, normalise, subset_indices)

log = logging.getLogger(__name__)

#: File name endings read as images (torchvision's ``IMG_EXTENSIONS``), compared in lower case.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val")
#: Part of every cache key: raise it when decoding changes, so no entry of the old decoding is read.
CACHE_FORMAT = 1
CACHE_ENV = "HPLANDSCAPE_CACHE"
#: Under ``data.in_memory: auto``, decoded images are held in memory while they take at most this
#: fraction of the machine's physical memory (docs/performance.md, "Image folders").
IN_MEMORY_FRACTION = 0.25
#: Images decoded per DataLoader batch while filling the cache or counting a streamed split.
_DECODE_BATCH = 256


class Listing(NamedTuple):
    """An image folder's classes and its ``(path, label)`` files per split, in a fixed order."""

    classes: tuple
    train: list
    val: list


def cache_dir() -> Path:
    """Where decoded image folders are cached: ``$HPLANDSCAPE_CACHE/imagefolder`` (default
    ``~/.cache/hplandscape/imagefolder``)."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/hplandscape").expanduser() / "imagefolder"


def in_memory_limit() -> int:
    """Bytes of decoded images held in memory under ``data.in_memory: auto``: a quarter of this
    machine's physical memory (:data:`IN_MEMORY_FRACTION`; docs/performance.md says why)."""
    return int(IN_MEMORY_FRACTION * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def folder_info(cfg) -> DatasetInfo:
    """Classes, channels and image size of an image folder, from its file lists (no image is read).

    Raises
    ------
    UserError
        The layout is wrong (missing ``train/`` or ``val/``, different classes, an empty class
        folder, a file that is not an image); the message names the path.
    """
    return DatasetInfo("imagefolder", len(scan(cfg).classes), cfg.channels or 3, cfg.image_size)


def scan(cfg) -> Listing:
    """List the images of ``cfg.root`` (see the module's docstring for the layout and the errors)."""
    if not cfg.root:
        raise UserError("data.root is required for imagefolder: the directory holding train/ and val/")
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist; data.root must hold train/<class>/ and "
                        "val/<class>/ folders of images")
    dirs = [root / split for split in SPLITS]
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"{root} is not an image folder: {d} is missing (expected train/<class>/<image> "
                            "and val/<class>/<image>)")
    classes = [sorted(e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")) for d in dirs]
    if not classes[0]:
        raise UserError(f"{dirs[0]} holds no class folders: put each class's images in a folder of its own "
                        f"(train/<class>/<image>)")
    if classes[0] != classes[1]:
        only_t = sorted(set(classes[0]) - set(classes[1]))
        only_v = sorted(set(classes[1]) - set(classes[0]))
        raise UserError(f"{dirs[0]} and {dirs[1]} hold different classes ({len(classes[0])} and {len(classes[1])} "
                        f"folders; only in train/: {_few(only_t)}; only in val/: {_few(only_v)}): both must have one "
                        "folder per class, named alike")
    files = []
    for d in dirs:
        split = []
        for label, name in enumerate(classes[0]):
            found = _image_files(d / name)
            if not found:
                raise UserError(f"{d / name} is an empty class folder: every class needs images in train/ and "
                                "val/; remove the folder from both or add images")
            split += [(path, label) for path in found]
        files.append(split)
    return Listing(tuple(classes[0]), *files)


def _few(names: list) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") if names else "none"


def _image_files(folder: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                raise UserError(f"{path} is not an image file (the name must end in one of "
                                f"{', '.join(IMAGE_EXTENSIONS)}); move it out of the class folder")
            out.append(path)
    return out


def decode_image(path: str, size: int, channels: int = 3) -> np.ndarray:
    """One image file as uint8 (channels, size, size): its central square resized to ``size``.

    A JPEG is decoded at the smallest of its built-in reduced scales (1/2, 1/4, 1/8) that still
    covers ``size`` (Pillow's ``draft``), which makes a large JPEG several times faster to read.

    Raises
    ------
    UserError
        Pillow cannot read the file; the message names it.
    """
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as im:
            im.draft(mode, (size, size))
            im = im.convert(mode)
        w, h = im.size
        side = min(w, h)
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
        im = im.resize((size, size), Image.Resampling.BILINEAR, box=box)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise UserError(f"{path}: cannot read it as an image ({type(e).__name__}: {e}); replace the file or "
                        "move it out of the image folder") from None
    a = np.array(im, dtype=np.uint8)  # a copy Pillow does not own: torch may write to it
    return a[None] if channels == 1 else np.ascontiguousarray(a.transpose(2, 0, 1))


class _Files(torch.utils.data.Dataset):
    """``(uint8 image, label, error)`` per file; an unreadable file gives a blank image and its
    error message, which the process that trains raises (an exception raised in a DataLoader
    worker would reach it wrapped in that worker's traceback)."""

    def __init__(self, files: list, size: int, channels: int):
        self.paths = [path for path, _ in files]
        self.labels = [label for _, label in files]
        self.size, self.channels = size, channels

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            return torch.from_numpy(decode_image(self.paths[i], self.size, self.channels)), self.labels[i], ""
        except UserError as e:
            return torch.zeros(self.channels, self.size, self.size, dtype=torch.uint8), self.labels[i], str(e)


def _batches(files: _Files, batches: list, num_workers: int, pin: bool = False):
    """``(x uint8, y)`` of each index list in ``batches``, decoded by a DataLoader."""
    from torch.utils.data import DataLoader

    # Its own generator: the DataLoader draws a seed for its workers, which must not come from
    # the run's generator (the in-memory path draws none) nor from torch's global one.
    loader = DataLoader(files, batch_sampler=batches, num_workers=num_workers, pin_memory=pin,
                        generator=torch.Generator())
    for x, y, errors in loader:
        bad = [e for e in errors if e]
        if bad:
            more = f" (and {len(bad) - 1} more unreadable files in the same batch)" if len(bad) > 1 else ""
            raise UserError(bad[0] + more)
        yield x, y


def _sequential(n: int, batch_size: int) -> list:
    return [list(range(start, min(start + batch_size, n))) for start in range(0, n, batch_size)]


# --------------------------------------------------------------------------------------------
# Loading: in memory or streamed


def load_image_folder(cfg):
    """The image folder of ``cfg``, in memory or streamed (see the module's docstring).

    Returns
    -------
    InMemoryData or StreamedFolderData
    """
    listing = scan(cfg)
    train, val = _select(listing.train, cfg.train_subset), _select(listing.val, cfg.test_subset)
    channels, size = cfg.channels or 3, cfg.image_size
    info = DatasetInfo("imagefolder", len(listing.classes), channels, size)
    nbytes = (len(train) + len(val)) * channels * size * size
    in_memory = cfg.in_memory if cfg.in_memory is not None else nbytes <= in_memory_limit()
    log.info("image folder %s: %d training and %d val images of %d classes at %d×%d×%d, %.2f GiB decoded: %s",
             cfg.root, len(train), len(val), info.num_classes, channels, size, size, nbytes / 2**30,
             "in memory" if in_memory else "streamed")
    cache = _Cache(cfg, channels, size)
    train_y = torch.tensor([label for _, label in train], dtype=torch.int64)
    val_y = torch.tensor([label for _, label in val], dtype=torch.int64)
    if in_memory:
        train_x, val_x = cache.images(train, "train"), cache.images(val, "val")
        counts = cache.counts(train, lambda: channel_counts(train_x))
        return InMemoryData(info, train_x, train_y, val_x, val_y, counts=counts)
    counts = cache.counts(train, lambda: _streamed_counts(train, size, channels, cfg.num_workers))
    return StreamedFolderData(info, train, val, counts, cfg.num_workers)


def _select(files: list, k: int | None) -> list:
    """The files of a ``k``-image subset: the images :meth:`InMemoryData.subset` would keep."""
    if k is None or k >= len(files):
        return files
    return [files[i] for i in subset_indices(len(files), k).tolist()]


def _streamed_counts(files: list, size: int, channels: int, num_workers: int) -> torch.Tensor:
    counts = torch.zeros(channels, 256, dtype=torch.int64)
    for x, _ in _batches(_Files(files, size, channels), _sequential(len(files), _DECODE_BATCH), num_workers):
        counts += channel_counts(x)
    return counts


class StreamedFolderData:
    """An image folder decoded batch by batch, every epoch: the batches of the in-memory path.

    The order is drawn from the run's generator as :class:`InMemoryData` draws it, the decoded
    uint8 batch crosses to the device, where :func:`~hplandscape.training.batches.augment_batch` crops
    and flips it and :func:`~hplandscape.training.batches.normalise` applies the training split's
    statistics.
    """

    def __init__(self, info: DatasetInfo, train: list, val: list, counts: torch.Tensor, num_workers: int):
        self.info = info
        self.train = _Files(train, info.image_size, info.in_channels)
        self.test = _Files(val, info.image_size, info.in_channels)
        self.mean, self.std = channel_stats(counts)
        self.num_workers = num_workers

    @property
    def num_train(self) -> int:
        return len(self.train)

    @property
    def num_test(self) -> int:
        return len(self.test)

    def to(self, device) -> "StreamedFolderData":
        out = copy.copy(self)  # the images stay files; only the statistics move
        out.mean, out.std = self.mean.to(device), self.std.to(device)
        return out

    def train_batches(self, batch_size: int, generator: torch.Generator, augment: str = "cifar", device=None,
                      memory_format=torch.contiguous_format):
        """One epoch, as :meth:`InMemoryData.train_batches` (the same batches for the same generator)."""
        pad, flip = augment_params(augment, self.info.image_size)
        order = [idx.tolist() for idx in epoch_batches(self.num_train, batch_size, generator)]
        for x, y in _batches(self.train, order, self.num_workers, _cuda(device)):
            x, y = augment_batch(x, y, generator, pad, flip, device)
            yield self._normalise(x, memory_format), y

    def eval_batches(self, batch_size: int, device=None, memory_format=torch.contiguous_format):
        """The val split in order, normalised with the training statistics, no augmentation."""
        for x, y in _batches(self.test, _sequential(self.num_test, batch_size), self.num_workers, _cuda(device)):
            if device is not None:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            yield self._normalise(x, memory_format), y

    def _normalise(self, x_uint8: torch.Tensor, memory_format=torch.contiguous_format) -> torch.Tensor:
        return normalise(x_uint8, self.mean, self.std, memory_format)


def _cuda(device) -> bool:
    return device is not None and torch.device(device).type == "cuda"


# --------------------------------------------------------------------------------------------
# The cache of decoded arrays


class _Cache:
    """Decoded splits and training histograms of one image folder under :func:`cache_dir`."""

    def __init__(self, cfg, channels: int, size: int):
        self.dir = cache_dir()
        self.cfg, self.channels, self.size = cfg, channels, size
        self._keys: dict = {}  # split → key: each file is looked up once

    def key(self, files: list, split: str) -> str:
        if split not in self._keys:
            self._keys[split] = self._key(files, split)
        return self._keys[split]

    def _key(self, files: list, split: str) -> str:
        from PIL import __version__ as pillow

        h = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, "pillow": pillow, "split": split, "size": self.size,
                                       "channels": self.channels}, sort_keys=True).encode())
        for path, label in files:
            try:
                st = os.stat(path)
            except OSError as e:
                raise UserError(f"{path}: cannot read it ({type(e).__name__}); was the image folder changed "
                                "while it was being read?") from None
            h.update(f"{path}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:40]

    def images(self, files: list, split: str) -> torch.Tensor:
        """The split's decoded uint8 (N, C, H, W) images, memory-mapped from the cache when it has them
        (decoded and written there first when it does not)."""
        shape = (len(files), self.channels, self.size, self.size)
        path = self.dir / f"{self.key(files, split)}.npy"

        def write():
            log.info("decoding %d images of %s/%s into %s", len(files), self.cfg.root, split, path)
            with atomic_open(path, "wb") as f:
                self._decode(files, f)

        try:
            x = self._filled(path, lambda: _read_array(path, shape), write)
        except OSError as e:
            log.warning("cannot cache the decoded images in %s (%s: %s); decoding them in this process only "
                        "(set %s to a writable directory)", self.dir, type(e).__name__, e, CACHE_ENV)
            x = None
        if x is None:
            x = torch.empty(shape, dtype=torch.uint8)
            self._decode(files, None, x)
        return x

    def _filled(self, path: Path, read, write):
        """``read()`` of the cache entry at ``path``; when it has none, ``write()`` it first, once:
        under the entry's lock, where another worker may have written it while this one waited.
        None when the entry written cannot be read back; an ``OSError`` when it cannot be written."""
        found = read()
        if found is not None:
            return found
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_suffix(".lock")):
            found = read()
            if found is None:
                write()
                found = read()
        return found

    def _decode(self, files: list, f=None, out: torch.Tensor | None = None) -> None:
        """Decode ``files`` in order into the open ``.npy`` file ``f`` (written as it goes: no copy
        of the whole split is held) or into ``out``."""
        if f is not None:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                                     "fortran_order": False,
                                                     "shape": (len(files), self.channels, self.size, self.size)})
        batches = _sequential(len(files), _DECODE_BATCH)
        for idx, (x, _) in zip(batches, _batches(_Files(files, self.size, self.channels), batches,
                                                 self.cfg.num_workers)):
            if f is not None:
                f.write(x.numpy().tobytes())
            else:
                out[idx[0]:idx[-1] + 1] = x

    def counts(self, files: list, compute) -> torch.Tensor:
        """The training split's per-channel pixel histograms, from the cache or ``compute()``."""
        path = self.dir / f"{self.key(files, 'train')}.counts.json"
        shape = (self.channels, 256)
        try:
            found = self._filled(path, lambda: _read_counts(path, shape),
                                 lambda: write_text(path, json.dumps({"counts": compute().tolist()})))
            return compute() if found is None else found
        except OSError as e:
            log.warning("cannot cache the image folder's statistics in %s (%s: %s)", self.dir, type(e).__name__, e)
            return compute()


def _read_array(path: Path, shape: tuple) -> torch.Tensor | None:
    """The cached array at ``path`` memory-mapped copy-on-write (never written: its pages stay
    shared), or None when it is absent or not the array expected."""
    try:
        a = np.load(path, mmap_mode="c")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, EOFError) as e:
        log.warning("%s: unreadable cache entry (%s: %s); decoding again", path, type(e).__name__, e)
        return None
    if a.shape != shape or a.dtype != np.uint8:
        log.warning("%s: cache entry holds %s %s, expected uint8 %s; decoding again", path, a.dtype, a.shape, shape)
        return None
    return torch.from_numpy(a)


def _read_counts(path: Path, shape: tuple) -> torch.Tensor | None:
    try:
        counts = torch.tensor(json.loads(path.read_text())["counts"], dtype=torch.int64)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("%s: unreadable cache entry (%s: %s); counting again", path, type(e).__name__, e)
        return None
    return counts if tuple(counts.shape) == shape else None
