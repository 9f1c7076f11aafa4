"""How global pruning allocates width under each importance normaliser (the figures of method §5).

For each (model, ratio) case and each normaliser (plus the raw threshold without a cap) it prints
the achieved FLOPs ratio, the minimum and maximum kept fraction over the prunable layers, their
standard deviation and how many layers sit at the cap. Widths come from the analytic FLOPs model,
as in :func:`hplandscape.pruning.structured.prune`, so no torch-pruning run is needed.

The ranking is the random He init ``prune()`` draws (seed 0), or, with ``--digits-epochs N``,
weights trained for N epochs on scikit-learn's digits (8×8 grey; the prunable layers are the
same as at 32×32 colour). Training on 2 busy CPU cores took about half an hour for the four models.

    python benchmarks/global_widths.py [--cap 0.9] [--digits-epochs 15]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hplandscape.models import build_model, get_entry, input_shape_of
from hplandscape.pruning.structured import NORMALIZERS, _flops_model, _global_widths, filter_l1_norms, layer_floor

CASES = [("resnet56", 0.2), ("resnet56", 0.6), ("mobilenet_v2", 0.4), ("resnet50", 0.4)]


def trained_on_digits(name: str, epochs: int) -> torch.nn.Module:
    """``name`` trained briefly on the digits (SGD, one-cycle lr up to 0.1, seed 0)."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)
    x, y = (x - x.mean()) / x.std(), torch.tensor(d.target)
    model = build_model(name, num_classes=10, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * -(-len(x) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=steps)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        print(f"# {name}: {epochs} epochs on digits, training accuracy "
              f"{(model(x).argmax(1) == y).float().mean():.3f}")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=0.9, help="max_layer_prune for the normalised variants")
    parser.add_argument("--digits-epochs", type=int, default=0, help="rank trained weights (0: random init)")
    args = parser.parse_args()
    models = {}
    for name, ratio in CASES:
        if name not in models:
            if args.digits_epochs:
                models[name] = trained_on_digits(name, args.digits_epochs)
            else:
                torch.manual_seed(0)
                models[name] = build_model(name)
        fm = _flops_model(name, get_entry(name).num_classes, 3, input_shape_of(name))
        norms = [filter_l1_norms(models[name].get_submodule(k)) for k in fm.keys]
        target = ratio * fm.flops(fm.original)
        print(f"{name} @ {ratio} ({len(fm.keys)} prunable layers)")
        print(f"  {'normalizer':<15}{'cap':>6}{'ratio':>8}{'min':>7}{'max':>7}{'std':>7}  at cap")
        for normalizer, cap in [("none", None), *((n, args.cap) for n in NORMALIZERS)]:
            kept = _global_widths(fm, norms, target, normalizer, cap)
            f = kept / fm.original
            floor = np.array([1 if cap is None else layer_floor(int(c), cap) for c in fm.original])
            print(f"  {normalizer:<15}{'—' if cap is None else cap:>6}{fm.flops(kept) / fm.flops(fm.original):>8.4f}"
                  f"{f.min():>7.3f}{f.max():>7.3f}{f.std():>7.3f}  {int((kept <= floor).sum())}")


if __name__ == "__main__":
    main()
