"""Training an AdaIN decoder (Huang & Belongie 2017): the recipe over :func:`impasto.optim.train_loop.train_loop`.

Each step takes a batch of photos and a batch of paintings (sample b of one with sample b of the
other), encodes both with the network's own frozen encoder, computes the AdaIN target
``t = AdaIN(f(photo), f(painting))`` and decodes it. The loss (paper eq. 8-11) is

- content: the mean squared error between the encoder's features of the output at the AdaIN
  layer and ``t``;
- style: over the style layers, the mean squared error between the channel means of the
  output's and the painting's features plus the same for the standard deviations, per sample
  (the authors' code; the paper writes it as L2 norms).

Only the decoder is trained (``params=net.trainable_parameters()``). Photos and paintings come
from two :class:`~impasto.data.folder.PhotoFolder` streams (recursive, mixed formats, unreadable
files skipped) with independent seeded orders; the data of a step is a pure function of the
step, so a resumed run is bit-identical to an uninterrupted one. The run folder holds the same
files as :func:`impasto.methods.ff_train.train`'s: ``checkpoint.pt``, ``config.json``,
``log.jsonl``, ``previews/step_N/`` and finally ``model.pt``, whose ``net_config`` records the
encoder's ``weights_id`` (an AdaIN model only works with the encoder weights it was trained on).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from ..config import check_rules, config_from_mapping, config_to_dict
from ..errors import ConfigError, ImageError, UsageError
from ..losses.terms import LossTerm, TermInputs, TVTerm, weighted_total
from ..nets.protocol import check_generator, pad_to
from ..nets.registry import ARCHS, get_arch
from ..progress import Event, MessageEvent, SnapshotEvent, emit
from ..provenance import versions, write_json
from .ff_model import CONFIG_NAME, MODEL_NAME, PREVIEW_DIR, model_payload, save_model
from .ff_train import TrainConfig, _h, _layers_arg, _warn, check_run_folder, check_same_settings, loop_options, parse_layers, training_device

__all__ = ["AdaINTrainConfig", "AdaINObjective", "AdaINContentTerm", "AdaINStyleTerm", "paired_stream", "preview_writer", "train_adain"]


@dataclass(frozen=True)
class AdaINTrainConfig(TrainConfig):
    """Every knob of AdaIN decoder training. Defaults follow Huang & Belongie (2017); the fields not
    redeclared here mean what they mean in :class:`~impasto.methods.ff_train.TrainConfig`
    (``style_edge`` is unused: paintings are cropped to ``train_size`` like the photos)."""

    PRECISION_KEY = "train-adain"

    arch: str = field(default="adain", metadata=_h("generator: " + "; ".join(f"{k}: {v}" for k, v in ARCHS.items()), choices=tuple(ARCHS)))
    encoder: str = field(default="vgg19", metadata=_h("encoder (frozen; the decoder learns to invert it): vgg19 (Huang & Belongie), vgg16, tiny_vgg"))
    content_layers: str = field(default="relu4_1", metadata=_h("the AdaIN layer: where the style's statistics are applied, what the decoder inverts and where the content loss compares (one layer)", metavar="LAYER", parse=_layers_arg))
    style_layers: str = field(default="relu1_1,relu2_1,relu3_1,relu4_1", metadata=_h("style layers, NAME[:WEIGHT],... (channel mean and std matched; at most as deep as the AdaIN layer)", metavar="LAYERS", parse=_layers_arg))
    style_loss: str = field(default="mean_std", metadata=_h("style statistic (AdaIN matches channel means and standard deviations)", choices=("mean_std",)))
    tv_weight: float = field(default=0.0, metadata=_h("weight of the total-variation smoothness loss"))
    batch_size: int = field(default=8, metadata=_h("photo/painting pairs per step"))
    steps: int = field(default=160000, metadata=_h("training steps (Huang & Belongie: 160000 with batches of 8)", short="-n"))
    lr: float = field(default=1e-4, metadata=_h("Adam learning rate"))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_rules([
            (self.style_loss == "mean_std", "style_loss", f"style_loss must be mean_std for AdaIN training, got {self.style_loss!r}"),
            (not self.texture, "texture", "AdaIN training stylises photos: texture must be off"),
            (len(parse_layers(self.content_layers)) == 1, "content_layers", f"content_layers must name exactly one layer (the AdaIN layer), got {self.content_layers!r}"),
        ])


class AdaINContentTerm(LossTerm):
    """Mean squared error between the output's features at the AdaIN layer and the AdaIN target
    ``t`` (set by the objective each step)."""

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
        return torch.nn.functional.mse_loss(inputs.features[self.layer].float(), self.target.float())


class AdaINStyleTerm(LossTerm):
    """Sum over the style layers (times their weights) of the mean squared errors of the
    per-sample channel means and standard deviations (targets set by the objective each step)."""

    name = "style"
    tiling = None
    params = ("style_weight", "style_layers")

    def __init__(self, weight: float, layers: Mapping[str, float]) -> None:
        super().__init__(weight)
        self.layer_weights = dict(layers)
        self.targets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.layer_weights)

    def active(self, inputs: TermInputs) -> bool:
        return self.weight > 0 and self.targets is not None

    def value(self, inputs: TermInputs) -> torch.Tensor:
        from ..nets.adain import feature_stats

        assert self.targets is not None
        total = inputs.image.new_zeros((), dtype=torch.float32)
        for layer, w in self.layer_weights.items():
            mean, std = feature_stats(inputs.features[layer].float())
            t_mean, t_std = self.targets[layer]
            total = total + w * (torch.nn.functional.mse_loss(mean, t_mean) + torch.nn.functional.mse_loss(std, t_std))
        return total


class AdaINObjective:
    """One step's loss for a (photos, paintings) batch: the decoder's output of the AdaIN target
    against that target (content) and the paintings' feature statistics (style)."""

    def __init__(self, terms: list[LossTerm], content: AdaINContentTerm, style: AdaINStyleTerm) -> None:
        self.terms, self.content, self.style = terms, content, style

    def __call__(self, net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, Mapping[str, torch.Tensor]]:
        from ..nets.adain import feature_stats

        photos, paintings = batch
        size = net.padded_size(tuple(photos.shape[-2:]))  # type: ignore[operator]
        photos, paintings = pad_to(photos, size), pad_to(paintings, net.padded_size(tuple(paintings.shape[-2:])))  # type: ignore[operator]
        layer = net.layer  # type: ignore[attr-defined]
        style_layers = list(dict.fromkeys([*self.style.layers, layer]))
        encoder = net.encoder  # type: ignore[attr-defined]
        with torch.no_grad():
            f_c = net.encode(photos)  # type: ignore[operator]
            f_s = encoder(paintings, layers=style_layers)
            t = net.adain_features(f_c, net.style_from_features(f_s[layer]))  # type: ignore[operator]
            self.style.targets = {name: feature_stats(f_s[name].float()) for name in self.style.layers}
            self.content.target = t
        try:
            output = net.decode(t)  # type: ignore[operator]
            inputs = TermInputs(image=output, encoder=encoder)
            active = [term for term in self.terms if term.active(inputs)]
            needed = list(dict.fromkeys(name for term in active for name in term.layers))
            inputs.features = encoder(output, layers=needed) if needed else {}
            zero = output.new_zeros((), dtype=torch.float32)
            values = {term.name: (term.value(inputs) if term in active else zero) for term in self.terms}
            return weighted_total(self.terms, values), values
        finally:
            self.content.target, self.style.targets = None, None


