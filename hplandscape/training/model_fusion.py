"""Horizontal fusion: B structurally identical networks trained as one module (HFTA, MLSys 2021).

Every grid point of a condition trains the same architecture; only the learning rate and the weight
decay differ. On a GPU one small network (a ResNet-56 at batch 128) occupies a fraction of the
device, so B of them are turned into a single module:

- ``Conv2d(C_in, C_out, groups=g)`` becomes ``Conv2d(B·C_in, B·C_out, groups=B·g)`` with the B
  weights stacked along the output channels; depthwise convolutions stay depthwise.
- ``BatchNorm2d(C)`` becomes ``BatchNorm2d(B·C)``: statistics are per channel, hence per model;
  likewise ``BatchNorm1d(F)`` on the ``(N, B·F)`` output of a fused ``Linear`` (VGG's classifier).
- ``Linear`` becomes a batched matmul with weight ``(B, out, in)``.
- Activations, pooling, flattening and residual additions act per channel or per position and run
  unchanged on the fused tensor, laid out as ``(N, B·C, H, W)`` with the model index outermost.
- A module whose forward reshapes or pads the channel dimension runs its own
  ``fused_forward(x, num_models)`` method instead (the CIFAR ResNet's ``BasicBlock`` has one), or
  a forward registered with :func:`register_fused_forward` for types one cannot edit.

One step of :class:`FusedSGD` updates all B models with per-model lr and wd tensors, and
:func:`per_model_loss` is each model's mean cross-entropy, so summing it gives every model exactly
the gradient it would get alone. This module knows nothing of runs, data or records: the engine
that trains runs with it is :mod:`hplandscape.training.fused_engine`.

Examples
--------
>>> import torch
>>> from torch import nn
>>> models = [nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
...                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)) for _ in range(3)]
>>> fused = fuse_models(models)
>>> fused(torch.randn(5, 3, 8, 8)).shape     # one shared batch in, (N, B, classes) out
torch.Size([5, 3, 2])
>>> [tuple(s["5.weight"].shape) for s in unfuse_state(fused)]
[(2, 4), (2, 4), (2, 4)]
"""

from __future__ import annotations

import copy
import types
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hplandscape.errors import UserError
from hplandscape.training.setup import upcast_logits

# Module types that hold no parameters and act on each channel (or each position) separately, so
# they run unchanged on the fused (N, B·C, H, W) layout.
_CHANNELWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardtanh,
                nn.Sigmoid, nn.Tanh, nn.Identity, nn.Dropout, nn.Dropout2d, nn.AdaptiveAvgPool2d,
                nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.Flatten)


# --------------------------------------------------------------------------------------------
# Fused layers


