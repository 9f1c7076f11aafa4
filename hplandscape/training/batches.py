"""The in-memory batch pipeline every dataset shares: uint8 images, tensor augmentation, statistics.

:class:`InMemoryData` holds a dataset as uint8 N×C×H×W tensors and batches it; the pieces it is made
of are functions, so a streamed image folder
(:class:`hplandscape.training.image_folder.StreamedFolderData`) makes the same batches from
images it decodes batch by batch: :func:`epoch_batches` (the order), :func:`augment_batch` (crops
and flips), :func:`normalise`, :func:`channel_counts` and :func:`channel_stats` (the training
split's statistics), :func:`subset_indices` (a fixed subset). The datasets themselves are opened by
:mod:`hplandscape.training.data`.

It's much faster to index and crop a uint8 tensor a whole batch at a time than to build 128 PIL
images per step, and the same code runs on the GPU when the tensors live there. Every random
choice (order, crop offsets, flips) is drawn from the ``torch.Generator`` the caller passes, so a
seed fixes the data stream and saving the generator's state is enough to resume it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F

from hplandscape.errors import UserError
from hplandscape.study.recipes import AUGMENTATIONS

SUBSET_SEED = 0  # subsets are a property of the data, not of the run: the same for every seed
#: In-memory data moves to a CUDA device (``to``) only when its uint8 images take at most this
#: fraction of the device's memory; larger sets stay in host memory and each batch is copied over
#: as uint8, then cropped, flipped and normalised on the device. Several runs may share one GPU.
DEVICE_DATA_FRACTION = 0.25

log = logging.getLogger(__name__)

class DatasetInfo(NamedTuple):
    """Shape facts about a dataset, cheap to obtain (the planner needs them for FLOPs)."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int



def train_steps(num_train: int, batch_size: int) -> int:
    """SGD steps in one epoch of ``train_batches``: one per batch, but a lone last image is
    dropped (BatchNorm cannot train on a batch of one) unless it is the whole split.

    >>> train_steps(256, 64), train_steps(257, 64), train_steps(258, 64), train_steps(1, 64)
    (4, 4, 5, 1)
    """
    full, rest = divmod(num_train, batch_size)
    return full + (1 if rest > 1 or (rest == 1 and num_train == 1) else 0)


# --------------------------------------------------------------------------------------------
# In-memory datasets


@dataclass
class InMemoryData:
    """A small dataset held as uint8 NCHW tensors, batched and augmented with tensor ops."""

    info: DatasetInfo
    train_x: torch.Tensor  # uint8, (N, C, H, W)
    train_y: torch.Tensor  # int64, (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    #: ``channel_counts(train_x)`` when the caller has them already (an image folder's cache).
    counts: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        counts = channel_counts(self.train_x) if self.counts is None else self.counts
        self.mean, self.std = channel_stats(counts)

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
            idx = subset_indices(len(y), n)
            return x[idx], y[idx]

        if n_train is None and n_test is None:
            return self
        return InMemoryData(self.info, *take(self.train_x, self.train_y, n_train),
                            *take(self.test_x, self.test_y, n_test))

    def to(self, device) -> "InMemoryData":
        """Move the uint8 tensors to ``device`` once, so batches never cross the bus again.

        On a CUDA device only when they take at most :data:`DEVICE_DATA_FRACTION` of its memory;
        larger sets stay where they are and each batch is copied over (``train_batches(device=)``).
        """
        device = torch.device(device)
        nbytes = sum(t.numel() * t.element_size() for t in (self.train_x, self.test_x))
        if device.type == "cuda" and \
                nbytes > DEVICE_DATA_FRACTION * torch.cuda.get_device_properties(device).total_memory:
            log.info("%s: %.1f GiB of images stay in host memory (over %.0f %% of %s's memory); batches are "
                     "copied to it one by one", self.info.name, nbytes / 2**30, 100 * DEVICE_DATA_FRACTION, device)
            return self
        out = InMemoryData.__new__(InMemoryData)
        out.info, out.counts = self.info, None
        out.train_x, out.train_y = self.train_x.to(device), self.train_y.to(device)
        out.test_x, out.test_y = self.test_x.to(device), self.test_y.to(device)
        out.mean, out.std = self.mean.to(device), self.std.to(device)
        return out

    def _normalise(self, x_uint8: torch.Tensor, memory_format=torch.contiguous_format) -> torch.Tensor:
        return normalise(x_uint8, self.mean, self.std, memory_format)

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
        pad, flip = augment_params(augment, self.info.image_size)
        dev = self.train_x.device
        for idx in epoch_batches(self.num_train, batch_size, generator):
            idx = idx.to(dev)
            x, y = augment_batch(self.train_x[idx], self.train_y[idx], generator, pad, flip, device)
            yield self._normalise(x, memory_format), y

    def eval_batches(self, batch_size: int, device=None, memory_format=torch.contiguous_format) -> Iterator:
        """The held-out split in order, normalised with the training statistics, no augmentation."""
        for start in range(0, self.num_test, batch_size):
            x, y = self.test_x[start:start + batch_size], self.test_y[start:start + batch_size]
            if device is not None:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            yield self._normalise(x, memory_format), y


