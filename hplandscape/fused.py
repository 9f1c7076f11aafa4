"""Horizontally fused training: many grid points of one architecture trained as one module.

Every grid point of a condition trains the same architecture; only the learning rate and the weight
decay differ. On a GPU one small network (a ResNet-56 at batch 128) occupies a fraction of the
device, so B runs are trained here as a single module (horizontal fusion, as in HFTA, MLSys 2021):

- ``Conv2d(C_in, C_out, groups=g)`` becomes ``Conv2d(B·C_in, B·C_out, groups=B·g)`` with the B
  weights stacked along the output channels; depthwise convolutions stay depthwise.
- ``BatchNorm2d(C)`` becomes ``BatchNorm2d(B·C)``: statistics are per channel, hence per model.
- ``Linear`` becomes a batched matmul with weight ``(B, out, in)``.
- Activations, pooling, flattening and residual additions act per channel or per position and run
  unchanged on the fused tensor, laid out as ``(N, B·C, H, W)`` with the model index outermost.

One step of :class:`FusedSGD` updates all B models with per-model lr and wd tensors, and the loss
is the sum over models of each model's mean cross-entropy, so every model receives exactly the
gradient it would get alone. A model whose loss turns NaN/inf is masked out of the loss and frozen;
it is recorded as diverged and the others go on undisturbed.

On the CPU fusion is slower than training the runs one after another (grouped convolutions with few
channels per group were measured at 0.37–0.42× the speed of sequential training of a small ResNet
at B = 4–9), so :func:`choose_engine` picks fusion only on CUDA.

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
import dataclasses
import logging
import time
import types
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hplandscape.errors import UserError
from hplandscape.recipes import DATA_ORDERS

log = logging.getLogger(__name__)

ENGINES = ("auto", "sequential", "fused")

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


def _fuse_bn(bns: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    m, b = bns[0], len(bns)
    fused = nn.BatchNorm2d(m.num_features * b, eps=m.eps, momentum=m.momentum, affine=m.affine,
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
    nn.Linear: ("in_features", "out_features"),
}
_FUSERS = {nn.Conv2d: _fuse_conv, nn.BatchNorm2d: _fuse_bn, nn.Linear: _fuse_linear}


# --------------------------------------------------------------------------------------------
# Modules whose forward is not channel-layout agnostic


_FUSED_FORWARDS: dict[type, Callable] = {}


def register_fused_forward(cls: type):
    """Register the forward a module of type ``cls`` runs inside a fused network.

    Needed for modules whose own ``forward`` reshapes or pads the channel dimension, which would mix
    models in the fused ``(N, B·C, H, W)`` layout. The function receives ``(module, x,
    num_models)``; the module's children are fused already. Registering a type twice is an error.
    """
    def wrap(fn):
        if cls in _FUSED_FORWARDS:
            raise ValueError(f"a fused forward for {cls.__qualname__} is registered already")
        _FUSED_FORWARDS[cls] = fn
        return fn

    return wrap


def _register_builtin_rules() -> None:
    from hplandscape.models.cifar_resnet import BasicBlock

    if BasicBlock in _FUSED_FORWARDS:
        return

    @register_fused_forward(BasicBlock)
    def _basic_block(block, x, num_models):
        # Option-A shortcut: zero channels appended to *each* model's C channels, not to all B·C.
        out = F.relu(block.bn1(block.conv1(x)))
        out = block.bn2(block.conv2(out))
        shortcut = x
        if block.stride != 1 or block.pad:
            s = x[:, :, ::block.stride, ::block.stride]
            n, bc, h, w = s.shape
            s = F.pad(s.reshape(n, num_models, bc // num_models, h, w), (0, 0, 0, 0, 0, block.pad))
            shortcut = s.reshape(n, -1, h, w)
        return F.relu(out + shortcut)


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
    _register_builtin_rules()
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
    for name, mod in list(net.named_modules()):
        if name == "":
            continue
        group = [d[name] for d in modules]
        kind = next((k for k in _FUSERS if type(mod) is k), None)
        if kind is not None:
            for i, other in enumerate(group):
                for attr in _SIGNATURE[kind]:
                    if getattr(other, attr) != getattr(mod, attr):
                        raise UserError(f"layer {name!r} of model {i} has {attr}={getattr(other, attr)!r}, "
                                        f"model 0 has {getattr(mod, attr)!r}; only one architecture can be fused")
            _set_submodule(net, name, _FUSERS[kind](group))
        elif type(mod) in _FUSED_FORWARDS:
            mod.forward = types.MethodType(lambda self, x, _f=_FUSED_FORWARDS[type(mod)]: _f(self, x, b), mod)
        elif isinstance(mod, _CHANNELWISE) or not any(True for _ in mod.parameters(recurse=False)):
            continue
        else:
            raise UserError(f"layer {name!r} ({type(mod).__name__}) cannot be fused; supported layers with "
                            "parameters: Conv2d, BatchNorm2d, Linear; use engine: sequential")
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
                                    "does not translate; register a fused forward for it "
                                    "(hplandscape.fused.register_fused_forward) or use engine: sequential")
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
        self.lr = torch.as_tensor(lr, dtype=p0.dtype, device=p0.device).reshape(self.b, 1).clone()
        self.wd = torch.as_tensor(wd, dtype=p0.dtype, device=p0.device).reshape(self.b, 1).clone()
        self.alive = torch.ones(self.b, 1, dtype=torch.bool, device=p0.device)
        self.any_dead = False
        self.buffers = {name: None for name, _, _ in self.params}
        self._shapes = fused._shapes

    def set_lr(self, lr) -> None:
        """Set the per-model learning rates (e.g. at a schedule milestone)."""
        self.lr.copy_(torch.as_tensor(lr, dtype=self.lr.dtype).reshape(self.b, 1))

    def freeze(self, index: int) -> None:
        """Stop updating model ``index`` (it diverged): its weights and momentum stay as they are."""
        self.alive[index] = False
        self.any_dead = True

    def zero_grad(self) -> None:
        for _, p, _ in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for name, p, ndim in self.params:
            if p.grad is None:
                continue
            w = p.view(self.b, -1)
            d = p.grad.view(self.b, -1)
            if ndim > 1 or self.decay_1d:
                d = d.addcmul(w, self.wd)
            buf = self.buffers[name]
            if buf is None:  # torch's SGD starts the momentum buffer at the first gradient
                buf = self.buffers[name] = d.clone()
            else:
                buf.mul_(self.momentum).add_(d)
            upd = d.add(buf, alpha=self.momentum) if self.nesterov else buf
            upd = upd * self.lr
            if self.any_dead:
                # A frozen model's gradients may be NaN (its activations are); it must not move.
                upd = torch.where(self.alive, upd, torch.zeros((), dtype=upd.dtype, device=upd.device))
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
                self.buffers[name] = torch.zeros_like(p).view(self.b, -1)
            self.buffers[name][index].copy_(buffers[name].reshape(-1))


def per_model_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each model's mean cross-entropy, shape (B,), from logits (N, B, K) and labels (N,) or (B, N)."""
    n, b, _ = logits.shape
    target = y.view(n, 1).expand(n, b) if y.dim() == 1 else y.t()
    return F.cross_entropy(_upcast(logits).permute(0, 2, 1), target, reduction="none").mean(0)


