"""Training throughput of the fused engine against sequential runs, in model-images per second.

For each architecture and each number of fused models B, one training step is: forward, the loss,
backward and an SGD step with momentum and coupled weight decay. ``sequential`` trains one model
(``torch.optim.SGD``), which is what B separate jobs on one device do one after another;
``fused`` trains B models as one network (:func:`hplandscape.training.model_fusion.fuse_models`,
:class:`~hplandscape.training.model_fusion.FusedSGD`) on a shared batch (common random numbers). Throughput counts
every model's images: ``B × batch × steps / seconds``. The input is a random CIFAR-sized batch
already on the device, so the numbers are those of the networks, not of the data pipeline.

Usage::

    python benchmarks/fused.py --device cuda                       # ResNet-56 and MobileNetV2, B = 1, 9, 27, 81
    python benchmarks/fused.py --device cuda --channels-last --amp # the same with NHWC and bf16 autocast
    python benchmarks/fused.py --quick                             # a seconds-long CPU smoke run (CI)

A size that does not fit in device memory is reported as ``OOM`` and the run goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import torch
import torch.nn.functional as F


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device, amp):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def _time_steps(step, steps, warmup, device) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - t


def _models(name, b, num_classes, device, memory_format):
    from hplandscape.models import build_model

    torch.manual_seed(0)
    return [build_model(name, num_classes=num_classes).to(device=device, memory_format=memory_format) for _ in range(b)]


def bench_sequential(name, batch, size, steps, warmup, device, memory_format, amp, num_classes=10) -> float:
    """Images per second of the plain training loop of one model: ``torch.optim.SGD``, one fixed batch."""
    model = _models(name, 1, num_classes, device, memory_format)[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, num_classes, (batch,), device=device)

    def step():
        with _autocast(device, amp):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return batch * steps / _time_steps(step, steps, warmup, device)


def bench_fused(name, b, batch, size, steps, warmup, device, memory_format, amp, num_classes=10) -> float:
    """Model-images per second of ``b`` models trained as one fused network on one shared batch."""
    from hplandscape.training.model_fusion import FusedSGD, fuse_models, per_model_loss

    fused = fuse_models(_models(name, b, num_classes, "cpu", torch.contiguous_format))
    fused.to(device=device, memory_format=memory_format).train()
    opt = FusedSGD(fused, [0.01 * (1 + i / b) for i in range(b)], [1e-4] * b, 0.9)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    y = torch.randint(0, num_classes, (batch,), device=device)

    def step():
        with _autocast(device, amp):
            out = fused(x)
        loss = per_model_loss(out, y).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return b * batch * steps / _time_steps(step, steps, warmup, device)


def _measure(fn):
    try:
        return fn()
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None


def run(models, sizes, batch, image, steps, warmup, device, channels_last, amp):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    rows = []
    for name in models:
        seq = _measure(lambda: bench_sequential(name, batch, image, steps, warmup, device, memory_format, amp))
        for b in sizes:
            fused = _measure(lambda: bench_fused(name, b, batch, image, steps, warmup, device, memory_format, amp))
            for engine, ips in (("sequential", seq), ("fused", fused)):
                rows.append({"model": name, "B": b, "engine": engine, "batch": batch, "image": image,
                             "device": str(device), "channels_last": channels_last, "amp": amp,
                             "model_images_per_s": ips})
            speedup = (fused / seq) if (fused and seq) else None
            print(f"{name:14s} B={b:3d}  sequential {_fmt(seq)}  fused {_fmt(fused)}  "
                  f"speed-up {('%.2fx' % speedup) if speedup else 'n/a'}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def _fmt(x):
    return "OOM".rjust(10) if x is None else f"{x:10.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", default="resnet56,mobilenet_v2")
    p.add_argument("--B", default="1,9,27,81", help="numbers of fused models, comma-separated")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--amp", action="store_true", help="bf16 autocast")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--quick", action="store_true", help="tiny CPU smoke run: resnet20, B=1,2, batch 8, 16 px")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    a = p.parse_args(argv)
    if a.quick:
        a.device, a.models, a.B, a.batch, a.image, a.steps, a.warmup = "cpu", "resnet20", "1,2", 8, 16, 2, 2
    device = torch.device(a.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print("--device cuda: no CUDA device here", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"batch {a.batch}, {a.image}px, {a.steps} timed steps; model-images/s", flush=True)
    rows = run(a.models.split(","), [int(b) for b in a.B.split(",")], a.batch, a.image, a.steps, a.warmup,
               device, a.channels_last, a.amp)
    if a.json:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(a.json)) or ".", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(rows, fh, indent=1)
        os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
