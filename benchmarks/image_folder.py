"""What an image folder costs held in memory and streamed: the basis of ``data.in_memory: auto``.

Writes synthetic class folders into a temporary directory and measures, on this machine:

1. ``decode``: images decoded per second by one process
   (:func:`hplandscape.training.image_folder.decode_image`), for small PNGs resized to 32 px and
   500×375 JPEGs (ImageNet's typical size) resized to 64 and 224 px, the JPEGs also without
   Pillow's reduced-scale decoding (``draft``) to show what it saves;
2. ``cache``: the first load of a folder (decode all, write the cache) against a later one (map
   the cached arrays);
3. ``epoch``: seconds per epoch of the same batches in memory and streamed (DataLoader workers
   0 and 2), data alone and with training steps of a ResNet-20 at 32 px, batch 128; the variants
   alternate within every round (the order reversed every other round), and the medians of the
   rounds and of the per-round ratios to the in-memory epoch are reported;
4. ``shared``: the memory two processes add by mapping the same cached arrays and reading every
   page (resident and proportional set size, ``Rss`` and ``Pss`` in ``/proc/self/smaps_rollup``:
   a page two processes share counts half in each one's ``Pss``).

Usage::

    python benchmarks/image_folder.py                # all, about 4 minutes on 2 cores
    python benchmarks/image_folder.py --parts decode epoch --rounds 5 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

PARTS = ("decode", "cache", "epoch", "shared")


def write_folder(root: Path, n_per_class: int, classes: int, size: tuple, fmt: str, seed: int = 0) -> Path:
    """``root/train/<class>/*`` and ``root/val/<class>/*`` (a fifth as many) of smooth random images:
    a class colour, a gradient and noise, so that PNG and JPEG compress as photographs do, not as
    white noise (which no codec compresses)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for split, n in (("train", n_per_class), ("val", max(1, n_per_class // 5))):
        for c in range(classes):
            d = root / split / f"class{c:02d}"
            d.mkdir(parents=True, exist_ok=True)
            colour = rng.integers(30, 220, 3)
            for i in range(n):
                gx, gy = rng.normal(0, 60, 2)
                img = colour + (gx * xx / w + gy * yy / h)[..., None] + rng.normal(0, 12, (h, w, 3))
                im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
                if fmt == "png":
                    im.save(d / f"{i:05d}.png")
                else:
                    im.save(d / f"{i:05d}.jpg", quality=90)
    return root


def _decode_without_draft(path: str, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
    w, h = im.size
    side = min(w, h)
    im = im.resize((size, size), Image.Resampling.BILINEAR,
                   box=((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2))
    return np.array(im).transpose(2, 0, 1)


def bench_decode(tmp: Path, n: int) -> list:
    from hplandscape.training.image_folder import decode_image, scan

    cases = [("png", (48, 40), 32), ("jpeg", (500, 375), 64), ("jpeg", (500, 375), 224)]
    out = []
    for fmt, src, size in cases:
        root = write_folder(tmp / f"decode-{fmt}-{src[0]}", n // 4, 4, src, fmt)
        files = [p for p, _ in scan(_cfg(root, size)).train]
        variants = {"draft": lambda p: decode_image(p, size)}
        if fmt == "jpeg":
            variants["full decode"] = lambda p: _decode_without_draft(p, size)
        for name, fn in variants.items():
            for p in files[:20]:  # warm the file cache
                fn(p)
            start = time.perf_counter()
            for p in files:
                fn(p)
            rate = len(files) / (time.perf_counter() - start)
            out.append({"format": fmt, "source": f"{src[0]}×{src[1]}", "size": size, "variant": name,
                        "images": len(files), "images_per_s": rate})
    return out


def _cfg(root: Path, size: int, **kw):
    from hplandscape.study.config import DataConfig

    return DataConfig(name="imagefolder", root=str(root), image_size=size, **kw)


def bench_cache(tmp: Path, n: int, workers: int) -> dict:
    from hplandscape.training.data import load_data

    root = write_folder(tmp / "cache", n // 10, 10, (48, 40), "png")
    os.environ["HPLANDSCAPE_CACHE"] = str(tmp / "cache-dir")
    cfg = _cfg(root, 32, num_workers=workers, in_memory=True)
    start = time.perf_counter()
    first = load_data(cfg)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    again = load_data(cfg)
    again_s = time.perf_counter() - start
    assert torch.equal(first.train_x, again.train_x)
    return {"images": first.num_train + first.num_test, "workers": workers, "first_load_s": first_s,
            "cached_load_s": again_s}


def bench_epoch(tmp: Path, n: int, rounds: int, threads: int, batch: int) -> dict:
    from hplandscape.models import build_model
    from hplandscape.training.data import load_data
    from hplandscape.training.setup import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()  # as every training process does (prepare_process)
    root = write_folder(tmp / "epoch", n // 10, 10, (48, 40), "png")
    os.environ["HPLANDSCAPE_CACHE"] = str(tmp / "epoch-cache")
    variants = {"in memory": _cfg(root, 32, in_memory=True, num_workers=0),
                "streamed, 0 workers": _cfg(root, 32, in_memory=False, num_workers=0),
                "streamed, 2 workers": _cfg(root, 32, in_memory=False, num_workers=2)}
    data = {k: load_data(cfg) for k, cfg in variants.items()}
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def epoch(d, train: bool, seed: int) -> float:
        start = time.perf_counter()
        for x, y in d.train_batches(batch, torch.Generator().manual_seed(seed), "cifar",
                                    memory_format=torch.channels_last):
            if train:
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return time.perf_counter() - start

    for d in data.values():  # warm-up
        epoch(d, True, 99)
    times = {k: {"data": [], "train": []} for k in data}
    for r in range(rounds):
        order = list(data) if r % 2 == 0 else list(reversed(data))
        for k in order:
            times[k]["data"].append(epoch(data[k], False, r))
            times[k]["train"].append(epoch(data[k], True, r))
    n_train = data["in memory"].num_train
    base = times["in memory"]["train"]
    res = {k: {"data_s": statistics.median(t["data"]), "train_s": statistics.median(t["train"]),
               "data_img_per_s": n_train / statistics.median(t["data"]),
               "train_img_per_s": n_train / statistics.median(t["train"]), "rounds_train_s": t["train"],
               # per round, against the in-memory epoch of the same round: load from other processes
               # hits both alike
               "train_ratio_to_in_memory": statistics.median(a / b for a, b in zip(t["train"], base))}
           for k, t in times.items()}
    return {"images": n_train, "threads": threads, "batch": batch, "rounds": rounds, "variants": res}


def _pss_kib() -> tuple:
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:"):
                fields[parts[0][:-1]] = int(parts[1])
    return fields["Rss"], fields["Pss"]


def _map_and_touch(cfg_dict, barrier, queue):
    from hplandscape.study.config import DataConfig
    from hplandscape.training.data import load_data

    before = _pss_kib()  # torch and the rest, before the images
    data = load_data(DataConfig(**cfg_dict))
    int(data.train_x.sum()) + int(data.test_x.sum())  # read every page
    barrier.wait()  # both processes hold their mapping now
    after = _pss_kib()
    queue.put((after[0] - before[0], after[1] - before[1]))
    barrier.wait()


def bench_shared(tmp: Path, n: int) -> dict:
    from hplandscape.training.data import load_data

    root = write_folder(tmp / "shared", n // 10, 10, (48, 40), "png")
    os.environ["HPLANDSCAPE_CACHE"] = str(tmp / "shared-cache")
    cfg = _cfg(root, 64, in_memory=True, num_workers=2)
    first = load_data(cfg)  # fills the cache
    nbytes = first.train_x.numel() + first.test_x.numel()
    del first
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_map_and_touch, args=(dataclasses.asdict(cfg), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return {"decoded_mib": nbytes / 2**20, "processes": [{"rss_mib": r / 1024, "pss_mib": p / 1024} for r, p in got]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--images", type=int, default=2000, help="training images per folder (decode: per case)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    res = {"cpus": os.cpu_count(),
           "memory_gib": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if "decode" in args.parts:
            res["decode"] = bench_decode(tmp, args.images // 2)
        if "cache" in args.parts:
            res["cache"] = [bench_cache(tmp / f"w{w}", args.images * 5, w) for w in (0, 2)]
        if "epoch" in args.parts:
            res["epoch"] = bench_epoch(tmp, args.images, args.rounds, args.threads, args.batch_size)
        if "shared" in args.parts:
            res["shared"] = bench_shared(tmp, args.images * 5)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{res['cpus']} CPUs, {res['memory_gib']:.1f} GiB")
    for r in res.get("decode", []):
        print(f"decode {r['format']:<5} {r['source']:>8} → {r['size']:>3}  {r['variant']:<12} "
              f"{r['images_per_s']:8.0f} images/s ({r['images']} images)")
    for r in res.get("cache", []):
        print(f"cache  {r['images']} images, {r['workers']} workers: first load {r['first_load_s']:.2f} s, "
              f"cached {r['cached_load_s']:.3f} s")
    if "epoch" in res:
        e = res["epoch"]
        print(f"epoch  {e['images']} images, ResNet-20 32 px, batch {e['batch']}, {e['threads']} threads, "
              f"median of {e['rounds']} rounds")
        for k, v in e["variants"].items():
            print(f"  {k:<20} data {v['data_s']:6.2f} s ({v['data_img_per_s']:6.0f} img/s)   train "
                  f"{v['train_s']:6.2f} s ({v['train_img_per_s']:5.0f} img/s, {v['train_ratio_to_in_memory']:.2f}× "
                  f"in memory, median of rounds; rounds {', '.join(f'{x:.2f}' for x in v['rounds_train_s'])})")
    if "shared" in res:
        s = res["shared"]
        print(f"shared {s['decoded_mib']:.0f} MiB decoded; two processes mapping it add: " + ", ".join(
            f"RSS {q['rss_mib']:.0f} MiB / PSS {q['pss_mib']:.0f} MiB" for q in s["processes"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