def _listing_digest(folder: Any) -> str:
    """A digest of a folder's usable files (their relative paths and sizes)."""
    digest = hashlib.sha256()
    for p in folder.files:
        digest.update(f"{p.relative_to(folder.root).as_posix()}:{p.stat().st_size}\n".encode())
    return digest.hexdigest()[:32]


def paired_stream(
    config: TrainConfig, photos: Any, paintings: Any, *, device: torch.device, memory_format: torch.memory_format,
    failed_seen: dict[str, set[int]], callback: Callable[[Event], None] | None = None,
) -> Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """``data(start)`` for the loop: (photos, paintings) batches from step ``start`` on, each
    folder in its own seeded order (a pure function of the step); unreadable files are reported
    once and recorded in ``failed_seen`` (``"photos"``/``"paintings"`` -> indices)."""
    from ..data.folder import default_workers, make_loader

    def pairs(start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        workers = default_workers() if config.workers < 0 else config.workers
        pin = device.type == "cuda"
        # both iterators are made now, in this order: each draws its base seed from the global random state
        streams = [
            ("photos", photos, iter(make_loader(photos, config.batch_size, seed=config.seed, start=start * config.batch_size, workers=workers, pin_memory=pin))),
            ("paintings", paintings, iter(make_loader(paintings, config.batch_size, seed=config.seed + 1, start=start * config.batch_size, workers=workers, pin_memory=pin))),
        ]

        def stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            while True:
                batch = []
                for kind, folder, it in streams:
                    try:
                        images, failed = next(it)
                    except StopIteration:
                        return
                    for i in [i for i in failed if i not in failed_seen[kind]]:
                        failed_seen[kind].add(i)
                        _warn(callback, f"skipped unreadable {'photo' if kind == 'photos' else 'painting'} {folder.files[i]}")
                    batch.append(images.to(device=device, memory_format=memory_format, non_blocking=True))
                yield batch[0], batch[1]

        return stream()

    return pairs


def preview_writer(
    net: torch.nn.Module, out: Path, photos: Any, paintings: Any, count: int, *, device: torch.device,
    memory_format: torch.memory_format, callback: Callable[[Event], None] | None = None,
) -> Callable[[int], None]:
    """``preview(step)`` for the loop: the first ``count`` photos, photo i with painting i (cycled),
    through ``net.prepare_style`` and ``net.generate`` into ``out/previews/step_N/NN.png``."""
    from ..image.io import save_image

    def first(folder: Any) -> list[tuple[str, torch.Tensor]]:
        found: list[tuple[str, torch.Tensor]] = []
        for i in range(len(folder)):
            if len(found) >= count:
                break
            try:
                found.append((folder.files[i].name, folder.load(i, crop="center")))
            except (ImageError, OSError, ValueError):
                continue
        return found

    shown_photos, shown_paintings = (first(photos), first(paintings)) if count else ([], [])

    def write(step: int) -> None:
        if not shown_photos or not shown_paintings:
            return
        folder_out = out / PREVIEW_DIR / f"step_{step:06d}"
        folder_out.mkdir(parents=True, exist_ok=True)
        was_training = net.training
        net.eval()
        shown = None
        with torch.no_grad():
            for i, (_, photo) in enumerate(shown_photos):
                name, painting = shown_paintings[i % len(shown_paintings)]
                style = net.prepare_style([painting[None]])  # type: ignore[operator]
                y = net.generate(photo[None].to(device=device, memory_format=memory_format), style=style).float().cpu().contiguous()  # type: ignore[operator]
                save_image(folder_out / f"{i:02d}.png", y, metadata={"step": step, "style": name})
                shown = y if shown is None else shown
        net.train(was_training)
        if shown is not None:
            emit(callback, SnapshotEvent(step=step, image=shown))

    return write


def train_adain(
    config: AdaINTrainConfig | None,
    data_dir: str | os.PathLike[str],
    style_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "model",
    *,
    callback: Callable[[Event], None] | None = None,
    resume: bool = False,
    **overrides: Any,
) -> Path:
    """Train an AdaIN decoder on photos (``data_dir``) and paintings (``style_dir``); returns the
    path of ``OUT_DIR/model.pt``.

    ``OUT_DIR`` receives what :func:`impasto.methods.ff_train.train` writes (checkpoints,
    ``config.json``, ``log.jsonl`` with ``content``/``style``/``total``, previews of the first
    ``preview_count`` photos each with one of the first paintings, ``model.pt``). ``resume=True``
    continues from ``checkpoint.pt`` bit for bit. Keyword ``overrides`` replace fields of ``config``.
    """
    config, out, photos, paintings, device, precision = start_painting_run(AdaINTrainConfig, config, overrides, data_dir, style_dir, out_dir, resume=resume, callback=callback)

    # ---- device, network, loss ------------------------------------------------------------
    layer = next(iter(parse_layers(config.content_layers)))
    style_layers = parse_layers(config.style_layers)
    net_config: dict[str, Any] = {
        "encoder": config.encoder, "layer": layer, "weights": config.weights, "weights_id": None,
        "pooling": config.pooling, "preprocessing": config.preprocessing, "seed": 0,
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = get_arch(config.arch).build(**net_config)
    check_generator(net, config.arch)
    if not all(hasattr(net, name) for name in ("style_code", "style_from_features", "trainable_parameters", "encoder")):
        raise ConfigError(f"arch {config.arch} is not an arbitrary-style (AdaIN) network; use arch adain", params="arch")
    encoder = net.encoder
    precision.prepare_encoder(encoder)  # the frozen encoder is also the loss network
    deeper = [name for name in style_layers if name not in encoder.layers]
    if deeper:
        raise ConfigError(f"style_layers {', '.join(deeper)}: not a layer of {config.encoder} up to the AdaIN layer {layer}", params="style_layers")
    if getattr(encoder.weights, "warning", None):
        _warn(callback, str(encoder.weights.warning))
    # record what the encoder resolved to (auto -> a name, the input convention), so applying
    # the model rebuilds exactly this encoder, or refuses
    from ..weights.registry import CAFFE

    resolved_weights = {
        "weights_id": encoder.weights_id,
        "weights": str(getattr(encoder.weights, "name", None) or config.weights) if config.weights == "auto" else config.weights,
        "preprocessing": "caffe" if getattr(encoder.weights, "preprocessing", None) == CAFFE else "torchvision",
    }
    net_config.update(resolved_weights)
    net.config.update(resolved_weights)
    encoder_info = {
        "name": config.encoder, "weights": getattr(encoder.weights, "name", config.weights), "kind": getattr(encoder.weights, "kind", None),
        "sha256": getattr(encoder.weights, "sha256", None), "weights_id": encoder.weights_id,
    }
    content_term = AdaINContentTerm(config.content_weight, layer)
    style_term = AdaINStyleTerm(config.style_weight, style_layers)
    terms: list[LossTerm] = [content_term, style_term] + ([TVTerm(config.tv_weight)] if config.tv_weight > 0 else [])
    objective = AdaINObjective(terms, content_term, style_term)
    return run_on_paintings(
        net, objective, config, out=out, photos=photos, paintings=paintings, data_dir=data_dir, style_dir=style_dir,
        net_config=net_config, encoder_info=encoder_info, precision=precision, device=device, resume=resume, callback=callback,
    )


def run_on_paintings(
    net: torch.nn.Module,
    objective: Any,
    config: TrainConfig,
    *,
    out: Path,
    photos: Any,
    paintings: Any,
    data_dir: str | os.PathLike[str],
    style_dir: str | os.PathLike[str],
    net_config: dict[str, Any],
    encoder_info: Mapping[str, Any],
    precision: Any,
    device: torch.device,
    resume: bool,
    callback: Callable[[Event], None] | None,
) -> Path:
    """What every recipe that learns any style from photos + paintings shares once its network
    and objective exist: the run folder (config.json, log, previews, checkpoints with the folder
    listings and skipped files, resume checks), the paired data stream, the generic loop over
    ``net.trainable_parameters()``, and the model file. Returns OUT_DIR/model.pt."""
    from ..optim.train_loop import LoopHooks, train_loop

    memory_format = precision.memory_format
    digests = {"photos": _listing_digest(photos), "paintings": _listing_digest(paintings)}
    styles_info = {"folder": str(Path(style_dir).resolve()), "count": len(paintings), "listing": digests["paintings"]}
    resolved = {
        "config": config_to_dict(config),
        "style": {"name": "arbitrary", "paintings": styles_info},
        "data": str(Path(data_dir).resolve()),
        "style_data": styles_info["folder"],
        "net": {"arch": config.arch, "config": net_config},
        "encoder": encoder_info,
        "device": str(device),
        "amp": precision.amp_name,
        "loss_network_precision": precision.loss_network,
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }

    failed_seen: dict[str, set[int]] = {"photos": set(), "paintings": set()}
    count = config.preview_count if config.preview_every else 0

    def check_resume(ckpt: Mapping[str, Any]) -> None:
        check_same_settings(ckpt, config, out)
        if ckpt.get("net_config", {}).get("weights_id") not in (None, net_config["weights_id"]):
            raise ConfigError(f"{out}: the checkpoint was trained against encoder weights {ckpt['net_config']['weights_id']}, these are {net_config['weights_id']}; give the same weights", params="weights")
        changed = [kind for kind, value in digests.items() if ckpt.get("listings", {}).get(kind) not in (None, value)]
        if changed:
            _warn(callback, f"the {' and '.join(changed)} folder changed since the checkpoint; the data order differs from an uninterrupted run")

    def restore_failed(ckpt: Mapping[str, Any]) -> None:
        for kind, seen in failed_seen.items():
            seen.update(int(i) for i in ckpt.get("failed", {}).get(kind, []))

    hooks = LoopHooks(
        check_resume=check_resume,
        checkpoint_extra=lambda: {
            "train_config": config_to_dict(config),
            "net_config": net_config,
            "style_name": "arbitrary",
            "style_sha256": None,
            "listings": dict(digests),
            "failed": {kind: sorted(s) for kind, s in failed_seen.items()},
        },
        restore_extra=restore_failed,
        saved=lambda step: write_json(out / CONFIG_NAME, {**resolved, "step": step}, sort_keys=True),
        preview=preview_writer(net, out, photos, paintings, count, device=device, memory_format=memory_format, callback=callback),
        log_extra=lambda: {"skipped": photos.scan_skipped + paintings.scan_skipped + sum(len(s) for s in failed_seen.values())},
    )
    train_loop(
        net,
        objective,
        loop_options(config),
        precision=precision,
        run_dir=out,
        data=paired_stream(config, photos, paintings, device=device, memory_format=memory_format, failed_seen=failed_seen, callback=callback),
        params=net.trainable_parameters(),
        resume=resume,
        hooks=hooks,
        callback=callback,
        description=f"training {config.arch}",
        resume_how=f"--resume -o {out}",
    )
    net.eval()
    payload = model_payload(net, config.arch, net_config, config, {"name": "arbitrary", "sha256": None}, config.steps, encoder_info)
    payload["paintings"] = styles_info
    model_path = save_model(out / MODEL_NAME, payload)
    emit(callback, MessageEvent(f"wrote {model_path} ({config.steps} steps)"))
    return model_path


def start_painting_run(
    cls: type, config: Any, overrides: Mapping[str, Any], data_dir: Any, style_dir: Any, out_dir: Any, *, resume: bool, callback: Callable[[Event], None] | None,
) -> tuple[Any, Path, Any, Any, torch.device, Any]:
    """The checks and setup every recipe on photos + paintings starts with: ``config`` as a
    ``cls`` (with ``overrides``), the run folder (fresh or resumable), the two photo folders
    (unreadable files reported), the device and precision. Returns (config, out, photos,
    paintings, device, precision)."""
    from ..data.folder import PhotoFolder

    name = cls.__name__
    config = config or cls()
    if not isinstance(config, cls):
        raise UsageError(f"config must be {'an' if name[0] in 'AEIOU' else 'a'} {name} (its defaults are the paper's), got {type(config).__name__}", params="config")
    if overrides:
        config = config_from_mapping(cls, {**config_to_dict(config), **overrides})
    out = check_run_folder(out_dir, resume=resume)
    if data_dir is None or style_dir is None:
        raise UsageError("give a folder of photos (data_dir) and a folder of paintings (style_dir)", params=("data_dir", "style_dir"))
    photos = PhotoFolder(data_dir, config.train_size, crop="random", seed=config.seed)
    paintings = PhotoFolder(style_dir, config.train_size, crop="random", seed=config.seed + 1)
    for folder, root in ((photos, data_dir), (paintings, style_dir)):
        if folder.skipped:
            _warn(callback, f"{root}: skipped {folder.skipped} unreadable file(s) (e.g. {folder.skipped_files[0].name})")
    out.mkdir(parents=True, exist_ok=True)
    device, precision = training_device(config, callback)
    return config, out, photos, paintings, device, precision
