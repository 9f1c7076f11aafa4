"""Training recipes of method §6 as named presets (pure data: no torch here).

A recipe fixes everything about training except the two hyperparameters a study varies, the
learning rate γ and the weight decay λ. Weight decay is SGD's *coupled* L2 term (method Eq. 2.1):
V ← μV + ∇L + λW; W ← W − γV, which is exactly ``torch.optim.SGD(lr=γ, momentum=μ,
weight_decay=λ)``. Both are plain per-step coefficients, independent of the batch size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

PARAMETRISATION = (
    "SGD with momentum and coupled L2 weight decay (torch.optim.SGD): "
    "V <- momentum*V + grad(L) + wd*W; W <- W - lr*V. lr and wd are per-step coefficients, "
    "independent of batch size; the lr is multiplied by lr_gamma at each milestone epoch."
)
#: Added to :data:`PARAMETRISATION` in the records of a recipe whose milestones fall on steps.
STEP_MILESTONES = (" This recipe has too few epochs for its fraction milestones to fall on distinct epochs: the lr "
                   "is multiplied by lr_gamma after those fractions of all SGD steps instead.")

AUGMENTATIONS = ("cifar", "imagenet", "digits", "none")
MILESTONE_UNITS = ("fraction", "epoch")
RANDOMNESS = ("independent", "common")
#: The design of runs whose records or results table predate ``train.randomness``: they seeded
#: the He initialisation by the seed alone (one per seed, shared by every grid point) and, by
#: default, the data order too: common random numbers. Every reader of old records uses this.
LEGACY_RANDOMNESS = "common"


@dataclass(frozen=True)
class Recipe:
    """How one run trains.

    Parameters
    ----------
    preset : str
        Name of the preset this recipe started from (``cifar10``, ``imagenet``, ``digits``).
    epochs : int
        Training epochs.
    batch_size, eval_batch_size : int
        Mini-batch sizes for training and evaluation.
    momentum : float
        SGD momentum μ.
    nesterov : bool
        Nesterov momentum (the thesis uses plain momentum).
    milestones : tuple of float
        Epochs (``milestones_unit="epoch"``) or fractions of ``epochs``
        (``milestones_unit="fraction"``) after which the lr is multiplied by ``lr_gamma``. A
        fraction falls on the epoch ``round(f · epochs)``; when one would fall on epoch 0 (0.5 of
        1 epoch), all of them fall on SGD steps instead: ``round(f · epochs · steps per epoch)``
        (:attr:`milestones_on_steps`).
    milestones_unit : {"fraction", "epoch"}
    lr_gamma : float
        Multiplicative lr decay at each milestone (0.1 = "lr ÷ 10").
    weight_decay_on_bn_bias : bool
        Whether BatchNorm parameters and biases get weight decay (the thesis: they do).
    augment : {"cifar", "imagenet", "digits", "none"}
        Train-time augmentation family; evaluation never augments.
    channels_last : bool
        CUDA memory format. On the CPU it is ignored: runs use the format measured fastest for
        the architecture (``docs/performance.md``).
    amp : bool
        Mixed precision (autocast): on CUDA bf16 where the GPU supports it, else fp16 with loss
        scaling; on the CPU bf16, which pays only on CPUs with native bf16 (AVX512-BF16 or AMX;
        elsewhere it is slower than float32). Off by default: float32, the method's precision.
        Every record states the precision it trained in.
    threads : int or None
        torch CPU threads for one run (None: torch's default).
    randomness : {"independent", "common"}
        How the runs of one seed share randomness (method §10). ``independent`` (default, as if
        every run were a separate experiment): the He init, the data order and the augmentation
        are seeded by the seed *and* the grid point, so the noise of two grid points is
        independent. ``common`` (common random numbers): one init and one batch order per seed,
        shared by every grid point, so neighbouring points differ only by their hyperparameters.
    finetune_epochs : int or None
        Epochs of the runs of a condition with ``pipeline: finetune`` (they start from the trained
        basemodel's weights); fraction milestones scale to them. None: no condition fine-tunes.
    gradient_flow : bool
        Log the effective gradient flow EGF_1 and EGF_2 at about 11 evenly spaced epochs
        (:mod:`hplandscape.training.gradient_flow`); the record gets ``egf``.

    Examples
    --------
    >>> r = recipe_preset("cifar10")
    >>> r.milestone_epochs()
    (90, 135)
    >>> [round(r.lr_at_epoch(0.1, e), 12) for e in (0, 89, 90, 134, 135)]
    [0.1, 0.1, 0.01, 0.01, 0.001]
    """

    preset: str
    epochs: int
    batch_size: int
    eval_batch_size: int
    momentum: float = 0.9
    nesterov: bool = False
    milestones: tuple = (0.5, 0.75)
    milestones_unit: str = "fraction"
    lr_gamma: float = 0.1
    weight_decay_on_bn_bias: bool = True
    augment: str = "cifar"
    channels_last: bool = False
    amp: bool = False
    threads: int | None = None
    randomness: str = "independent"
    finetune_epochs: int | None = None
    gradient_flow: bool = False

    def milestone_epochs(self) -> tuple:
        """Epochs (0-based) from which each lr decay applies, sorted (a schedule on epochs)."""
        if self.milestones_unit == "fraction":
            return tuple(sorted(fraction_epoch(f, self.epochs) for f in self.milestones))
        return tuple(sorted(int(m) for m in self.milestones))

    @property
    def milestones_on_steps(self) -> bool:
        """Whether the lr decays on SGD steps rather than at epoch starts: fraction milestones of
        which one would fall on epoch 0 (``train.epochs=1``: 0.5 × 1 rounds to 0), which would
        train from the first step at the decayed lr.

        Every schedule whose milestones fall on epoch 1 or later stays on epochs, as it always
        was, so records and checkpoints made with it stay valid. On steps, the fractions keep
        their meaning: 50 % and 75 % of all the steps the run takes.
        """
        return self.milestones_unit == "fraction" and any(fraction_epoch(f, self.epochs) < 1
                                                          for f in self.milestones)

    def decay_steps(self, steps_per_epoch: int) -> tuple | None:
        """The SGD steps (0-based, counted over the whole run) from which each lr decay applies,
        sorted: ``round(f · epochs · steps_per_epoch)``, at least 1; None for a schedule on epochs."""
        if not self.milestones_on_steps:
            return None
        total = self.epochs * steps_per_epoch
        return tuple(sorted(max(1, int(round(f * total))) for f in self.milestones))

    def lr_at_epoch(self, base_lr: float, epoch: int) -> float:
        """The learning rate used during 0-based ``epoch``: base_lr · gamma^(milestones ≤ epoch).

        Raises
        ------
        ValueError
            The milestones fall on steps (:attr:`milestones_on_steps`): use :meth:`lr_at_step`.
        """
        if self.milestones_on_steps:
            raise ValueError("this recipe's milestones fall on SGD steps, not epochs: use lr_at_step")
        decays = sum(1 for m in self.milestone_epochs() if m <= epoch)
        return base_lr * self.lr_gamma**decays

    def lr_at_step(self, base_lr: float, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The learning rate of SGD step ``step`` (0-based) of 0-based ``epoch``, for either kind of
        schedule: on epochs it is :meth:`lr_at_epoch`'s, the same for every step of the epoch.

        >>> import dataclasses
        >>> one_epoch = dataclasses.replace(recipe_preset("digits"), epochs=1)
        >>> [round(one_epoch.lr_at_step(0.1, 0, s, 8), 12) for s in range(8)]
        [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
        """
        steps = self.decay_steps(steps_per_epoch)
        if steps is None:
            return self.lr_at_epoch(base_lr, epoch)
        done = epoch * steps_per_epoch + step
        return base_lr * self.lr_gamma ** sum(1 for m in steps if m <= done)

    def to_dict(self) -> dict:
        """The recipe as plain data. ``finetune_epochs`` and ``gradient_flow`` appear only when set,
        so the resolved config of a study that uses neither reads (and compares) as before they
        existed."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        for key, unset in _OPTIONAL_UNSET.items():
            if d[key] == unset:
                del d[key]
        return d

    def for_finetune(self) -> "Recipe":
        """The recipe of a fine-tuning run: ``finetune_epochs`` epochs, the same schedule shape."""
        if self.finetune_epochs is None:
            raise ValueError("this recipe has no finetune_epochs (train.finetune_epochs in the study config)")
        return dataclasses.replace(self, epochs=self.finetune_epochs)


#: Recipe fields left out of :meth:`Recipe.to_dict` while they hold these values.
_OPTIONAL_UNSET = {"finetune_epochs": None, "gradient_flow": False}


def fraction_epoch(fraction: float, epochs: int) -> int:
    """The 0-based epoch a milestone given as a fraction of ``epochs`` falls on: ``round(f·epochs)``.

    Examples
    --------
    >>> fraction_epoch(0.5, 180), fraction_epoch(0.75, 180), fraction_epoch(0.5, 1)
    (90, 135, 0)

    Epoch 0 would decay the lr from the start: such a recipe's milestones fall on steps
    (:attr:`Recipe.milestones_on_steps`).
    """
    return int(round(fraction * epochs))


PRESETS = {
    # method §6, thesis Table 3.3: 180 epochs, lr ÷ 10 after 50 % and 75 % (epochs 90 and 135).
    "cifar10": Recipe(preset="cifar10", epochs=180, batch_size=128, eval_batch_size=1000,
                      milestones=(0.5, 0.75), milestones_unit="fraction", augment="cifar"),
    # method §6: 90 epochs, lr ÷ 10 at epochs 30 and 60, batch 256.
    "imagenet": Recipe(preset="imagenet", epochs=90, batch_size=256, eval_batch_size=256,
                       milestones=(30, 60), milestones_unit="epoch", augment="imagenet"),
    # Not from the thesis: a short schedule for the embedded digits quickstart, same shape as CIFAR.
    "digits": Recipe(preset="digits", epochs=12, batch_size=128, eval_batch_size=1000,
                     milestones=(0.5, 0.75), milestones_unit="fraction", augment="digits"),
}


#: What a study trains with when ``train.preset`` and ``train.augment`` are not given, per dataset:
#: ``(preset, augmentation)``. The CIFAR-10 recipe (180 epochs, batch 128, lr ÷ 10 after 50 % and
#: 75 %) and its pad-crop-flip augmentation serve CIFAR-100 (the same images; the recipe of the
#: CIFAR ResNet papers) and the data of one's own, image folders and loaders alike: both are held
#: in uint8 batches (an image folder even when streamed) and padded by 4 px per 32 px of image.
#: ImageNet keeps its own (method §6). Change either with ``train.preset`` / ``train.augment``.
DATASET_DEFAULTS = {
    "digits": ("digits", "digits"),
    "cifar10": ("cifar10", "cifar"),
    "cifar100": ("cifar10", "cifar"),
    "imagenet": ("imagenet", "imagenet"),
    "imagefolder": ("cifar10", "cifar"),
    "python": ("cifar10", "cifar"),
}


def recipe_preset(name: str) -> Recipe:
    """The preset recipe called ``name``; unknown names raise ``KeyError`` listing the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown recipe preset {name!r}; available: {', '.join(sorted(PRESETS))}") from None
