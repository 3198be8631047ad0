"""Training a style-prediction network (Ghiasi et al. 2017): the recipe over :func:`impasto.optim.train_loop.train_loop`.

Each step takes a batch of photos and a batch of paintings (sample b of one with sample b of the
other). The predictor embeds each painting (frozen encoder, spatial mean, trained bottleneck),
the heads turn each embedding into the γ/β of the transformer's norms, and the transformer
stylises photo b with painting b's γ/β. The loss is the Johnson et al. perceptual loss on a
VGG16 loss network, as in the authors' code (Magenta's ``arbitrary_image_stylization``):

- content at relu3_3 (their ``vgg_16/conv3``) against the photo;
- style: Gram matrices at relu1_2, relu2_2, relu3_3 and relu4_3 (``conv1``..``conv4``, equal
  weights), **per sample** against painting b's own Gram matrices (:class:`PerSampleGramTerm`);
- total variation.

The terms are impasto's normalised ones (:mod:`impasto.losses`: each layer's error divided by its
target's energy, layer weights summing to 1), so ``content_weight``/``style_weight`` mean what
they mean for the one-style recipe; Magenta's raw weights (1 and 0.5e-3 per layer, TV 1e4) do
not carry over and are not copied. Everything but the predictor's encoder is trained (transformer,
bottleneck, heads). The predictor's encoder is the paper's Inception-v3 (``Mixed_6e``) by default;
when it is the loss network itself (``predictor_encoder="vgg16", predictor_layer="relu4_3"``, or
empty) one encoder is built and one pass over the paintings gives both their style targets and
their embeddings.

Photos and paintings come from two :class:`~impasto.data.folder.PhotoFolder` streams with
independent seeded orders, as for AdaIN (:mod:`.adain_train`): the run folder holds the same
files (``checkpoint.pt``, ``config.json`` with ``data``/``style_data``, ``log.jsonl``,
``previews/step_N/``, ``model.pt``) and a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..config import check_rules
from ..errors import ConfigError
from ..losses.modules import normalise_layer_weights
from ..losses.statistics import Stats, get_statistic
from ..losses.terms import ContentTerm, LossTerm, TermInputs, TVTerm, weighted_total
from ..nets.registry import ARCHS, get_arch
from ..progress import Event
from .adain_train import run_on_paintings, start_painting_run
from .ff_train import TrainConfig, _h, _layers_arg, _warn, parse_layers

__all__ = ["StylePredictTrainConfig", "PerSampleGramTerm", "StylePredictObjective", "train_stylepredict"]


@dataclass(frozen=True)
class StylePredictTrainConfig(TrainConfig):
    """Every knob of style-prediction training. Defaults follow Ghiasi et al. (2017) and their code
    where impasto's normalised losses allow; the fields not redeclared here mean what they mean
    in :class:`~impasto.methods.ff_train.TrainConfig` (``style_edge`` is unused: paintings are
    cropped to ``train_size`` like the photos)."""

    PRECISION_KEY = "train-stylepredict"

    arch: str = field(default="stylepredict", metadata=_h("generator: " + "; ".join(f"{k}: {v}" for k, v in ARCHS.items()), choices=tuple(ARCHS)))
    encoder: str = field(default="vgg16", metadata=_h("loss network (Ghiasi et al.: vgg16)"))
    predictor_encoder: str = field(default="inception_v3", metadata=_h("the style predictor's frozen encoder (Ghiasi et al.: inception_v3 to Mixed_6e); empty or the loss network's name: share the loss network (one encoder, one pass over the paintings)", metavar="ENCODER"))
    predictor_layer: str = field(default="Mixed_6e", metadata=_h("the predictor encoder's layer whose spatial mean is embedded (e.g. relu4_3 for vgg16)", metavar="LAYER"))
    predictor_weights: str = field(default="", metadata=_h("the predictor encoder's weights (auto, random, a name or a .pth file); empty: the same as weights", metavar="auto|random|NAME|FILE"))
    content_layers: str = field(default="relu3_3", metadata=_h("content layers, NAME[:WEIGHT],... (Ghiasi et al.: relu3_3)", metavar="LAYERS", parse=_layers_arg))
    style_layers: str = field(default="relu1_2,relu2_2,relu3_3,relu4_3", metadata=_h("style layers, NAME[:WEIGHT],... (Ghiasi et al.: relu1_2..relu4_3, equal weights), each painting against its own photo", metavar="LAYERS", parse=_layers_arg))
    style_loss: str = field(default="gram", metadata=_h("style statistic (per-sample Gram matrices)", choices=("gram",)))
    batch_size: int = field(default=8, metadata=_h("photo/painting pairs per step (Ghiasi et al.: 8)"))
    steps: int = field(default=160000, metadata=_h("training steps (Ghiasi et al.: 4M; 160000 is the AdaIN recipe's budget, about a day on one GPU)", short="-n"))
    lr: float = field(default=1e-3, metadata=_h("Adam learning rate"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rules([
            (self.style_loss == "gram", "style_loss", f"style_loss must be gram for stylepredict training, got {self.style_loss!r}"),
            (not self.texture, "texture", "stylepredict training stylises photos: texture must be off"),
            (bool(self.predictor_layer.strip()) and "," not in self.predictor_layer, "predictor_layer", f"predictor_layer must name one layer, got {self.predictor_layer!r}"),
        ])


class PerSampleGramTerm(LossTerm):
    """Gram-matrix style distance of each output sample to its own painting's (targets set by the
    objective each step); the layer weights are normalised and each distance is divided by its
    target's energy, exactly as in :class:`~impasto.losses.terms.StyleTerm`."""

    name = "style"
    tiling = None
    params = ("style_weight", "style_layers")

    def __init__(self, weight: float, layers: Mapping[str, float]) -> None:
        super().__init__(weight)
        self.layer_weights = normalise_layer_weights(layers)
        self.statistic = get_statistic("gram")
        self.targets: dict[str, Stats] | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.layer_weights)

    def stats(self, features: torch.Tensor) -> Stats:
        """Per-sample Gram statistics of BCHW features."""
        return self.statistic.finalize(self.statistic.accumulate(features.float()))

    @torch.no_grad()
    def set_targets(self, features: Mapping[str, torch.Tensor]) -> None:
        """The paintings' per-sample targets from their features at the style layers."""
        self.targets = {layer: self.stats(features[layer]) for layer in self.layer_weights}

    def active(self, inputs: TermInputs) -> bool:
        return self.weight > 0 and self.targets is not None

    def value(self, inputs: TermInputs) -> torch.Tensor:
        assert self.targets is not None
        total = inputs.image.new_zeros((), dtype=torch.float32)
        for layer, w in self.layer_weights.items():
            if w > 0:
                total = total + w * self.statistic.distance(self.stats(inputs.features[layer]), self.targets[layer])
        return total