class FusedLinear(nn.Module):
    """B linear layers applied at once: ``(N, B·in) → (N, B·out)`` with weight ``(B, out, in)``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None
        self.num_models, self.out_features, self.in_features = weight.shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise UserError(f"the fused engine supports Linear layers on 2-D inputs (N, features) only, "
                            f"got shape {tuple(x.shape)}; use engine: sequential for this architecture")
        n = x.shape[0]
        xb = x.view(n, self.num_models, self.in_features).transpose(0, 1)  # (B, N, in)
        if self.bias is not None:
            out = torch.baddbmm(self.bias.unsqueeze(1), xb, self.weight.transpose(1, 2))
        else:
            out = torch.bmm(xb, self.weight.transpose(1, 2))
        return out.transpose(0, 1).reshape(n, self.num_models * self.out_features)

    def extra_repr(self) -> str:
        return f"models={self.num_models}, in={self.in_features}, out={self.out_features}"


class FusedConv2d(nn.Conv2d):
    """B convolutions as one grouped convolution over ``B·C`` channels.

    A shared input batch (``C_in`` channels instead of ``B·C_in``) reaches the same weights through
    one ungrouped convolution with ``B·C_out`` outputs: it computes exactly the grouped convolution
    of the input repeated B times, without materialising B copies of the batch.
    """

    num_models: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_models > 1 and self.groups == self.num_models and x.shape[1] * self.num_models == self.in_channels:
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, 1)
        return super().forward(x)


def _fuse_conv(convs: list[nn.Conv2d]) -> FusedConv2d:
    c, b = convs[0], len(convs)
    fused = FusedConv2d(c.in_channels * b, c.out_channels * b, c.kernel_size, stride=c.stride,
                        padding=c.padding, dilation=c.dilation, groups=c.groups * b, bias=c.bias is not None,
                        padding_mode=c.padding_mode, device="meta")
    fused.num_models = b
    fused.weight = nn.Parameter(torch.cat([m.weight.detach() for m in convs]).clone())
    if c.bias is not None:
        fused.bias = nn.Parameter(torch.cat([m.bias.detach() for m in convs]).clone())
    return fused


def _fuse_bn(bns: list[nn.modules.batchnorm._BatchNorm]) -> nn.modules.batchnorm._BatchNorm:
    m, b = bns[0], len(bns)
    fused = type(m)(m.num_features * b, eps=m.eps, momentum=m.momentum, affine=m.affine,
                    track_running_stats=m.track_running_stats, device=m.running_mean.device
                    if m.running_mean is not None else None, dtype=_dtype_of(m))
    with torch.no_grad():
        if m.affine:
            fused.weight.copy_(torch.cat([x.weight for x in bns]))
            fused.bias.copy_(torch.cat([x.bias for x in bns]))
        if m.track_running_stats:
            fused.running_mean.copy_(torch.cat([x.running_mean for x in bns]))
            fused.running_var.copy_(torch.cat([x.running_var for x in bns]))
            fused.num_batches_tracked.copy_(m.num_batches_tracked)
    return fused


def _dtype_of(module: nn.Module):
    for t in list(module.parameters()) + list(module.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def _fuse_linear(linears: list[nn.Linear]) -> FusedLinear:
    weight = torch.stack([m.weight.detach() for m in linears]).clone()
    bias = torch.stack([m.bias.detach() for m in linears]).clone() if linears[0].bias is not None else None
    return FusedLinear(weight, bias)


# Hyperparameters that must agree for modules to be fused (the weights may differ, nothing else).
_SIGNATURE = {
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                "padding_mode"),
    nn.BatchNorm2d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.BatchNorm1d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.Linear: ("in_features", "out_features"),
}
_FUSERS = {nn.Conv2d: _fuse_conv, nn.BatchNorm2d: _fuse_bn, nn.BatchNorm1d: _fuse_bn, nn.Linear: _fuse_linear}


# --------------------------------------------------------------------------------------------
# Modules whose forward is not channel-layout agnostic


_FUSED_FORWARDS: dict[type, Callable] = {}


def register_fused_forward(cls: type):
    """Register the forward a module of type ``cls`` runs inside a fused network.

    Needed for modules whose own ``forward`` reshapes or pads the channel dimension, which would mix
    models in the fused ``(N, B·C, H, W)`` layout. The function receives ``(module, x,
    num_models)``; the module's children are fused already. This is for types one cannot edit;
    a block of one's own says it by a method ``fused_forward(self, x, num_models)`` (the protocol
    :func:`fuse_models` looks for). Registering a type twice, or one that has that method, is an
    error.

    Examples
    --------
    >>> class Shuffle(nn.Module):                   # reverses the channels of the whole tensor
    ...     def forward(self, x):
    ...         return x.flip(1)
    >>> @register_fused_forward(Shuffle)
    ... def _shuffle(module, x, num_models):        # ... so inside a fusion: of each model's block
    ...     n, bc, h, w = x.shape
    ...     return x.view(n, num_models, bc // num_models, h, w).flip(2).view(n, bc, h, w)
    """
    def wrap(fn):
        if cls in _FUSED_FORWARDS:
            raise ValueError(f"a fused forward for {cls.__qualname__} is registered already")
        if callable(getattr(cls, "fused_forward", None)):
            raise ValueError(f"{cls.__qualname__} has its own fused_forward method; it needs no registration")
        _FUSED_FORWARDS[cls] = fn
        return fn

    return wrap


def _fused_forward_of(cls: type) -> Callable | None:
    """``(module, x, num_models) -> output`` for a module type with a fused forward, else None."""
    own = getattr(cls, "fused_forward", None)
    return own if callable(own) else _FUSED_FORWARDS.get(cls)


# --------------------------------------------------------------------------------------------
# The converter


class FusedModule(nn.Module):
    """B structurally identical networks trained as one; built by :func:`fuse_models`.

    ``forward(x)`` takes either one shared batch ``(N, C, H, W)`` or one batch per model
    ``(B, N, C, H, W)`` and returns logits ``(N, B, classes)``. Every parameter and buffer keeps the
    model index as its outermost dimension, so ``p.view(B, -1)[b]`` is model b's part.
    """

    def __init__(self, net: nn.Module, num_models: int, shapes: dict, ndims: dict):
        super().__init__()
        self.net = net
        self.num_models = num_models
        self._shapes = shapes  # state_dict key → shape in one original model
        self._ndims = ndims    # parameter name → ndim in one original model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            b, n = x.shape[:2]
            if b != self.num_models:
                raise ValueError(f"per-model input holds {b} batches for {self.num_models} models")
            x = x.transpose(0, 1).reshape(n, b * x.shape[2], *x.shape[3:])
        out = self.net(x)
        return out.view(out.shape[0], self.num_models, -1)

    def model_parameters(self):
        """``(name, fused parameter, ndim of the parameter in one original model)`` in model order."""
        return [(name, p, self._ndims[name]) for name, p in self.net.named_parameters()]


def fuse_models(models: list[nn.Module], example_input: torch.Tensor | None = None) -> FusedModule:
    """Fuse B structurally identical networks into one :class:`FusedModule`.

    Parameters
    ----------
    models : list of nn.Module
        The networks, same architecture (module tree, layer sizes), weights free to differ. They
        are not modified; the fused module holds copies of their weights and buffers.
    example_input : torch.Tensor, optional
        A small shared batch ``(N, C, H, W)``. When given, the fused network is checked against
        every original on it (eval mode) and a network whose forward mixes channels in a way the
        fusion cannot translate is refused instead of training silently wrong.

    Returns
    -------
    FusedModule

    Raises
    ------
    UserError
        Fewer than one model, models that differ in structure, a layer type with parameters that
        cannot be fused (the message lists the supported ones), or a failed check.
    """
    if not models:
        raise UserError("fuse_models needs at least one model")
    template = models[0]
    names = [n for n, _ in template.named_modules()]
    for i, m in enumerate(models[1:], 1):
        other = [n for n, _ in m.named_modules()]
        if other != names:
            raise UserError(f"model {i} has a different module tree from model 0; only copies of one "
                            "architecture (same pruned widths) can be fused")
    b = len(models)
    net = copy.deepcopy(template)
    modules = [dict(m.named_modules()) for m in models]
    for name, mod in list(net.named_modules()):  # the root too: a block or a layer may be fused alone
        group = [d[name] for d in modules]
        where = f"layer {name!r}" if name else "the model itself"
        kind = next((k for k in _FUSERS if type(mod) is k), None)
        if kind is not None:
            for i, other in enumerate(group):
                for attr in _SIGNATURE[kind]:
                    if getattr(other, attr) != getattr(mod, attr):
                        raise UserError(f"{where} of model {i} has {attr}={getattr(other, attr)!r}, "
                                        f"model 0 has {getattr(mod, attr)!r}; only one architecture can be fused")
            if name:
                _set_submodule(net, name, _FUSERS[kind](group))
            else:
                net = _FUSERS[kind](group)
        elif (fused_forward := _fused_forward_of(type(mod))) is not None:
            mod.forward = types.MethodType(lambda self, x, _f=fused_forward: _f(self, x, b), mod)
        elif isinstance(mod, _CHANNELWISE) or not any(True for _ in mod.parameters(recurse=False)):
            continue
        else:
            raise UserError(f"{where} ({type(mod).__name__}) cannot be fused; supported layers with "
                            "parameters: Conv2d, BatchNorm2d, BatchNorm1d, Linear; use engine: sequential")
    shapes = {k: tuple(v.shape) for k, v in template.state_dict().items()}
    ndims = {k: p.ndim for k, p in template.named_parameters()}
    fused = FusedModule(net, b, shapes, ndims)
    fused.train(template.training)
    if example_input is not None:
        check_fusion(fused, models, example_input)
    return fused


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def check_fusion(fused: FusedModule, models: list[nn.Module], x: torch.Tensor, rtol: float = 1e-3) -> None:
    """Raise :class:`UserError` unless ``fused(x)[:, b]`` equals ``models[b](x)`` (eval mode) for all b."""
    modes = [m.training for m in models] + [fused.training]
    try:
        fused.eval()
        for m in models:
            m.eval()
        with torch.no_grad():
            out = fused(x)
            for b, m in enumerate(models):
                want = m(x)
                scale = want.abs().max().clamp_min(1e-6)
                err = (out[:, b] - want).abs().max() / scale
                if not bool(err <= rtol):
                    raise UserError(f"the fused network does not reproduce model {b} (relative error {float(err):.2e}): "
                                    f"{type(models[0]).__name__} mixes channels in its forward in a way the fusion "
                                    "does not translate; give the module a fused_forward(x, num_models) "
                                    "method or register one (hplandscape.training.model_fusion.register_fused_forward), "
                                    "or use engine: sequential")
    finally:
        for m, mode in zip(models, modes):
            m.train(mode)
        fused.train(modes[-1])


def unfuse_state(fused: FusedModule) -> list[dict]:
    """Per-model ``state_dict``\\ s with the original keys and shapes (copies, on the same device).

    Examples
    --------
    >>> from torch import nn
    >>> fused = fuse_models([nn.Linear(3, 2), nn.Linear(3, 2)])
    >>> [tuple(s["weight"].shape) for s in unfuse_state(fused)]
    [(2, 3), (2, 3)]
    """
    b = fused.num_models
    out = [{} for _ in range(b)]
    for key, t in fused.net.state_dict().items():
        shape = fused._shapes[key]
        if t.dim() == 0:  # BatchNorm's step counter: the same for every model
            for s in out:
                s[key] = t.detach().clone()
            continue
        parts = t.detach().reshape(b, -1)
        for i, s in enumerate(out):
            s[key] = parts[i].reshape(shape).clone()
    return out


# --------------------------------------------------------------------------------------------
# The optimizer


class FusedSGD:
    """SGD with momentum and coupled L2 weight decay, per-model lr and wd (method Eq. 2.1).

    For model b: ``V ← μV + ∇L + λ_b W; W ← W − γ_b V`` (Nesterov: ``W ← W − γ_b (∇L + λ_b W + μV)``),
    which is ``torch.optim.SGD(lr=γ_b, momentum=μ, weight_decay=λ_b)`` step for step.

    Parameters
    ----------
    fused : FusedModule
    lr, wd : sequence of float
        One learning rate and one weight decay per model.
    momentum : float
    nesterov : bool
    decay_1d : bool
        Whether parameters that are one-dimensional in the original model (BatchNorm scale and
        shift, biases) get weight decay (``Recipe.weight_decay_on_bn_bias``).
    """

    def __init__(self, fused: FusedModule, lr, wd, momentum: float, nesterov: bool = False, decay_1d: bool = True):
        self.b = fused.num_models
        p0 = next(fused.parameters())
        self.params = fused.model_parameters()
        self.momentum, self.nesterov, self.decay_1d = float(momentum), bool(nesterov), decay_1d
        self.lr = torch.as_tensor(lr, dtype=p0.dtype, device=p0.device).reshape(self.b).clone()
        self.wd = torch.as_tensor(wd, dtype=p0.dtype, device=p0.device).reshape(self.b).clone()
        self.alive = torch.ones(self.b, dtype=torch.bool, device=p0.device)
        self.any_dead = False
        self.buffers = {name: None for name, _, _ in self.params}
        self._shapes = fused._shapes

    def set_lr(self, lr) -> None:
        """Set the per-model learning rates (e.g. at a schedule milestone)."""
        self.lr.copy_(torch.as_tensor(lr, dtype=self.lr.dtype).reshape(self.b))

    def freeze(self, index: int) -> None:
        """Stop updating model ``index`` (it diverged): its weights and momentum stay as they are."""
        self.alive[index] = False
        self.any_dead = True

    def zero_grad(self) -> None:
        for _, p, _ in self.params:
            p.grad = None

    def _per_model(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` as ``(B, ...)``, model b's part at ``[b]``. Splitting the outermost dimension is a
        view in any memory format; flattening the rest is not (channels_last weights)."""
        return t.unflatten(0, (self.b, -1))

    def _each(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-model ``values`` (B,) shaped to broadcast against ``like`` (B, ...)."""
        return values.view(self.b, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        for name, p, ndim in self.params:
            if p.grad is None:
                continue
            w = self._per_model(p)
            d = self._per_model(p.grad)
            if ndim > 1 or self.decay_1d:
                d = d.addcmul(w, self._each(self.wd, w))
            buf = self.buffers[name]
            if buf is None:  # torch's SGD starts the momentum buffer at the first gradient
                buf = self.buffers[name] = d.clone()
            else:
                buf.mul_(self.momentum).add_(d)
            upd = d.add(buf, alpha=self.momentum) if self.nesterov else buf
            upd = upd * self._each(self.lr, w)
            if self.any_dead:
                # A frozen model's gradients may be NaN (its activations are); it must not move.
                upd = torch.where(self._each(self.alive, w), upd, torch.zeros((), dtype=upd.dtype, device=upd.device))
            w.sub_(upd)

    def momentum_of(self, index: int) -> dict:
        """Model ``index``'s momentum buffers ``{parameter name: tensor}`` in its original shapes."""
        out = {}
        for name, p, _ in self.params:
            buf = self.buffers[name]
            if buf is not None:
                out[name] = buf[index].reshape(self._shapes[name]).clone()
        return out

    def load_momentum(self, index: int, buffers: dict) -> None:
        """Set model ``index``'s momentum buffers from ``{parameter name: tensor}``."""
        for name, p, _ in self.params:
            if name not in buffers:
                continue
            if self.buffers[name] is None:
                self.buffers[name] = self._per_model(torch.zeros_like(p))
            part = self.buffers[name][index]
            part.copy_(buffers[name].reshape(part.shape))


def per_model_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each model's mean cross-entropy, shape (B,), from logits (N, B, K) and labels (N,) or (B, N)."""
    n, b, _ = logits.shape
    target = y.view(n, 1).expand(n, b) if y.dim() == 1 else y.t()
    return F.cross_entropy(upcast_logits(logits).permute(0, 2, 1), target, reduction="none").mean(0)

