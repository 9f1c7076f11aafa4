"""Data from a loader of one's own: ``data.python: "package.module:loader"``.

The loader is looked for on ``PYTHONPATH`` and beside the study's YAML file when the config is
validated, and recorded with its file's sha256 (:mod:`hplandscape.user_code`); every process
that runs the study imports that file and refuses it once it changed. It is called once per
process, with no arguments, or with ``data.root`` (an absolute path, as a string) when the
study gives one, and returns ``(train, test)``. Each split is either

- a pair ``(x, y)``: ``x`` a uint8 tensor or NumPy array of N×C×H×W images, ``y`` N integer
  labels (a tensor, an array or a list); or
- a dataset (anything with ``len()`` and ``[i]``, such as a ``torch.utils.data.Dataset``) of
  ``(image, label)`` pairs, an image being a PIL image (modes ``L`` and ``1`` give one channel,
  every other mode is converted to RGB) or a C×H×W tensor, uint8 or float in [0, 1] (as
  torchvision's ``ToTensor`` makes them; rounded to uint8).

Both splits are held in memory as uint8 tensors and served by
:class:`~hplandscape.training.batches.InMemoryData`: tensor augmentation and the training split's
normalisation statistics, as for CIFAR. All images must have one size and be square, unless
``data.image_size`` is given: each is then cropped to its central square and resized to
``image_size`` (bilinear, antialiased), as an image folder's are. There are
``len(train.classes)`` classes when the training split has a ``classes`` attribute, else its
largest label + 1; every label of either split must be an integer in [0, classes).

Examples
--------
>>> import sys, tempfile, textwrap, pathlib
>>> from hplandscape.study.config import DataConfig
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "toy_data.py").write_text(textwrap.dedent('''
...     import torch
...     def load():
...         x = torch.randint(0, 256, (20, 1, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
...         y = torch.arange(20) % 4
...         return (x[:16], y[:16]), (x[16:], y[16:])
... '''))
>>> sys.path.insert(0, str(folder))
>>> python_data(DataConfig(name="python", python="toy_data:load")).info
DatasetInfo(name='python', num_classes=4, in_channels=1, image_size=6)
>>> sys.path.remove(str(folder)); del sys.modules["toy_data"]
"""

from __future__ import annotations

import functools
import json

import numpy as np
import torch

from hplandscape.errors import UserError
from hplandscape.training.batches import DatasetInfo, InMemoryData, resize_uint8
from hplandscape.user_code import CodeSource, locate


def python_data(cfg) -> InMemoryData:
    """The data ``cfg.python``'s loader returns, checked and held in memory; the loader runs once
    per process (:func:`dataset_info` and :func:`load_data` share its result).

    Raises
    ------
    UserError
        The loader cannot be imported, raised, or returned something else than described in the
        module's docstring; the message names the loader, the split, and the item or value.
    """
    source = json.dumps(cfg.python_source, sort_keys=True) if cfg.python_source is not None else None
    return _load(cfg.python, source, cfg.root, cfg.image_size)


@functools.lru_cache(maxsize=2)
def _load(import_path: str, source: str | None, root: str | None, image_size: int | None) -> InMemoryData:
    what = f"data.python {import_path!r}"
    if source is not None:  # as the study recorded it: the same file, its hash checked
        loader = CodeSource.from_dict(json.loads(source), "data.python_source").load("data.python")
    else:  # a DataConfig made in Python, never validated from a file: on sys.path
        loader = locate(import_path, what="data.python").load("data.python")
    if not callable(loader):
        raise UserError(f"{what} is a {type(loader).__name__}, not a function: name the function that returns "
                        "(train, test)")
    try:
        result = loader(root) if root is not None else loader()
    except Exception as e:  # the user's code: whatever it raises is reported, with its type
        raise UserError(f"{what}: the loader raised {type(e).__name__}: {e}") from None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise UserError(f"{what}: the loader must return (train, test), got {_describe(result)}")
    (train_x, train_y, classes), (test_x, test_y, _) = (_split(what, name, part) for name, part in
                                                         zip(("training", "test"), result))
    if train_x.shape[1:] != test_x.shape[1:]:
        raise UserError(f"{what}: the training images are {_shape(train_x.shape[1:])}, the test images "
                        f"{_shape(test_x.shape[1:])}: both splits must have one size")
    c, h, w = train_x.shape[1:]
    if image_size is None and h != w:
        raise UserError(f"{what}: the images are {_shape((c, h, w))}, not square; set data.image_size to crop "
                        "them to their central square and resize them")
    size = image_size or h
    if (h, w) != (size, size):
        train_x, test_x = _square(train_x, size), _square(test_x, size)
    num_classes = _num_classes(what, classes, train_y)
    for name, y in (("training", train_y), ("test", test_y)):
        bad = ((y < 0) | (y >= num_classes)).nonzero()
        if len(bad):
            i = int(bad[0])
            why = f"len(classes) = {num_classes}" if classes is not None else \
                f"the training split's largest label is {num_classes - 1}"
            raise UserError(f"{what}: {name} label {int(y[i])} (item {i}) is outside 0..{num_classes - 1} ({why})")
    return InMemoryData(DatasetInfo("python", num_classes, c, size), train_x, train_y, test_x, test_y)


