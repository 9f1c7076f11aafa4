"""One training run on the CPU: the project's engine against the plain PyTorch loop.

Both sides train the same architecture (same He init) for the same epochs on the same images
(a generated CIFAR-10 in the real on-disk format), with the same batch size, thread count,
augmentation (pad 4 + random crop, horizontal flip) and SGD (momentum 0.9, coupled weight decay),
and evaluate on the same test images after every epoch:

- ``engine``: :func:`hplandscape.training.sequential_engine.train_run` on a :class:`~hplandscape.study.run_spec.RunSpec`, timed from
  the call to the returned record: reading the data, building and counting the network, training,
  evaluating, a checkpoint per epoch and the record (its provenance included), with the project's
  CPU defaults (float32);
- ``engine-bf16``: the same with the recipe's ``amp: true`` (bf16 autocast on the CPU; it pays on
  CPUs with native bf16: AVX512-BF16 or AMX);
- ``plain``: what one writes by hand: torchvision's ``CIFAR10`` reader with per-image transforms
  (``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``) batched by
  a ``DataLoader``, the model in the default NCHW layout, ``torch.optim.SGD``; timed from reading the
  data to the last evaluation.

The machine may be shared, so the sides are timed interleaved: each side lives in its own process
(the engine sets up its process's memory allocator, ``setup.keep_freed_memory``, which a
hand-written loop does not have, so the two cannot share one), and the processes take turns, one
at a time: after one untimed warm-up run each (first-call costs: imports, oneDNN kernel set-up,
the file cache), every round runs every side once, the order alternating between rounds, and the
ratio plain / engine of that round is one sample. Reported per model: the median ratio, its range,
and the median seconds of each side.

Usage::

    python benchmarks/cpu_train.py                              # ResNet-20 and ResNet-56, 2 threads
    python benchmarks/cpu_train.py --no-bf16                    # float32 engine against the plain loop only
    python benchmarks/cpu_train.py --models resnet20 --rounds 5 --json out.json
    python benchmarks/cpu_train.py --quick                      # a seconds-long smoke run (CI)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The published CIFAR-10 statistics, as a hand-written loop would use them.
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def engine_run(model: str, root: str, args, seed: int, amp: bool = False) -> float:
    """Seconds of one ``train_run`` (fresh run directory, so nothing resumes)."""
    from hplandscape.study.config import Condition, DataConfig
    from hplandscape.study.grid import GridPoint
    from hplandscape.study.recipes import recipe_preset
    from hplandscape.study.run_spec import RunSpec
    from hplandscape.training.sequential_engine import train_run

    recipe = dataclasses.replace(recipe_preset("cifar10"), epochs=args.epochs, batch_size=args.batch_size,
                                 threads=args.threads, amp=amp)
    with tempfile.TemporaryDirectory() as run_dir:
        spec = RunSpec(study="bench", condition=Condition("base", "none", 1.0), point=GridPoint(-1.0, -4.0),
                       seed=seed, model=model, data=DataConfig(name="cifar10", root=root, num_workers=0),
                       recipe=recipe, arch=None, run_dir=run_dir, device="cpu")
        start = time.perf_counter()
        train_run(spec)
        return time.perf_counter() - start


def plain_run(model: str, root: str, args, seed: int) -> float:
    """Seconds of the hand-written loop: data, model, ``epochs`` × (train + evaluate)."""
    from torch.utils.data import DataLoader
    from torchvision import transforms as T

    from hplandscape.models import build_model
    from hplandscape.training.data import _cifar_reader  # torchvision's CIFAR10, md5 check off for generated files

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    normalize = T.Normalize(CIFAR_MEAN, CIFAR_STD)
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    reader = _cifar_reader()
    train = DataLoader(reader(root, train=True, transform=train_tf), batch_size=args.batch_size, shuffle=True,
                       num_workers=args.workers, generator=torch.Generator().manual_seed(seed))
    test = DataLoader(reader(root, train=False, transform=T.Compose([T.ToTensor(), normalize])),
                      batch_size=args.batch_size, num_workers=args.workers)
    torch.manual_seed(seed)
    net = build_model(model, num_classes=10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(args.epochs):
        net.train()
        for x, y in train:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test:
                correct += int((net(x).argmax(1) == y).sum())
    return time.perf_counter() - start


SIDES = {"engine": engine_run, "plain": plain_run,
         "engine-bf16": lambda *a, **k: engine_run(*a, **k, amp=True)}


def serve(side: str, model: str, root: str, args) -> None:
    """A side's process: for every seed read from stdin, run once and print the seconds."""
    for line in sys.stdin:
        print(SIDES[side](model, root, args, seed=int(line)), flush=True)


