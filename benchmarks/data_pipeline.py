"""Per-epoch training time: the in-memory uint8 batch pipeline against torchvision transforms.

Both paths train the same model (same init) on the same images with the same augmentation and
normalisation (training-split statistics):

- ``tensor``: :func:`hplandscape.training.data.load_data` — uint8 tensors in memory, whole-batch crops and
  flips as tensor ops;
- ``torchvision``: a per-image PIL pipeline batched by a ``DataLoader``: ``RandomCrop(size,
  padding)``, ``RandomHorizontalFlip`` (CIFAR only), ``ToTensor``, ``Normalize``.

Datasets: ``cifar10`` (a generated CIFAR-10 in the real on-disk format, read by torchvision's
``CIFAR10`` reader; pad 4 + flip) or ``digits`` (scikit-learn's 8×8 digits, the quickstart;
pad 1, no flip). Reported: seconds per epoch for data alone and for data + training, and the
ratio torchvision / tensor. The two paths are timed interleaved, best of ``--repeats``, so load
from other processes hits both alike.

Usage::

    python benchmarks/data_pipeline.py --dataset cifar10 --n-train 1280 --threads 1 --workers 2
    python benchmarks/data_pipeline.py --dataset digits --threads 1 --workers 0
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn.functional as F


class _PILImages(torch.utils.data.Dataset):
    """uint8 NCHW tensors served one PIL image at a time, as torchvision datasets do."""

    def __init__(self, x, y, transform):
        from PIL import Image

        self.images = [Image.fromarray(img.squeeze(0).numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy())
                       for img in x]
        self.targets = y.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.targets[i]


def _torchvision_loader(dataset, root, data, batch_size, workers, seed):
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    from hplandscape.training.data import _cifar_reader

    size = data.info.image_size
    steps = [T.RandomCrop(size, padding=4)] if dataset == "cifar10" else [T.RandomCrop(size, padding=1)]
    if dataset == "cifar10":
        steps.append(T.RandomHorizontalFlip())
    tf = T.Compose(steps + [T.ToTensor(), T.Normalize(data.mean.tolist(), data.std.tolist())])
    if dataset == "cifar10":
        ds = _cifar_reader()(root, train=True, transform=tf)
    else:
        ds = _PILImages(data.train_x, data.train_y, tf)
    return lambda s: DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                generator=torch.Generator().manual_seed(s))


def _time_epoch(batches, model=None, optimizer=None):
    start = time.perf_counter()
    for x, y in batches:
        if model is not None:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def run(dataset: str, n_train: int, model_name: str, threads: int, workers: int, batch_size: int,
        repeats: int) -> dict:
    from hplandscape.models import build_model
    from hplandscape.study.config import DataConfig
    from hplandscape.training.data import load_data, write_fake_cifar10

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as root:
        if dataset == "cifar10":
            write_fake_cifar10(root, n_train=n_train, n_test=10, seed=0)
            data = load_data(DataConfig(name="cifar10", root=root, num_workers=workers))
        else:
            data = load_data(DataConfig(name="digits"))
        augment = "cifar" if dataset == "cifar10" else "digits"
        loaders = {
            "tensor": lambda s: data.train_batches(batch_size, torch.Generator().manual_seed(s), augment),
            "torchvision": _torchvision_loader(dataset, root, data, batch_size, workers, 0),
        }
        models = {}
        for kind, batches in loaders.items():
            torch.manual_seed(0)
            model = build_model(model_name, num_classes=10, in_channels=data.info.in_channels)
            models[kind] = (model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4))
            _time_epoch(batches(99))  # warm-up: file cache, worker start-up code paths
            _time_epoch(batches(98), *models[kind])
        times = {k: {"data": [], "train": []} for k in loaders}
        for r in range(repeats):
            for kind, batches in loaders.items():
                times[kind]["data"].append(_time_epoch(batches(r)))
                times[kind]["train"].append(_time_epoch(batches(r), *models[kind]))
        n = data.num_train
        results = {k: {"data_s_per_epoch": min(t["data"]), "train_s_per_epoch": min(t["train"]),
                       "train_img_per_s": n / min(t["train"])} for k, t in times.items()}
    return {
        "dataset": dataset, "n_train": n, "image_size": data.info.image_size, "model": model_name,
        "threads": threads, "workers": workers, "batch_size": batch_size, "repeats": repeats, **results,
        "ratio_data": results["torchvision"]["data_s_per_epoch"] / results["tensor"]["data_s_per_epoch"],
        "ratio_train": results["torchvision"]["train_s_per_epoch"] / results["tensor"]["train_s_per_epoch"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=("cifar10", "digits"), default="cifar10")
    p.add_argument("--n-train", type=int, default=1280, help="generated CIFAR-10 images (digits: all 1347)")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the training process")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the torchvision path")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per path (the fastest counts)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    res = run(args.dataset, args.n_train, args.model, args.threads, args.workers, args.batch_size, args.repeats)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{res['dataset']}: {res['n_train']} images of {res['image_size']}×{res['image_size']}, {res['model']}, "
          f"batch {res['batch_size']}, {res['threads']} threads, DataLoader workers {res['workers']} "
          f"(best of {res['repeats']})")
    print(f"{'path':<12} {'data s/epoch':>13} {'train s/epoch':>14} {'img/s':>8}")
    for kind in ("tensor", "torchvision"):
        r = res[kind]
        print(f"{kind:<12} {r['data_s_per_epoch']:>13.3f} {r['train_s_per_epoch']:>14.3f} {r['train_img_per_s']:>8.0f}")
    print(f"ratio torchvision / tensor: data {res['ratio_data']:.1f}x, training epoch {res['ratio_train']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