def _num_classes(what: str, classes, train_y: torch.Tensor) -> int:
    if classes is not None:
        try:
            n = len(classes)
        except TypeError:
            raise UserError(f"{what}: the training split's classes attribute must be a sequence of class names, "
                            f"got {_describe(classes)}") from None
    else:
        n = int(train_y.max()) + 1
    if n < 2:
        raise UserError(f"{what}: the training split has {n} class{'es' if n != 1 else ''}; a classifier needs two "
                        "or more")
    return n


def _split(what: str, name: str, part) -> tuple:
    """One split as (uint8 N×C×H×W images, int64 labels, its ``classes`` or None)."""
    if isinstance(part, (tuple, list)):
        if len(part) != 2:
            raise UserError(f"{what}: the {name} split must be a pair (images, labels) or a dataset of "
                            f"(image, label) pairs, got a {type(part).__name__} of {len(part)}")
        x = _image_array(what, name, part[0])
        return x, _label_array(what, name, part[1], len(x)), None
    if hasattr(part, "__len__") and hasattr(part, "__getitem__"):
        x, y = _from_dataset(what, name, part)
        return x, y, getattr(part, "classes", None)
    raise UserError(f"{what}: the {name} split must be a pair (images, labels) or a dataset of (image, label) "
                    f"pairs, got {_describe(part)}")


def _image_array(what: str, name: str, x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        x = x.detach().cpu().contiguous()
    else:
        raise UserError(f"{what}: the {name} images must be a uint8 N×C×H×W tensor or NumPy array, got "
                        f"{_describe(x)}")
    if x.dtype != torch.uint8 or x.dim() != 4:
        hint = " (float images in [0, 1]: (x * 255).round().to(torch.uint8))" if x.is_floating_point() else ""
        raise UserError(f"{what}: the {name} images must be a uint8 N×C×H×W tensor or array, got "
                        f"{str(x.dtype).replace('torch.', '')} of shape {tuple(x.shape)}{hint}")
    if len(x) == 0:
        raise UserError(f"{what}: the {name} split holds no images")
    return x


def _label_array(what: str, name: str, y, n: int) -> torch.Tensor:
    try:
        y = torch.as_tensor(np.asarray(y) if isinstance(y, (list, tuple)) else y)
    except (TypeError, ValueError, RuntimeError):
        raise UserError(f"{what}: the {name} labels must be N integers (a tensor, an array or a list), got "
                        f"{_describe(y)}") from None
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex() or y.dim() != 1 or len(y) != n:
        raise UserError(f"{what}: the {name} labels must be {n} integers, one per image, got "
                        f"{str(y.dtype).replace('torch.', '')} of shape {tuple(y.shape)}")
    return y.to(torch.int64)


def _from_dataset(what: str, name: str, ds) -> tuple:
    try:
        n = len(ds)
    except Exception as e:
        raise UserError(f"{what}: len() of the {name} dataset raised {type(e).__name__}: {e}") from None
    if n == 0:
        raise UserError(f"{what}: the {name} split holds no images")
    x = None
    y = torch.empty(n, dtype=torch.int64)
    for i in range(n):
        try:
            item = ds[i]
        except Exception as e:
            raise UserError(f"{what}: reading {name} item {i} raised {type(e).__name__}: {e}") from None
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise UserError(f"{what}: {name} item {i} must be an (image, label) pair, got {_describe(item)}")
        image = _image(what, name, i, item[0])
        if x is None:
            x = torch.empty((n, *image.shape), dtype=torch.uint8)
        elif image.shape != x.shape[1:]:
            raise UserError(f"{what}: {name} item {i} is {_shape(image.shape)}, item 0 is {_shape(x.shape[1:])}: "
                            "all images must have one size")
        x[i] = image
        y[i] = _label(what, name, i, item[1])
    return x, y


def _image(what: str, name: str, i: int, image) -> torch.Tensor:
    from PIL import Image

    if isinstance(image, Image.Image):
        a = np.asarray(image.convert("L" if image.mode in ("L", "1") else "RGB"), dtype=np.uint8)
        return torch.from_numpy(a[None] if a.ndim == 2 else a.transpose(2, 0, 1).copy())
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        image = image.detach().cpu()
        if image.dtype == torch.uint8:
            return image
        if image.is_floating_point():
            if image.numel() and not (0.0 <= float(image.min()) and float(image.max()) <= 1.0):
                raise UserError(f"{what}: {name} item {i} is a float image with values in "
                                f"[{float(image.min()):.3g}, {float(image.max()):.3g}]; float images must lie in "
                                "[0, 1] (as ToTensor makes them): return them before Normalize")
            return image.mul(255.0).round_().to(torch.uint8)
    raise UserError(f"{what}: {name} item {i}: the image must be a PIL image or a C×H×W uint8 or float tensor, "
                    f"got {_describe(image)}")


def _label(what: str, name: str, i: int, label) -> int:
    if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point() \
            and label.dtype != torch.bool:
        return int(label)
    if isinstance(label, (int, np.integer)) and not isinstance(label, (bool, np.bool_)):
        return int(label)
    raise UserError(f"{what}: {name} item {i}: the label must be an integer, got {_describe(label)}")


def _square(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central square of every image, resized to ``size``."""
    h, w = x.shape[2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, :, top:top + side, left:left + side]
    return x if side == size else resize_uint8(x, size)


def _shape(shape) -> str:
    return "×".join(str(int(d)) for d in shape)


def _describe(value) -> str:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"a {type(value).__name__} of shape {tuple(value.shape)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '…' if len(text) > 60 else text}"
