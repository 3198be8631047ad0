"""Training the inverse network of style swap (Chen & Schmidt 2016): the recipe over :func:`impasto.optim.train_loop.train_loop`.

The decoder ``g`` learns to invert the frozen encoder ``Φ`` at the swap layer (``relu3_1``):

    loss = ||Φ(g(z)) − z||² / ||z||²  +  tv_weight · TV(g(z))

per sample (the feature error divided by the target's energy, as the project's other feature
losses and ``impasto swap``'s own inversion are; TV is :func:`impasto.losses.functional.tv_loss`),
averaged over the batch. The features ``z`` are those ``impasto swap`` hands the decoder: on a
share ``swap_fraction`` of the steps, photo b's features style-swapped with painting b's patches
(:func:`impasto.nets.swapinverse.swap_features`); on the others, the features of the photos and of
the paintings themselves. Which steps swap is a pure function of the step (spread evenly:
step ``t`` swaps when ``floor((t + 1) f) > floor(t f)``), so a resumed run is bit-identical to an
uninterrupted one. (Chen & Schmidt's code puts photos, paintings and all their cross swaps into
every batch; here a step holds one kind, which keeps the steps cheap and the share a setting.)

Only the decoder is trained. Photos, paintings, the run folder (``checkpoint.pt``,
``config.json`` with ``data``/``style_data``, ``log.jsonl`` with ``content``/``tv``/``total``,
``previews/step_N/``: photo i swapped with painting i and decoded, ``model.pt`` holding the
decoder and the encoder's ``weights_id``), resume and the monitor are the AdaIN recipe's
(:func:`impasto.methods.adain_train.start_painting_run`, :func:`~impasto.methods.adain_train.run_on_paintings`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..config import check_rules
from ..errors import ConfigError
from ..losses.terms import LossTerm, TermInputs, TVTerm, weighted_total
from ..nets.protocol import check_generator, pad_to
from ..nets.registry import ARCHS, get_arch
from ..progress import Event
from .adain_train import run_on_paintings, start_painting_run
from .ff_model import CHECKPOINT_NAME
from .ff_train import TrainConfig, _h, _layers_arg, _warn, parse_layers
from .stylepredict_train import _encoder_info, _resolved_weights

__all__ = ["SwapInverseTrainConfig", "InverseFeatureTerm", "SwapInverseObjective", "swap_step", "train_swapinverse"]


@dataclass(frozen=True)
class SwapInverseTrainConfig(TrainConfig):
    """Every knob of swap-inverse training. Defaults follow Chen & Schmidt's code
    (``train-vgg-decoder.lua``: relu3_1 of VGG19, Adam at 1e-3, 80000 steps, 256 px); the fields
    not redeclared here mean what they mean in :class:`~impasto.methods.ff_train.TrainConfig`
    (``style_layers``, ``style_loss`` and ``style_edge`` are unused: there is no style loss, and
    paintings are cropped to ``train_size`` like the photos)."""

    arch: str = field(default="swap-inverse", metadata=_h("generator: " + "; ".join(f"{k}: {v}" for k, v in ARCHS.items()), choices=tuple(ARCHS)))
    encoder: str = field(default="vgg19", metadata=_h("encoder (frozen; the decoder learns to invert it): vgg19 (Chen & Schmidt), vgg16, tiny_vgg"))
    content_layers: str = field(default="relu3_1", metadata=_h("the swap layer: where patches are swapped and what the decoder inverts (one layer; Chen & Schmidt: relu3_1)", metavar="LAYER", parse=_layers_arg))
    content_weight: float = field(default=1.0, metadata=_h("weight of the feature reconstruction loss (normalised by the features' energy)"))
    style_weight: float = field(default=0.0, metadata=_h("unused by swap-inverse (no style loss: the style comes from the swapped patches); must be 0"))
    tv_weight: float = field(default=1e-3, metadata=_h("weight of the total-variation smoothness loss (the same objective as impasto swap's optimisation)"))
    batch_size: int = field(default=4, metadata=_h("photo/painting pairs per step"))
    steps: int = field(default=80000, metadata=_h("training steps (Chen & Schmidt: 80000)", short="-n"))
    lr: float = field(default=1e-3, metadata=_h("Adam learning rate"))
    patch_size: int = field(default=3, metadata=_h("patch side in feature pixels of the swaps trained on (Chen & Schmidt: 3)"))
    patch_stride: int = field(default=1, metadata=_h("stride between a painting's patches in the swaps trained on"))
    swap_fraction: float = field(default=0.5, metadata=_h("share of the steps whose features are style-swapped (photo b with painting b's patches); the others invert the photos' and paintings' own features"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rules([
            (not self.texture, "texture", "swap-inverse training decodes photos and paintings: texture must be off"),
            (len(parse_layers(self.content_layers)) == 1, "content_layers", f"content_layers must name exactly one layer (the swap layer), got {self.content_layers!r}"),
            (self.style_weight == 0, "style_weight", f"style_weight must be 0 for swap-inverse training (it has no style loss), got {self.style_weight}"),
            (self.patch_size >= 1 and self.patch_size % 2 == 1, "patch_size", f"patch_size must be an odd number >= 1, got {self.patch_size}"),
            (self.patch_stride >= 1, "patch_stride", f"patch_stride must be >= 1, got {self.patch_stride}"),
            (0.0 <= self.swap_fraction <= 1.0, "swap_fraction", f"swap_fraction must be in [0, 1], got {self.swap_fraction}"),
        ])


def swap_step(step: int, fraction: float) -> bool:
    """Whether step ``step`` (0-based) trains on swapped features: a share ``fraction`` of the
    steps, spread evenly (``floor((step + 1) f) > floor(step f)``)."""
    return math.floor((step + 1) * fraction) > math.floor(step * fraction)


class InverseFeatureTerm(LossTerm):
    """``||Φ(g(z)) − z||² / ||z||²`` at the swap layer, per sample, averaged over the batch (the
    target ``z`` is set by the objective each step)."""

    name = "content"
    tiling = None
    params = ("content_weight",)

    def __init__(self, weight: float, layer: str) -> None:
        super().__init__(weight)
        self.layer = layer
        self.target: torch.Tensor | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def active(self, inputs: TermInputs) -> bool:
        return self.weight > 0 and self.target is not None

    def value(self, inputs: TermInputs) -> torch.Tensor:
        assert self.target is not None
        z = self.target.float()
        error = (inputs.features[self.layer].float() - z).square().mean(dim=(1, 2, 3))
        return (error / z.square().mean(dim=(1, 2, 3)).clamp_min(1e-8)).mean()


class SwapInverseObjective:
    """One step's loss for a (photos, paintings) batch: the decoder's output of ``z`` against ``z``
    (and its total variation). ``z``: on swap steps (:func:`swap_step`) photo b's features swapped
    with painting b's patches, else the photos' and the paintings' own features. ``step``: the
    step the next call is (the resume point on a resumed run)."""

    def __init__(self, terms: list[LossTerm], features: InverseFeatureTerm, *, patch_size: int, patch_stride: int, swap_fraction: float, step: int = 0) -> None:
        self.terms, self.features = terms, features
        self.patch_size, self.patch_stride, self.swap_fraction = patch_size, patch_stride, swap_fraction
        self.step = step

    def targets(self, net: torch.nn.Module, photos: torch.Tensor, paintings: torch.Tensor, swap: bool) -> torch.Tensor:
        """``z`` for a batch (no gradient)."""
        from ..losses.mrf import build_target
        from ..nets.swapinverse import swap_features

        size = net.padded_size(tuple(photos.shape[-2:]))  # type: ignore[operator]
        b = photos.shape[0]
        with torch.no_grad():
            f = net.encode(torch.cat([pad_to(photos, size), pad_to(paintings, size)])).float()  # type: ignore[operator]
            if not swap:
                return f
            return torch.cat([
                swap_features(f[i : i + 1], build_target(f[b + i : b + i + 1], size=self.patch_size, stride=self.patch_stride))[0]
                for i in range(b)
            ])

    def __call__(self, net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
        photos, paintings = batch
        swap = swap_step(self.step, self.swap_fraction)
        self.step += 1
        z = self.targets(net, photos, paintings, swap)
        self.features.target = z
        try:
            output = net.decode(z)  # type: ignore[operator]
            encoder = net.encoder  # type: ignore[attr-defined]
            inputs = TermInputs(image=output, encoder=encoder)
            active = [term for term in self.terms if term.active(inputs)]
            needed = list(dict.fromkeys(name for term in active for name in term.layers))
            inputs.features = encoder(output, layers=needed) if needed else {}
            zero = output.new_zeros((), dtype=torch.float32)
            values = {term.name: (term.value(inputs) if term in active else zero) for term in self.terms}
            return weighted_total(self.terms, values), values
        finally:
            self.features.target = None


def _resume_step(out: Path, resume: bool) -> int:
    """The step a resumed run continues from (its checkpoint's), 0 for a fresh run; an unreadable
    checkpoint gives 0 here and the loop's own error."""
    if not resume:
        return 0
    try:
        return int(torch.load(out / CHECKPOINT_NAME, map_location="cpu", weights_only=True, mmap=True)["step"])
    except Exception:  # noqa: BLE001 - the loop reports a missing or bad checkpoint
        return 0


def train_swapinverse(
    config: SwapInverseTrainConfig | None,
    data_dir: str | os.PathLike[str],
    style_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "model",
    *,
    callback: Callable[[Event], None] | None = None,
    resume: bool = False,
    **overrides: Any,
) -> Path:
    """Train style swap's inverse network on photos (``data_dir``) and paintings (``style_dir``);
    returns the path of ``OUT_DIR/model.pt`` (use it with ``impasto swap PHOTO PAINTING MODEL``).

    ``OUT_DIR`` receives what :func:`impasto.methods.adain_train.train_adain` writes (checkpoints,
    ``config.json``, ``log.jsonl`` with ``content``/``tv``/``total``, previews, ``model.pt``,
    whose ``net_config`` records the encoder's ``weights_id``). ``resume=True`` continues from
    ``checkpoint.pt`` bit for bit. Keyword ``overrides`` replace fields of ``config``.
    """
    config, out, photos, paintings, device, precision = start_painting_run(SwapInverseTrainConfig, config, overrides, data_dir, style_dir, out_dir, resume=resume, callback=callback)

    layer = next(iter(parse_layers(config.content_layers)))
    net_config: dict[str, Any] = {
        **dict(get_arch(config.arch).defaults), "encoder": config.encoder, "layer": layer, "weights": config.weights, "weights_id": None,
        "pooling": config.pooling, "preprocessing": config.preprocessing, "seed": 0, "patch_size": config.patch_size, "patch_stride": config.patch_stride,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = get_arch(config.arch).build(**net_config)
    check_generator(net, config.arch)
    if not all(hasattr(net, name) for name in ("encode", "decode", "swap", "trainable_parameters", "encoder", "layer")):
        raise ConfigError(f"arch {config.arch} is not a swap-inverse network; use arch swap-inverse", params="arch")
    if config.train_size < net.min_side or config.train_size < config.patch_size * net.multiple:
        raise ConfigError(f"train_size must be at least {max(net.min_side, config.patch_size * net.multiple)} px for patch_size {config.patch_size}, got {config.train_size}", params="train_size")
    if getattr(net.encoder.weights, "warning", None):
        _warn(callback, str(net.encoder.weights.warning))
    # record what the encoder resolved to (auto -> a name, the input convention), so applying
    # the model rebuilds exactly this encoder, or refuses
    resolved_weights = _resolved_weights(net.encoder, config.weights, config.preprocessing)
    net_config.update(resolved_weights)
    net.config.update(resolved_weights)
    features = InverseFeatureTerm(config.content_weight, layer)
    terms: list[LossTerm] = [features] + ([TVTerm(config.tv_weight)] if config.tv_weight > 0 else [])
    objective = SwapInverseObjective(
        terms, features, patch_size=config.patch_size, patch_stride=config.patch_stride, swap_fraction=config.swap_fraction, step=_resume_step(out, resume),
    )
    return run_on_paintings(
        net, objective, config, out=out, photos=photos, paintings=paintings, data_dir=data_dir, style_dir=style_dir,
        net_config=net_config, encoder_info=_encoder_info(net.encoder, config.encoder, config.weights), precision=precision, device=device, resume=resume, callback=callback,
    )
