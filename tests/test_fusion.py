"""Horizontal fusion: the fused network and optimizer reproduce B separate networks and SGD runs.

These tests run in float64, where the only difference between B separate networks and one fused
network is the summation order inside grouped convolutions and batched matmuls (relative error
~1e-16 per operation); after hundreds of SGD steps the losses still agree to ~1e-12, so a
tolerance of 1e-9 separates "equal" from "wrong" (a wrong lr, wd or momentum is off by > 1e-3).
The engine that trains runs with it is tested in ``test_fused.py``.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hplandscape.errors import UserError
from hplandscape.models import build_model
from hplandscape.training.model_fusion import (FusedSGD, fuse_models, per_model_loss, register_fused_forward,
                                               unfuse_state)

TOL64 = 1e-9


@pytest.fixture(autouse=True)
def one_thread():
    # Several threads on a loaded CI machine make small float64 convolutions 50x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Block(nn.Module):
    """Inverted residual: 1×1 expand, depthwise 3×3, 1×1 project, plus identity."""

    def __init__(self, c, hidden):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
                                  nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
                                  nn.BatchNorm2d(hidden), nn.ReLU6(), nn.Conv2d(hidden, c, 1, bias=False),
                                  nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.body(x)


class Tiny(nn.Module):
    def __init__(self, in_ch=1, c=6, classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, c, 3, padding=1, bias=True), nn.BatchNorm2d(c), nn.ReLU())
        self.block = Block(c, 12)
        self.down = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.head = nn.Sequential(nn.Linear(2 * c * 4 * 4, 16), nn.ReLU(), nn.Linear(16, classes))

    def forward(self, x):
        x = F.relu(self.down(self.block(self.stem(x))))
        return self.head(torch.flatten(x, 1))  # flatten of a 4×4 map: the fused layout must survive it


def tiny_models(b, dtype=torch.float64):
    out = []
    for i in range(b):
        torch.manual_seed(100 + i)
        out.append(Tiny().to(dtype))
    return out


def batches(steps, n=16, seed=0, classes=5, dtype=torch.float64, per_model=None):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        shape = (per_model, n) if per_model else (n,)
        x = torch.randn(*shape, 1, 8, 8, generator=g, dtype=dtype)
        # A learnable signal so accuracy moves away from chance.
        y = torch.randint(0, classes, shape, generator=g)
        x[..., 0, :, :] += y[..., None, None].to(dtype)
        yield x, y


def test_fused_forward_equals_each_model_for_shared_and_per_model_batches():
    models = tiny_models(3)
    fused = fuse_models(models).eval()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    out = fused(x)
    assert out.shape == (4, 3, 5)
    xs = torch.randn(3, 4, 1, 8, 8, dtype=torch.float64)
    out_pm = fused(xs)
    for b, m in enumerate(models):
        m.eval()
        torch.testing.assert_close(out[:, b], m(x), rtol=0, atol=1e-12)
        torch.testing.assert_close(out_pm[:, b], m(xs[b]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("nesterov, decay_1d, steps", [(False, True, 300), (True, False, 40)])
def test_fused_training_matches_separate_sgd_runs_step_by_step(nesterov, decay_1d, steps):
    # Learning rates small enough that training is not chaotic: float64 rounding then stays ~1e-14
    # for hundreds of steps instead of being amplified (at lr 0.2 it reaches O(1) by step 300).
    lrs, wds = [0.002, 0.005, 0.01, 0.02], [1e-4, 1e-3, 1e-2, 3e-3]
    models = tiny_models(4)
    separate = [_clone(m) for m in models]
    opts = []
    for m, lr, wd in zip(separate, lrs, wds):
        params = list(m.parameters())
        groups = ([{"params": params, "weight_decay": wd}] if decay_1d else
                  [{"params": [p for p in params if p.ndim > 1], "weight_decay": wd},
                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}])
        opts.append(torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=nesterov))
    fused = fuse_models(models)
    opt = FusedSGD(fused, lrs, wds, 0.9, nesterov=nesterov, decay_1d=decay_1d)
    worst = 0.0
    for step, (x, y) in enumerate(batches(steps)):
        if step == steps // 2:  # a schedule milestone
            opt.set_lr([lr * 0.1 for lr in lrs])
            for o in opts:
                for g in o.param_groups:
                    g["lr"] *= 0.1
        want = []
        for m, o in zip(separate, opts):
            loss = F.cross_entropy(m(x), y)
            o.zero_grad()
            loss.backward()
            o.step()
            want.append(loss.item())
        got = per_model_loss(fused(x), y)
        opt.zero_grad()
        got.sum().backward()
        opt.step()
        worst = max(worst, max(abs(a - b) for a, b in zip(want, got.tolist())))
    assert worst < TOL64
    # Weights, momentum-driven updates and the BatchNorm running statistics all agree.
    for m, state in zip(separate, unfuse_state(fused)):
        for key, value in m.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=TOL64)
        assert "stem.1.running_mean" in state and state["stem.1.num_batches_tracked"] == steps
    # And so does held-out top-1.
    x, y = next(batches(1, n=256, seed=99))
    fused.eval()
    got = (fused(x).argmax(2) == y[:, None]).double().mean(0)
    for b, m in enumerate(separate):
        m.eval()
        assert got[b].item() == (m(x).argmax(1) == y).double().mean().item()
    if steps >= 300:
        assert got.max() > 0.5  # the models learned something: the comparison is not between noise


def _clone(m):
    import copy

    return copy.deepcopy(m)


def test_per_model_batches_train_each_model_on_its_own_data():
    models = tiny_models(2)
    separate = [_clone(m) for m in models]
    opts = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3) for m in separate]
    fused = fuse_models(models)
    opt = FusedSGD(fused, [0.05, 0.05], [1e-3, 1e-3], 0.9)
    for x, y in batches(20, per_model=2):
        for b, (m, o) in enumerate(zip(separate, opts)):
            o.zero_grad()
            F.cross_entropy(m(x[b]), y[b]).backward()
            o.step()
        opt.zero_grad()
        per_model_loss(fused(x), y).sum().backward()
        opt.step()
    for m, state in zip(separate, unfuse_state(fused)):
        for key, value in m.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=0, atol=TOL64)


def test_a_frozen_diverged_model_leaves_the_others_untouched():
    models = tiny_models(3)
    separate = [_clone(m) for m in models]
    fused = fuse_models(models)
    opt = FusedSGD(fused, [0.05, 1e30, 0.05], [1e-3, 1.0, 1e-2], 0.9)
    opts = [torch.optim.SGD(separate[i].parameters(), lr=0.05, momentum=0.9, weight_decay=wd)
            for i, wd in ((0, 1e-3), (2, 1e-2))]
    alive = torch.ones(3, dtype=torch.bool)
    frozen = None
    for step, (x, y) in enumerate(batches(30)):
        losses = per_model_loss(fused(x), y)
        opt.zero_grad()
        torch.where(alive, losses, torch.zeros((), dtype=losses.dtype)).sum().backward()
        opt.step()
        if alive[1] and not torch.isfinite(losses[1]):
            alive[1] = False
            opt.freeze(1)
            frozen = unfuse_state(fused)[1]
        for i, o in zip((0, 2), opts):
            o.zero_grad()
            F.cross_entropy(separate[i](x), y).backward()
            o.step()
    assert frozen is not None, "the lr of 1e30 should have diverged"
    states = unfuse_state(fused)
    for i in (0, 2):
        assert all(torch.isfinite(v).all() for v in states[i].values())
        for key, value in separate[i].state_dict().items():
            torch.testing.assert_close(states[i][key], value, rtol=0, atol=TOL64)
    for key, p in frozen.items():  # parameters stay where divergence left them
        if "running" not in key and "num_batches" not in key:
            torch.testing.assert_close(states[1][key], p, rtol=0, atol=0, equal_nan=True)


def test_real_architectures_fuse_exactly():
    # ResNet's option-A shortcut pads channels: a per-model rule keeps each model's channels apart.
    torch.manual_seed(0)
    resnets = [build_model("resnet20", num_classes=10, in_channels=1).double() for _ in range(3)]
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    fused = fuse_models(resnets, example_input=x).eval()
    out = fused(x)
    for b, m in enumerate(resnets):
        torch.testing.assert_close(out[:, b], m.eval()(x), rtol=0, atol=1e-10)
    # MobileNetV2: depthwise convolutions (groups = C) become groups = B·C.
    mobilenets = [build_model("mobilenet_v2", num_classes=10) for _ in range(2)]
    fused = fuse_models(mobilenets, example_input=torch.randn(2, 3, 32, 32))
    dw = fused.net.features[2].conv[1][0]
    assert dw.groups == dw.in_channels == 2 * mobilenets[0].features[2].conv[1][0].in_channels


def test_fusion_refuses_what_it_cannot_translate():
    with pytest.raises(UserError, match="different module tree"):
        fuse_models([nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU()), nn.Sequential(nn.Conv2d(1, 2, 1))])
    with pytest.raises(UserError, match="'stem.0' of model 1 has out_channels=8, model 0 has 6"):
        fuse_models([Tiny(), Tiny(c=8)])
    with pytest.raises(UserError, match="'down'.*out_channels"):
        a, b = Tiny(), Tiny()
        b.down = nn.Conv2d(6, 10, 3, stride=2, padding=1)
        fuse_models([a, b])
    with pytest.raises(UserError, match=r"'1' \(LayerNorm\) cannot be fused"):
        fuse_models([nn.Sequential(nn.Flatten(), nn.LayerNorm(4)) for _ in range(2)])

    class Shuffle(nn.Module):  # reverses the channel order: mixes models in the fused layout
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 1)

        def forward(self, x):
            return self.conv(x).flip(1).mean((2, 3))

    with pytest.raises(UserError, match="does not reproduce model 0.*register_fused_forward"):
        fuse_models([Shuffle(), Shuffle()], example_input=torch.randn(2, 1, 4, 4))


class Reverse(nn.Module):
    """Reverses the channel order: in the fused layout that would swap whole models."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 1)

    def forward(self, x):
        return self.conv(x).flip(1).mean((2, 3))