def subset_indices(n: int, k: int) -> torch.Tensor:
    """The sorted indices of a ``k``-image subset of ``n`` images: the first ``k`` of a permutation
    fixed by :data:`SUBSET_SEED`, the same for every run, seed and split.

    >>> subset_indices(10, 3).tolist()
    [1, 4, 7]
    """
    return torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))[:k].sort().values


def channel_counts(x_uint8: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Each channel's histogram of the 256 pixel values of uint8 (N, C, H, W) images: (C, 256)
    int64, counted ``chunk`` images at a time (a large memory-mapped set is never copied whole)."""
    c = x_uint8.shape[1]
    counts = torch.zeros(c, 256, dtype=torch.int64)
    for start in range(0, len(x_uint8), chunk):
        part = x_uint8[start:start + chunk]
        counts += torch.stack([torch.bincount(part[:, i].reshape(-1), minlength=256).cpu() for i in range(c)])
    return counts


def channel_stats(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(mean, std)`` in [0, 1] units from :func:`channel_counts`.

    Statistics of the training split (method §6), in float64 so that they do not depend on the
    device or the thread count; the std is unbiased, as ``Tensor.std``. Histograms are exact
    integer counts: converting CIFAR-10's training split to float64 instead took 1.3 s and 2.4 GB
    at the start of every run, and a streamed image folder adds up its batches' counts.
    """
    counts = counts.double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    n = counts.sum(1)
    mean = (counts * values).sum(1) / n
    var = (counts * (values - mean[:, None]) ** 2).sum(1) / (n - 1).clamp_min(1)
    return mean.float(), var.sqrt().float().clamp_min(1e-3)


def normalise(x_uint8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
              memory_format=torch.contiguous_format) -> torch.Tensor:
    """uint8 images → float32, minus the training mean, over the training std, per channel."""
    x = x_uint8.float().div_(255.0)
    mean, std = mean.to(x.device), std.to(x.device)
    x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    return x.contiguous(memory_format=memory_format)


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list:
    """One epoch's index batches in a generator-drawn order (the generator's first draw of the
    epoch). A lone last image is dropped: BatchNorm cannot train on a batch of one
    (:func:`train_steps` counts the batches the same way)."""
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(batch_size))
    if n > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def augment_batch(x, y, generator: torch.Generator, pad: int, flip: bool, device=None):
    """Crop and flip one uint8 training batch on ``device`` (default: where it is); the caller
    normalises it (:func:`normalise`).

    Every random number is drawn on the CPU generator, whatever the device, offsets before flips:
    the stream is then identical on CPU and GPU, for in-memory and streamed data, and one saved
    generator state resumes it. The uint8 batch crosses to the device before it becomes float.
    """
    b = len(y)
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator) if pad else None
    flips = torch.rand(b, generator=generator) < 0.5 if flip else None
    if device is not None:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    dev = x.device
    if pad:
        x = random_crop(x, offsets[0].to(dev), offsets[1].to(dev), pad)
    if flip:
        x = torch.where(flips.to(dev).view(-1, 1, 1, 1), x.flip(3), x)
    return x, y


def augment_params(augment: str, size: int) -> tuple[int, bool]:
    """``(pad, flip)`` of a ``train.augment`` family at image size ``size``."""
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


def resize_uint8(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) images resized to ``size`` × ``size``: bilinear, antialiased when shrinking."""
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                      antialias=size < x.shape[-1])
    return y.round_().clamp_(0, 255).to(torch.uint8)