def choose_engine(engine: str, device) -> str:
    """``"sequential"`` or ``"fused"`` for a configured engine on a device.

    ``auto`` picks fusion on CUDA and sequential runs on the CPU, where grouped convolutions make
    fused training slower than training the runs one by one.

    Parameters
    ----------
    engine : {"auto", "sequential", "fused"}
    device : str or torch.device
        ``"auto"`` means CUDA when available.

    Examples
    --------
    >>> choose_engine("auto", "cpu"), choose_engine("auto", "cuda"), choose_engine("fused", "cpu")
    ('sequential', 'fused', 'fused')
    """
    if engine not in ENGINES:
        raise UserError(f"launcher.engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine != "auto":
        return engine
    dev = str(device)
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    return "fused" if dev.startswith("cuda") else "sequential"


def _upcast(t: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (autocast) to float32 for the loss; float32/float64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


# --------------------------------------------------------------------------------------------
# The engine: RunSpecs in, one record per run out


def train_fused(specs, *, data_order: str | None = None) -> list[dict]:
    """Train runs of one study together, B at a time in one fused network.

    Runs that can share a network (same architecture, data, recipe and device; they differ in lr,
    wd and seed) are fused; others form separate groups. Each record has the keys of
    :func:`hplandscape.train.train_run`'s, with ``engine: "fused"``.

    Parameters
    ----------
    specs : sequence of RunSpec
    data_order : {"shared", "per_point"}, optional
        Overrides each spec's ``recipe.data_order``. ``shared`` (common random numbers): every run
        sees the batches its seed gives, so runs with one seed see the same batches. ``per_point``:
        each run draws its own order and augmentation from a stream seeded by its seed *and* grid
        point. Either way a fused record equals the sequential engine's up to float rounding.

    Returns
    -------
    list of dict
        One run record per spec, in the order of ``specs``. ``wall_time_s`` is the run's share of
        its group's time (group time / number of runs fused).

    Notes
    -----
    - Per-run checkpoints in the sequential engine's format go to ``run_dir/checkpoint.pt`` after
      every epoch; an interrupted fused group resumes from them (and so can ``train_run``, with the
      shared order).
    - A run whose loss turns NaN/inf is frozen at that step, evaluated as it is at the end of the
      epoch (as the sequential engine does) and recorded with ``diverged: true``; the others train on.
    - Dropout masks are drawn for all models at once, so networks with dropout match the sequential
      engine in distribution, not bit for bit.

    Raises
    ------
    UserError
        Bad ``data_order``, or whatever :func:`~hplandscape.train.train_run` would refuse.
    """
    if data_order is not None:
        if data_order not in DATA_ORDERS:
            raise UserError(f"data_order must be one of {', '.join(DATA_ORDERS)}; got {data_order!r}")
        specs = [dataclasses.replace(s, recipe=dataclasses.replace(s.recipe, data_order=data_order))
                 for s in specs]
    specs = list(specs)
    groups: dict[str, list] = {}
    for s in specs:
        groups.setdefault(_group_key(s), []).append(s)
    records = {}
    for group in groups.values():
        for rec in _train_group(group):
            records[rec["run_id"]] = rec
    return [records[s.run_id] for s in specs]


def _group_key(spec) -> str:
    doc = [spec.study, spec.model, spec.arch, dataclasses.asdict(spec.data), dataclasses.asdict(spec.recipe), spec.device]
    return repr(doc)


class _Run:
    """One run inside a fused group: its spec, original network, data stream and record state."""

    def __init__(self, spec, model, arch_hash, data_seed, fingerprint):
        self.spec, self.model, self.arch_hash = spec, model, arch_hash
        self.data_seed, self.fingerprint = data_seed, fingerprint
        self.generator = torch.Generator().manual_seed(data_seed)
        self.momentum: dict = {}
        self.state = {"next_epoch": 0, "history": [], "elapsed_s": 0.0, "diverged_epoch": None, "last_eval": None}

    @property
    def finished(self) -> bool:
        return self.state["diverged_epoch"] is not None or self.state["next_epoch"] >= self.spec.recipe.epochs


def _train_group(specs):
    from hplandscape.data import load_data
    from hplandscape.train import (CHECKPOINT, amp_setup, build_network, count_architecture, data_seed,
                                   load_checkpoint, make_optimizer, resolve_device, spec_fingerprint)

    started = time.perf_counter()
    recipe = specs[0].recipe
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    device = resolve_device(specs[0].device)
    data = load_data(specs[0].data)
    info = data.info
    runs = []
    for s in specs:
        Path(s.run_dir).mkdir(parents=True, exist_ok=True)
        torch.manual_seed(s.seed)  # the seed fixes the He init, as in the sequential engine
        model, arch_hash = build_network(s, info)
        run = _Run(s, model, arch_hash, data_seed(s), spec_fingerprint(s))
        ckpt = Path(s.run_dir) / CHECKPOINT
        if ckpt.exists():
            opt = make_optimizer(model, s.lr, s.wd, recipe)
            run.state = load_checkpoint(ckpt, run.fingerprint, model, opt, run.generator, None, torch.device("cpu"))
            run.momentum = {n: opt.state[p]["momentum_buffer"] for n, p in model.named_parameters()
                            if "momentum_buffer" in opt.state.get(p, {})}
            log.info("%s: resuming at epoch %d from %s", s.run_id, run.state["next_epoch"], ckpt)
        runs.append(run)
    input_shape = (info.in_channels, info.image_size, info.image_size)
    params, flops = count_architecture(runs[0].model, input_shape)
    amp_dtype, scaler = amp_setup(recipe, device)
    if scaler is not None:  # fp16 needs loss scaling per model; bf16 or fp32 do not
        log.warning("fused engine: this GPU has no bf16; training in float32 instead of fp16")
        amp_dtype = None
    memory_format = torch.channels_last if (recipe.channels_last and device.type == "cuda") else torch.contiguous_format

    # Runs resumed at different epochs cannot share batches; train each cohort on its own.
    cohorts: dict[int, list] = {}
    for r in runs:
        if not r.finished:
            cohorts.setdefault(r.state["next_epoch"], []).append(r)
    data = data.to(device)
    group_started = time.perf_counter()
    for cohort in cohorts.values():
        _train_cohort(cohort, data, recipe, device, memory_format, amp_dtype)
    # Each run is charged its share of the group: setup now, epochs as they ran (state["elapsed_s"]).
    setup_share = (group_started - started) / len(runs)
    return [_finish(r, info, params, flops, device, setup_share, data, recipe, memory_format, amp_dtype) for r in runs]


def _train_cohort(runs, data, recipe, device, memory_format, amp_dtype):
    from hplandscape.train import CUDA_CHECK_EVERY, autocast

    b = len(runs)
    probe = next(iter(data.eval_batches(2, device="cpu")))[0].to(_dtype_of(runs[0].model) or torch.float32)
    fused = fuse_models([r.model for r in runs], example_input=probe)
    fused.to(device=device, memory_format=memory_format)
    fused.train()
    opt = FusedSGD(fused, [r.spec.lr for r in runs], [r.spec.wd for r in runs], recipe.momentum,
                   recipe.nesterov, recipe.weight_decay_on_bn_bias)
    for i, r in enumerate(runs):
        if r.momentum:
            opt.load_momentum(i, {k: v.to(device) for k, v in r.momentum.items()})
    # One data stream per distinct seed: runs that share a seed share the batches (and their cost).
    seeds = sorted({r.data_seed for r in runs})
    stream_of = torch.tensor([seeds.index(r.data_seed) for r in runs], device=device)
    generators = {}
    for r in runs:
        generators.setdefault(r.data_seed, r.generator)
    check_every = 1 if device.type == "cpu" else CUDA_CHECK_EVERY
    alive = torch.ones(b, dtype=torch.bool, device=device)
    dead_at: dict[int, dict] = {}  # run index → its state_dict at the step it diverged
    epoch = runs[0].state["next_epoch"]
    while epoch < recipe.epochs and bool(alive.any()):
        epoch_started = time.perf_counter()
        lrs = [recipe.lr_at_epoch(r.spec.lr, epoch) for r in runs]
        opt.set_lr(lrs)
        loss_sum = torch.zeros(b, dtype=torch.float64, device=device)
        correct = torch.zeros(b, dtype=torch.int64, device=device)
        seen = torch.zeros(b, dtype=torch.int64, device=device)
        streams = [data.train_batches(recipe.batch_size, generators[s], recipe.augment, device=device,
                                      memory_format=memory_format) for s in seeds]
        died = []
        for step, batches in enumerate(zip(*streams)):
            if len(seeds) == 1:
                x, y = batches[0]
                y_models = y.view(-1, 1)
            else:
                x = torch.stack([xb for xb, _ in batches])[stream_of]
                y = torch.stack([yb for _, yb in batches])[stream_of]
                y_models = y.t()
            with autocast(device, amp_dtype):
                out = fused(x)
            losses = per_model_loss(out, y)
            total = torch.where(alive, losses, torch.zeros((), dtype=losses.dtype, device=device)).sum()
            opt.zero_grad()
            total.backward()
            opt.step()
            n = y_models.shape[0]
            # Losses are ≥ 0, so a model's running sum turns NaN/inf exactly when one of its batch losses did.
            loss_sum += torch.where(alive, losses.detach().double() * n, torch.zeros((), dtype=torch.float64, device=device))
            correct += ((out.detach().argmax(2) == y_models) & alive).sum(0)
            seen += alive * n
            if (step + 1) % check_every == 0:
                died += _check(runs, alive, loss_sum, opt, fused, dead_at, epoch)
        died += _check(runs, alive, loss_sum, opt, fused, dead_at, epoch)
        top = _evaluate_fused(fused, data, recipe, device, memory_format, amp_dtype, b)
        seen_c = seen.clamp_min(1).cpu()
        loss_sum, correct = loss_sum.cpu(), correct.cpu()
        states = unfuse_state(fused)
        epoch_s = (time.perf_counter() - epoch_started) / b
        for i, r in enumerate(runs):
            if r.state["diverged_epoch"] is not None and i not in died:
                continue  # frozen in an earlier epoch (or earlier session): its record is complete
            if i in died:
                r.model.load_state_dict(dead_at[i])
                top_i = _evaluate_one(r.model, data, recipe, device, memory_format, amp_dtype)
                train_loss = None
            else:
                top_i = top[i]
                train_loss = loss_sum[i].item() / seen_c[i].item()
                r.model.load_state_dict(states[i])
            r.state["history"].append({"epoch": epoch, "lr": lrs[i], "train_loss": train_loss,
                                       "train_acc": 100.0 * correct[i].item() / seen_c[i].item(), "val_acc": top_i[0]})
            r.state["last_eval"] = list(top_i)
            r.state["next_epoch"] = epoch + 1
            r.state["elapsed_s"] += epoch_s
            r.momentum = {} if i in died else opt.momentum_of(i)
            # Runs that share a stream advanced only its generator; each checkpoint needs the state.
            r.generator.set_state(generators[r.data_seed].get_state())
            if i in died:
                log.warning("%s: loss became NaN/inf in epoch %d at lr %.3g; frozen (diverged)", r.spec.run_id, epoch, lrs[i])
            else:
                log.info("%s: epoch %d lr %.4g loss %.4f train %.2f%% val %.2f%% (fused)", r.spec.run_id, epoch,
                         lrs[i], train_loss, r.state["history"][-1]["train_acc"], top_i[0])
            _save_run_checkpoint(r, recipe)
        epoch += 1


def _check(runs, alive, loss_sum, opt, fused, dead_at, epoch) -> list[int]:
    """Freeze the runs whose running loss stopped being finite; return their indices."""
    bad = alive & ~torch.isfinite(loss_sum)
    if not bool(bad.any()):
        return []
    idx = bad.nonzero().flatten().tolist()
    states = unfuse_state(fused)
    for i in idx:
        alive[i] = False
        opt.freeze(i)
        dead_at[i] = {k: v.cpu() for k, v in states[i].items()}
        runs[i].state["diverged_epoch"] = epoch
    return idx


@torch.no_grad()
def _evaluate_fused(fused, data, recipe, device, memory_format, amp_dtype, b) -> list[tuple]:
    """(top-1, top-5) per model, as :func:`hplandscape.train.evaluate` computes them for one."""
    from hplandscape.train import autocast

    fused.eval()
    k = 5 if data.info.num_classes > 5 else None
    c1 = torch.zeros(b, dtype=torch.int64, device=device)
    c5 = torch.zeros(b, dtype=torch.int64, device=device)
    n = 0
    # Fused activations are B times larger; smaller eval batches keep the memory of one training step.
    batch = max(recipe.batch_size, recipe.eval_batch_size // b)
    with autocast(device, amp_dtype):
        for x, y in data.eval_batches(batch, device=device, memory_format=memory_format):
            out = fused(x).float()
            c1 += (out.argmax(2) == y[:, None]).sum(0)
            if k:
                c5 += (out.topk(k, dim=2).indices == y[:, None, None]).any(2).sum(0)
            n += len(y)
    fused.train()
    if n == 0:
        return [(0.0, 0.0 if k else None)] * b
    c1, c5 = c1.cpu(), c5.cpu()
    return [(100.0 * c1[i].item() / n, 100.0 * c5[i].item() / n if k else None) for i in range(b)]


def _evaluate_one(model, data, recipe, device, memory_format, amp_dtype):
    from hplandscape.train import evaluate

    model.to(device=device, memory_format=memory_format)
    try:
        return evaluate(model, data, recipe.eval_batch_size, device, memory_format, amp_dtype)
    finally:
        model.to("cpu")


def _save_run_checkpoint(run, recipe) -> None:
    """The run's state in the sequential engine's checkpoint format (``train_run`` can resume it)."""
    from hplandscape.train import CHECKPOINT, save_checkpoint, make_optimizer

    s = run.spec
    model = run.model.to("cpu")
    opt = make_optimizer(model, s.lr, s.wd, recipe)
    for name, p in model.named_parameters():
        if name in run.momentum:
            opt.state[p]["momentum_buffer"] = run.momentum[name].to("cpu")
    save_checkpoint(Path(s.run_dir) / CHECKPOINT, run.fingerprint, model, opt, run.generator, None, run.state)


def _finish(run, info, params, flops, device, setup_share, data, recipe, memory_format, amp_dtype) -> dict:
    from hplandscape.train import WEIGHTS, build_record

    s = run.spec
    if run.state["last_eval"] is None:  # zero epochs: report the untrained network
        run.state["last_eval"] = list(_evaluate_one(run.model, data, recipe, device, memory_format, amp_dtype))
    if s.keep_weights:
        from hplandscape.models import save_weights

        widths = (s.arch or {}).get("widths")
        save_weights(Path(s.run_dir) / WEIGHTS, s.model, run.model.to("cpu"), info.num_classes, info.in_channels,
                     widths=widths)
    record = build_record(s, run.state, info, params, flops, device, run.state["elapsed_s"] + setup_share, run.arch_hash)
    record["engine"] = "fused"
    return record  # the checkpoint stays until the caller has stored the record (as in train_run)