class StylePredictObjective:
    """One step's loss for a (photos, paintings) batch: photo b stylised with painting b's
    predicted γ/β against photo b (content) and painting b (style). ``shared``: the predictor
    reads its layer from the loss network's pass over the paintings."""

    def __init__(self, terms: list[LossTerm], style: PerSampleGramTerm, encoder: torch.nn.Module, *, shared: bool) -> None:
        self.terms, self.style, self.encoder, self.shared = terms, style, encoder, shared

    def __call__(self, net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
        from ..nets.stylepredict import StyleEmbedding

        photos, paintings = batch
        layer = net.layer  # type: ignore[attr-defined]
        try:
            with torch.no_grad():
                wanted = list(dict.fromkeys([*self.style.layers, *([layer] if self.shared else [])]))
                f_s = self.encoder(paintings, layers=wanted)
                self.style.set_targets(f_s)
            embedding = net.embed_features(f_s[layer].float()) if self.shared else net.embed(paintings)  # type: ignore[operator]
            output = net.generate(photos, style=StyleEmbedding(embedding))  # type: ignore[operator]
            inputs = TermInputs(image=output, encoder=self.encoder, content=photos)
            active = [term for term in self.terms if term.active(inputs)]
            needed = list(dict.fromkeys(name for term in active for name in term.layers))
            inputs.features = self.encoder(output, layers=needed) if needed else {}
            zero = output.new_zeros((), dtype=torch.float32)
            values = {term.name: (term.value(inputs) if term in active else zero) for term in self.terms}
            return weighted_total(self.terms, values), values
        finally:
            self.style.targets = None


def _resolved_weights(encoder: Any, weights: str, preprocessing: str) -> dict[str, Any]:
    """What an encoder's weights resolved to (auto -> a name, the input convention by name where
    one fits, else as given), so applying the model rebuilds exactly this encoder, or refuses."""
    from ..weights.registry import PREPROCESSING_NAMES, preprocessing_named

    used = getattr(encoder.weights, "preprocessing", None)
    named = [n for n in PREPROCESSING_NAMES if preprocessing_named(n, encoder.spec.weights_arch) == used]
    return {
        "weights_id": encoder.weights_id,
        "weights": str(getattr(encoder.weights, "name", None) or weights) if weights == "auto" else weights,
        "preprocessing": named[0] if named else preprocessing,
    }


def _encoder_info(encoder: Any, name: str, weights: str) -> dict[str, Any]:
    return {
        "name": name, "weights": getattr(encoder.weights, "name", weights), "kind": getattr(encoder.weights, "kind", None),
        "sha256": getattr(encoder.weights, "sha256", None), "weights_id": encoder.weights_id,
    }


def train_stylepredict(
    config: StylePredictTrainConfig | None,
    data_dir: str | os.PathLike[str],
    style_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "model",
    *,
    callback: Callable[[Event], None] | None = None,
    resume: bool = False,
    **overrides: Any,
) -> Path:
    """Train a style-prediction network on photos (``data_dir``) and paintings (``style_dir``);
    returns the path of ``OUT_DIR/model.pt``.

    ``OUT_DIR`` receives what :func:`impasto.methods.adain_train.train_adain` writes (checkpoints,
    ``config.json``, ``log.jsonl`` with ``content``/``style``/``tv``/``total``, previews of the
    first ``preview_count`` photos each with one of the first paintings, ``model.pt``, whose
    ``net_config`` records the predictor encoder's ``weights_id``). ``resume=True`` continues
    from ``checkpoint.pt`` bit for bit. Keyword ``overrides`` replace fields of ``config``.
    """
    from ..features import build_encoder, get_encoder_spec

    config, out, photos, paintings, device, precision = start_painting_run(StylePredictTrainConfig, config, overrides, data_dir, style_dir, out_dir, resume=resume, callback=callback)

    # ---- device, loss network, network -----------------------------------------------------
    content_layers, style_layers = parse_layers(config.content_layers), parse_layers(config.style_layers)
    loss_layers = list(dict.fromkeys([*content_layers, *style_layers]))
    p_encoder = config.predictor_encoder or config.encoder
    p_weights = config.predictor_weights or config.weights
    p_layer = config.predictor_layer.strip()
    shared = p_encoder == config.encoder and p_weights == config.weights
    side = get_encoder_spec(p_encoder).min_side
    if config.train_size < side:
        raise ConfigError(f"train_size must be at least {side} px for predictor_encoder {p_encoder} (paintings are cropped to train_size), got {config.train_size}", params=("train_size", "predictor_encoder"))
    net_config: dict[str, Any] = {
        **dict(get_arch(config.arch).defaults), "encoder": p_encoder, "layer": p_layer, "weights": p_weights, "weights_id": None,
        "pooling": config.pooling, "preprocessing": config.preprocessing, "seed": 0,
    }
    encoder = build_encoder(config.encoder, weights=config.weights, layers=[*loss_layers, *([p_layer] if shared else [])], pooling=config.pooling, preprocessing=config.preprocessing)
    precision.prepare_encoder(encoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = get_arch(config.arch).build(**net_config, **({"encoder_module": encoder} if shared else {}))
    if not all(hasattr(net, name) for name in ("embed", "embed_features", "trainable_parameters", "encoder", "layer")):
        raise ConfigError(f"arch {config.arch} is not a style-prediction network; use arch stylepredict", params="arch")
    net.to(device)
    encoder.to(device)
    for e in dict.fromkeys([encoder, net.encoder]):
        if getattr(e.weights, "warning", None):
            _warn(callback, str(e.weights.warning))
    resolved_weights = _resolved_weights(net.encoder, p_weights, config.preprocessing)
    net_config.update(resolved_weights)
    net.config.update(resolved_weights)
    encoder_info = {**_encoder_info(encoder, config.encoder, config.weights), "predictor": {**_encoder_info(net.encoder, p_encoder, p_weights), "layer": p_layer, "shared": shared}}
    style_term = PerSampleGramTerm(config.style_weight, style_layers)
    terms: list[LossTerm] = [ContentTerm(normalise_layer_weights(content_layers), config.content_weight), style_term, TVTerm(config.tv_weight)]
    objective = StylePredictObjective(terms, style_term, encoder, shared=shared)
    return run_on_paintings(
        net, objective, config, out=out, photos=photos, paintings=paintings, data_dir=data_dir, style_dir=style_dir,
        net_config=net_config, encoder_info=encoder_info, precision=precision, device=device, resume=resume, callback=callback,
    )
