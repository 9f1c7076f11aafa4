"""The measurements behind the engine's CPU defaults, one subcommand per choice.

Every subcommand runs in a process set up as the engine's worker (``setup.keep_freed_memory``;
``--glibc-default`` leaves malloc as it is) and, but ``threads`` and ``allocator``, times its
variants interleaved in one process (the order alternating between
rounds, after a warm-up), so load from other processes hits all variants alike; per variant it
prints the median time and the median ratio to the first variant, with the per-round ratios.
``docs/performance.md`` records what each gave and which default it decided.

- ``layout``: a training step (forward, cross-entropy, backward, SGD with momentum and weight
  decay, on a batch already in memory) in NCHW against channels_last, per architecture; decides
  ``ModelEntry.cpu_channels_last``.
- ``inplace``: the CIFAR ResNet's training step with ReLU and the residual addition in place (as
  the package has them) against out of place.
- ``eval-batch``: evaluation throughput (images/s) per batch size; decides
  ``setup.eval_batch_size``.
- ``optimizer``: ``torch.optim.SGD`` per-parameter loop against ``foreach=True`` and ``fused=True``.
- ``checkpoint``: one ``checkpoints.save_checkpoint`` against one training step.
- ``bookkeeping``: a training step alone against one followed by the engine's per-step work:
  running loss and accuracy sums and the NaN/inf check (``.item()``, a host sync on a GPU).
- ``threads``: how runs trained side by side should share the cores: as many processes as
  ``--threads`` (one thread each) against one process with ``--threads`` threads, each layout
  training the same number of steps in all; decides the quickstart's ``threads: 1``.
- ``allocator``: training steps in a process whose malloc keeps the memory it frees (the engine's,
  ``setup.keep_freed_memory``) against one with glibc's defaults, a process per measurement,
  alternating; prints the page faults per step too.
- ``ceiling``: how far float32 can go: the convolutions' share of a channels_last training step
  (PyTorch's profiler) and their GFLOP/s against a large float32 matrix product (sgemm) on the
  same threads, the most this CPU does.

Usage::

    python benchmarks/cpu_choices.py layout --models resnet20 resnet56 mobilenet_v2
    python benchmarks/cpu_choices.py layout --models resnet20 --image-size 8 --in-channels 1 --threads 1
    python benchmarks/cpu_choices.py layout --models resnet20 --image-size 8 --in-channels 1 --threads 1 --prune 0.5
    python benchmarks/cpu_choices.py inplace --models resnet20 resnet56
    python benchmarks/cpu_choices.py eval-batch --models resnet20 resnet56 --sizes 128 256 1000
    python benchmarks/cpu_choices.py optimizer --models resnet20
    python benchmarks/cpu_choices.py checkpoint --models resnet20 resnet56
    python benchmarks/cpu_choices.py bookkeeping --models resnet20 --image-size 8 --in-channels 1 --threads 1
    python benchmarks/cpu_choices.py threads --models resnet20 --image-size 8 --in-channels 1 --threads 2
    python benchmarks/cpu_choices.py allocator --models resnet20 resnet56 mobilenet_v2
    python benchmarks/cpu_choices.py allocator --models resnet20 --image-size 8 --in-channels 1 --threads 1
    python benchmarks/cpu_choices.py ceiling --models resnet20 resnet56
    python benchmarks/cpu_choices.py ceiling --models resnet20 --image-size 8 --in-channels 1 --threads 1
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _model(name, args, layout=torch.channels_last):
    from hplandscape.models import build_model

    torch.manual_seed(0)
    if args.prune:
        from hplandscape.pruning.structured import build_from_spec, prune

        shape = (args.in_channels, args.image_size, args.image_size)
        model = build_from_spec(prune(name, "uniform", args.prune, num_classes=10, in_channels=args.in_channels,
                                      input_shape=shape))
    else:
        model = build_model(name, num_classes=10, in_channels=args.in_channels)
    return model.to(memory_format=layout)


def _batch(args, layout=torch.channels_last, n=None):
    x = torch.randn(n or args.batch_size, args.in_channels, args.image_size, args.image_size)
    return x.contiguous(memory_format=layout), torch.randint(0, 10, (n or args.batch_size,))


def _train_step(model, x, y, bookkeeping=False, **sgd):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4, **sgd)
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)

    def step():
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if bookkeeping:  # what train._train_epoch adds to every step on the CPU
            loss_sum.add_(loss.detach().double() * len(y))
            correct.add_((out.detach().argmax(1) == y).sum())
            torch.isfinite(loss_sum).item()

    step.model, step.optimizer = model, opt
    return step


def _out_of_place(model):
    """The CIFAR ResNet as it was before: ReLU and the residual addition allocate new tensors."""
    from hplandscape.models.cifar_resnet import BasicBlock

    def block(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self._shortcut(x, 1))

    def net(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    model.forward = types.MethodType(net, model)
    for m in model.modules():
        if isinstance(m, BasicBlock):
            m.forward = types.MethodType(block, m)
    return model


def variants(kind, name, args) -> dict:
    """name → a zero-argument callable that does one unit of work."""
    if kind == "layout":
        out = {}
        for label, layout in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
            out[label] = _train_step(_model(name, args, layout), *_batch(args, layout))
        return out
    if kind == "inplace":
        x, y = _batch(args)
        return {"out_of_place": _train_step(_out_of_place(_model(name, args)), x, y),
                "in_place": _train_step(_model(name, args), x, y)}
    if kind == "optimizer":
        x, y = _batch(args)
        return {label: _train_step(_model(name, args), x, y, **kw)
                for label, kw in (("loop", {"foreach": False}), ("foreach", {"foreach": True}), ("fused", {"fused": True}))}
    if kind == "eval-batch":
        model = _model(name, args).eval()
        x, _ = _batch(args, n=args.eval_images)

        def evaluate(size):
            with torch.no_grad():
                for start in range(0, len(x), size):
                    model(x[start:start + size]).argmax(1)

        return {f"batch_{s}": (lambda s=s: evaluate(s)) for s in args.sizes}
    if kind == "checkpoint":
        from hplandscape.training.checkpoints import save_checkpoint
        from hplandscape.training.lifecycle import RunProgress
        step = _train_step(_model(name, args), *_batch(args))
        step()  # momentum buffers exist, as in a real checkpoint
        path = Path(tempfile.mkdtemp()) / "checkpoint.pt"
        return {"train_step": step,
                "save_checkpoint": lambda: save_checkpoint(path, "bench", step.model, step.optimizer, torch.Generator(),
                                                           None, RunProgress())}
    if kind == "bookkeeping":
        x, y = _batch(args)
        return {"step": _train_step(_model(name, args), x, y),
                "step_and_bookkeeping": _train_step(_model(name, args), x, y, bookkeeping=True)}
    raise ValueError(kind)


def measure(kind, name, args) -> None:
    fns = variants(kind, name, args)
    for fn in fns.values():  # warm-up: oneDNN builds its kernels on first use
        fn()
        fn()
    times = {k: [] for k in fns}
    for r in range(args.rounds):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            start = time.perf_counter()
            for _ in range(args.repeat):
                fns[k]()
            times[k].append((time.perf_counter() - start) / args.repeat)
    first = next(iter(fns))
    print(f"{name}:")
    for k, ts in times.items():
        ratios = [a / b for a, b in zip(times[first], ts)]
        rate = f"  {args.eval_images / statistics.median(ts):7.0f} images/s" if kind == "eval-batch" else ""
        print(f"  {k:>20}: {statistics.median(ts) * 1e3:8.1f} ms{rate}   {first} / this {statistics.median(ratios):.2f} "
              f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})", flush=True)


def _conv_work(model, args) -> int:
    """FLOPs of the convolutions in one training step of a batch: forward, the weights' gradient,
    and the input's gradient for every convolution but the first (its input needs none)."""
    from hplandscape.models.counting import layer_costs

    costs = [(m, n) for m, n in layer_costs(model, (args.in_channels, args.image_size, args.image_size)).values()
             if isinstance(m, torch.nn.Conv2d)]
    flops = [2 * n * m.weight.shape[0] * m.weight.shape[1:].numel() for m, n in costs]
    return args.batch_size * (3 * sum(flops) - flops[0])