def compare(model: str, root: str, args, argv: list[str]) -> dict:
    names = ["engine", "plain"] + ([] if args.no_bf16 else ["engine-bf16"])
    procs = {name: subprocess.Popen([sys.executable, __file__, *argv, "--serve", name, "--serve-model", model,
                                     "--serve-root", root], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for name in names}

    def run(name, seed):
        procs[name].stdin.write(f"{seed}\n")
        procs[name].stdin.flush()
        line = procs[name].stdout.readline()
        if not line:
            raise SystemExit(f"the {name} side's process ended (exit {procs[name].wait()})")
        return float(line)

    try:
        for name in names:  # warm-up round, untimed
            run(name, 99)
        times = {name: [] for name in names}
        for r in range(args.rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                times[name].append(run(name, r))
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait()
    ratios = [p / e for p, e in zip(times["plain"], times["engine"])]
    bf16 = [p / e for p, e in zip(times["plain"], times.get("engine-bf16", []))]
    return {"model": model, "images": args.images, "test_images": args.test_images, "epochs": args.epochs,
            "batch_size": args.batch_size, "threads": args.threads, "workers": args.workers,
            "rounds": args.rounds, "engine_s": times["engine"], "plain_s": times["plain"], "ratios": ratios,
            "median_ratio": statistics.median(ratios), "engine_bf16_s": times.get("engine-bf16", []),
            "ratios_bf16": bf16, "median_ratio_bf16": statistics.median(bf16) if bf16 else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    p.add_argument("--images", type=int, default=1536, help="training images (CIFAR-shaped, generated)")
    p.add_argument("--test-images", type=int, default=128, help="test images, evaluated after every epoch")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads, both sides")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the plain loop")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per model (after one warm-up round)")
    p.add_argument("--no-bf16", action="store_true", help="skip the engine's bf16 (amp) side")
    p.add_argument("--quick", action="store_true", help="ResNet-20, 128 images, 1 round: a smoke run")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--serve", choices=list(SIDES), help=argparse.SUPPRESS)  # a side's own process
    p.add_argument("--serve-model", help=argparse.SUPPRESS)
    p.add_argument("--serve-root", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.serve_model, args.serve_root, args)
        return 0
    if args.quick:
        args.models, args.images, args.test_images, args.rounds = ["resnet20"], 128, 32, 1

    from hplandscape.training.data import write_fake_cifar10

    rows = []
    with tempfile.TemporaryDirectory() as root:
        write_fake_cifar10(root, n_train=args.images, n_test=args.test_images, seed=0)
        print(f"{args.images} training / {args.test_images} test images (32×32), {args.epochs} epoch(s), "
              f"batch {args.batch_size}, {args.threads} threads, plain DataLoader workers {args.workers}; "
              f"{args.rounds} interleaved rounds after a warm-up, a process per side")
        for model in args.models:
            row = compare(model, root, args, argv)
            rows.append(row)
            print(f"{model:>10}: engine {statistics.median(row['engine_s']):6.2f} s, plain "
                  f"{statistics.median(row['plain_s']):6.2f} s  →  speed-up {row['median_ratio']:.2f}× "
                  f"(rounds {', '.join(f'{r:.2f}' for r in row['ratios'])})", flush=True)
            if row["ratios_bf16"]:
                print(f"{'':>10}  engine amp (bf16) {statistics.median(row['engine_bf16_s']):6.2f} s  →  speed-up "
                      f"{row['median_ratio_bf16']:.2f}× (rounds {', '.join(f'{r:.2f}' for r in row['ratios_bf16'])})",
                      flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
