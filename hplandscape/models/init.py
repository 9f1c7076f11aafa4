"""He (Kaiming) initialisation, the one init used for fresh and for pruned architectures."""

from __future__ import annotations

from torch import nn


def he_init(model: nn.Module) -> nn.Module:
    """Initialise ``model`` in place (He et al., 2015) and return it.

    - Convolutions: Kaiming normal, ``mode="fan_out"``, ReLU gain, as torchvision does for
      ResNets and MobileNetV2; biases 0.
    - BatchNorm / GroupNorm: weight 1, bias 0.
    - Linear: Kaiming normal, ``mode="fan_in"`` with gain 1 (the classifier feeds a softmax, not
      a ReLU, so the ReLU factor 2 would only inflate the initial logits); bias 0.

    Draws from torch's global generator: seed it (``torch.manual_seed``) for a reproducible init.

    Examples
    --------
    >>> import torch
    >>> from hplandscape.models import build_model
    >>> _ = torch.manual_seed(0)
    >>> model = he_init(build_model("resnet20"))
    """
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