def _sgemm_gflops(rounds: int, sizes=(512, 1024, 2048)) -> float:
    """The best GFLOP/s of float32 square matrix products over ``sizes``."""
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b
        for _ in range(max(rounds, 3)):
            start = time.perf_counter()
            for _ in range(3):
                a @ b
            best = max(best, 3 * 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def ceiling(name, args) -> None:
    """Print the convolutions' share of a training step and their speed against sgemm."""
    from torch.profiler import ProfilerActivity, profile

    step = _train_step(_model(name, args), *_batch(args))
    for _ in range(3):
        step()
    # The share is taken within the profiled steps themselves (their wall time and their
    # convolutions' time), so that a machine busy with other work slows both alike; the plain
    # step time, measured without the profiler's overhead, is printed beside it.
    steps, conv_ms, prof_ms, step_ms = 5 * args.repeat, [], [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        step_ms.append((time.perf_counter() - start) / steps * 1e3)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                step()
            prof_ms.append((time.perf_counter() - start) / steps * 1e3)
        conv_us = sum(e.self_cpu_time_total for e in prof.key_averages()
                      if e.key in ("aten::mkldnn_convolution", "aten::convolution_backward",
                                   "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward"))
        conv_ms.append(conv_us / steps / 1e3)
    step_t, conv_t, prof_t = (statistics.median(v) for v in (step_ms, conv_ms, prof_ms))
    conv_gflops = _conv_work(step.model, args) / (conv_t / 1e3) / 1e9
    peak = _sgemm_gflops(args.rounds)
    print(f"{name}:\n  step {prof_t:.1f} ms profiled ({step_t:.1f} ms without the profiler), of which convolutions "
          f"{conv_t:.1f} ms ({conv_t / prof_t:.0%}; {_conv_work(step.model, args) / 1e9:.2f} GFLOP at {conv_gflops:.0f} GFLOP/s)\n"
          f"  sgemm (best of 512², 1024², 2048²) on {args.threads} thread(s): {peak:.0f} GFLOP/s; the convolutions run at "
          f"{conv_gflops / peak:.0%} of it\n"
          f"  if every other operation took no time the step would be {prof_t / conv_t:.2f}× faster", flush=True)


def _steps_child(name, args) -> None:
    """One process of ``threads``: warm up, say ready, wait for go, time its steps."""
    step = _train_step(_model(name, args), *_batch(args))
    for _ in range(5):  # oneDNN's kernels, the heap
        step()
    print("ready", flush=True)
    sys.stdin.readline()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.time()
    for _ in range(args.steps):
        step()
    end = time.time()
    print(f"{start} {end} {resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}", flush=True)


def _child_steps(name, args, threads: int, steps: int, *extra: str, procs: int = 1) -> tuple[float, float]:
    """Seconds from the first start to the last end of ``procs`` new warmed-up processes doing
    ``steps`` training steps each at once, and their page faults per process."""
    cmd = [sys.executable, __file__, "_steps", "--models", name, "--threads", str(threads), "--steps", str(steps),
           "--image-size", str(args.image_size), "--in-channels", str(args.in_channels),
           "--batch-size", str(args.batch_size), *extra]
    children = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    for child in children:
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    spans = [tuple(map(float, child.communicate()[0].split())) for child in children]
    return max(end for _, end, _ in spans) - min(start for start, _, _ in spans), \
        statistics.mean(faults for _, _, faults in spans)


def threads(name, args) -> None:
    """Same total steps as ``--threads`` one-thread processes and as one ``--threads``-thread process."""
    total = args.repeat * 10 * args.threads
    layouts = {f"{args.threads}_procs_x_1_thread": (args.threads, 1), f"1_proc_x_{args.threads}_threads": (1, args.threads)}
    times = {k: [] for k in layouts}
    for r in range(args.rounds):
        for label in (list(layouts) if r % 2 == 0 else list(layouts)[::-1]):
            procs, nthreads = layouts[label]
            times[label].append(_child_steps(name, args, nthreads, total // procs, procs=procs)[0])
    first = next(iter(layouts))
    print(f"{name}: {total} steps in all")
    for k, ts in times.items():
        ratios = [a / b for a, b in zip(times[first], ts)]
        print(f"  {k:>22}: {statistics.median(ts):6.2f} s, {total / statistics.median(ts):6.1f} steps/s   "
              f"{first} / this {statistics.median(ratios):.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)})",
              flush=True)


def allocator(name, args) -> None:
    """Steps with the engine's malloc thresholds against glibc's defaults, a process each."""
    steps = args.repeat * 5
    variants = {"glibc_default": ("--glibc-default",), "keep_freed_memory": ()}
    times, faults = {k: [] for k in variants}, {k: [] for k in variants}
    for r in range(args.rounds):
        for label in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            seconds, n = _child_steps(name, args, args.threads, steps, *variants[label])
            times[label].append(seconds / steps)
            faults[label].append(n / steps)
    first = next(iter(variants))
    print(f"{name}: {steps} steps a process")
    for k, ts in times.items():
        ratios = [a / b for a, b in zip(times[first], ts)]
        print(f"  {k:>18}: {statistics.median(ts) * 1e3:8.1f} ms a step, {statistics.median(faults[k]):9.0f} page "
              f"faults a step   {first} / this {statistics.median(ratios):.2f} "
              f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=("layout", "inplace", "eval-batch", "optimizer", "checkpoint", "bookkeeping",
                                    "threads", "allocator", "ceiling", "_steps"))
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2, help="units of work per timing")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--prune", type=float, default=None, help="keep this FLOPs ratio (uniform L1 pruning)")
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 500, 1000], help="eval-batch: batch sizes")
    p.add_argument("--eval-images", type=int, default=2000, help="eval-batch: images evaluated per timing")
    p.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)  # the steps of one ``_steps`` child
    p.add_argument("--glibc-default", action="store_true", help="leave malloc as glibc sets it up")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.glibc_default:
        from hplandscape.training.setup import keep_freed_memory
        keep_freed_memory()
    if args.kind == "_steps":
        _steps_child(args.models[0], args)
        return 0
    print(f"{args.kind}: {args.in_channels}×{args.image_size}×{args.image_size}, batch {args.batch_size}, "
          f"{args.threads} threads" + (f", uniformly pruned to {args.prune} of the FLOPs" if args.prune else ""))
    for name in args.models:
        {"threads": threads, "allocator": allocator, "ceiling": ceiling}.get(args.kind, lambda n, a: measure(a.kind, n, a))(name, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
