"""Parameter and FLOPs counts.

FLOPs here are **2 × multiply-accumulates of the convolution and linear layers** for one input
image (batch 1). BatchNorm, activations, pooling and residual additions are not counted; with this
convention ResNet-56 has 2.5e8 FLOPs, the 32×32 MobileNetV2 5.9e8 and ResNet-50 8.2e9, the
figures of the thesis (Table 3.2) within 3 %.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``; buffers are not counted."""
    return sum(p.numel() for p in model.parameters())


def layer_costs(model: nn.Module, input_shape: Sequence[int]) -> dict[str, tuple[nn.Module, int]]:
    """``{name: (module, output positions)}`` of every conv and linear layer for one input.

    Output positions are the number of spatial output locations (1 for a linear layer on a
    vector). One forward pass in eval mode with hooks, on the model's own device; on the ``meta``
    device no arithmetic is done at all, which makes this cheap even for ImageNet models.
    """
    costs: dict[str, tuple[nn.Module, int]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            def hook(mod, inputs, output, name=name):
                # output is (N, C, *spatial) for convs, (N, *, out_features) for linear layers
                per_channel = output.shape[2:].numel() if isinstance(mod, nn.modules.conv._ConvNd) \
                    else output.shape[1:-1].numel()
                costs[name] = (mod, int(per_channel))
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_shape, device=param.device if param is not None else None,
                    dtype=param.dtype if param is not None else None)
    try:
        model.eval()  # batch-1 BatchNorm statistics are undefined in training mode
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return costs


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass: 2 × multiply-accumulates of conv and linear layers.

    Parameters
    ----------
    model : nn.Module
        Any model; convolutions (any dimension, grouped or depthwise) and linear layers are
        counted, everything else is free.
    input_shape : sequence of int
        Shape of one input without the batch dimension, e.g. ``(3, 32, 32)``.

    Returns
    -------
    int
        ``sum(2 * output_positions * out_channels * in_channels / groups * kernel_size)`` over the
        conv layers plus ``2 * in_features * out_features`` per linear layer.

    Examples
    --------
    >>> from torch import nn
    >>> count_flops(nn.Conv2d(3, 8, 3, padding=1), (3, 4, 4))  # 2 * 16 positions * 8 * 3 * 9
    6912
    """
    # weight.shape[1:] is (in_channels / groups, *kernel) for convs and (in_features,) for linear:
    # the multiply-accumulates per output value
    return sum(2 * positions * m.weight.shape[0] * m.weight.shape[1:].numel()
               for m, positions in layer_costs(model, input_shape).values())