@register_fused_forward(Reverse)
def _reverse_per_model(module, x, num_models):
    out = module.conv(x)
    n, bc, h, w = out.shape
    return out.view(n, num_models, bc // num_models, h, w).flip(2).reshape(n, bc, h, w).mean((2, 3))


def test_a_registered_fused_forward_makes_a_foreign_module_fuse_exactly():
    models = [Reverse().double() for _ in range(3)]
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    fused = fuse_models(models, example_input=x).eval()  # check_fusion passes: no UserError
    for b, m in enumerate(models):
        torch.testing.assert_close(fused(x)[:, b], m(x), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="fused forward for Reverse is registered already"):
        register_fused_forward(Reverse)(_reverse_per_model)

    class OwnRule(nn.Module):
        def fused_forward(self, x, num_models):
            return x

    with pytest.raises(ValueError, match="OwnRule has its own fused_forward method"):
        register_fused_forward(OwnRule)(_reverse_per_model)


def test_fused_sgd_trains_channels_last_weights_as_contiguous_ones():
    # channels_last convolution weights cannot be flattened per model without a copy; the optimizer
    # must update them in place all the same (the layout on GPUs with channels_last, and on CPUs).
    runs = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        fused = fuse_models(tiny_models(3)).to(memory_format=layout)
        opt = FusedSGD(fused, [0.01, 0.02, 0.05], [1e-4, 1e-3, 1e-2], 0.9, nesterov=True)
        for x, y in batches(5):
            opt.zero_grad()
            per_model_loss(fused(x.contiguous(memory_format=layout)), y).sum().backward()
            opt.step()
        opt.load_momentum(1, opt.momentum_of(1))
        runs[layout] = (unfuse_state(fused), [opt.momentum_of(i) for i in range(3)])
    assert fused.net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    (states_cl, moms_cl), (states, moms) = runs[torch.channels_last], runs[torch.contiguous_format]
    for a, b in zip(states_cl + moms_cl, states + moms):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=TOL64)
