"""FeatureExtractor: a frozen encoder that returns the activations of named layers."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import logging
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
from torch import nn

from ..errors import LayerError, UsageError, WeightsError
from .registry import EncoderSpec, get_encoder_spec

__all__ = ["FeatureExtractor", "build_encoder", "resolve_device", "random_init", "DEFAULT_DEVICE"]

log = logging.getLogger(__name__)

#: the one home of the compute-device default of every method and command
DEFAULT_DEVICE = "auto"


def resolve_device(device: str | torch.device = DEFAULT_DEVICE) -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a torch.device, checking it is available."""
    from ..errors import DeviceError

    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device}: CUDA is not available on this machine (use device cpu or auto)", params="device")
        return torch.device(name)
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise DeviceError(f"device {device}: Apple MPS is not available on this machine (use device cpu or auto)", params="device")
        return torch.device("mps")
    raise DeviceError(f"unknown device {device!r}; choose auto, cpu, cuda, cuda:N or mps")


def random_init(model: nn.Module, seed: int) -> None:
    """Deterministic He-normal initialisation of every conv/linear layer from ``seed``.

    The global RNG is left untouched. Batch-norm layers become identities (running mean 0,
    variance 1, scale 1, shift 0).
    """
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                std = (2.0 / fan_in) ** 0.5
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
                m.reset_running_stats()


def _aliases(names: Sequence[str]) -> dict[str, str]:
    """``layer1`` -> last stage named ``layer1.N`` (torchvision block names)."""
    out: dict[str, str] = {}
    for n in names:
        if "." in n:
            out[n.split(".", 1)[0]] = n
    return out


class FeatureExtractor(nn.Module):
    """Runs the encoder up to the deepest requested layer and returns ``{name: activation}``.

    Input: ``image`` float32 BCHW RGB in [0, 1]; preprocessing (mean/std, RGB/BGR, 0-255)
    happens inside. Parameters are frozen and the module stays in eval mode.
    """

    def __init__(
        self,
        spec: EncoderSpec,
        model: nn.Module,
        layers: Iterable[str],
        *,
        preprocessing: Any,
        weights: Any = None,
        pooling: str = "max",
        weights_id: str | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.weights = weights
        self.pooling = pooling
        self._weights_id = weights_id
        stages = spec.stages(model)
        all_names = [n for n, _ in stages]
        self.layer_names: tuple[str, ...] = tuple(all_names)
        aliases = _aliases(all_names)
        requested = list(dict.fromkeys(layers))
        if not requested:
            raise UsageError("no layers requested from the encoder")
        resolved: dict[str, str] = {}
        for name in requested:
            if name in all_names:
                resolved[name] = name
            elif name in aliases:
                resolved[name] = aliases[name]
            else:
                raise LayerError(unknown_layer_message(name, spec.name, all_names + sorted(aliases)))
        self.layers: tuple[str, ...] = tuple(requested)
        self._targets = resolved  # requested name -> stage name
        deepest = max(all_names.index(s) for s in resolved.values())
        kept = stages[: deepest + 1]
        if pooling == "avg":
            kept = [(n, _to_avg(m)) for n, m in kept]
        elif pooling != "max":
            raise UsageError(f"pooling {pooling!r}: choose max or avg", params="pooling")
        self._stage_names = [n for n, _ in kept]
        self.stages = nn.ModuleList([m for _, m in kept])
        pre = preprocessing
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.scale = float(pre.scale)
        self.bgr = pre.channel_order.upper() == "BGR"
        self.requires_grad_(False)
        self.eval()
        #: bfloat16: the stages run under autocast (features come back float32); None: float32
        self.compute_dtype: torch.dtype | None = None
        #: activations in channels-last layout: None = automatic (see ``_use_channels_last``)
        self.channels_last: bool | None = None

    @property
    def fingerprint(self) -> str:
        """A stable key for what this encoder computes: the spec, the weights (their SHA-256,
        ``random:SEED``, or a hash of the loaded tensors), pooling, preprocessing, padding,
        dtype and device. Equal fingerprints give equal features for the same input and layer,
        so caches of features or statistics can be keyed on it (never on ``id(encoder)``)."""
        from .padding import current_padding

        param = next(self.parameters(), None)
        parts = (
            self.spec.name, self.weights_id, self.pooling, tuple(self.mean.flatten().tolist()), tuple(self.std.flatten().tolist()),
            self.scale, self.bgr, current_padding(self), str(param.dtype if param is not None else None), str(self.mean.device),
        ) + ((str(self.compute_dtype),) if self.compute_dtype is not None else ())
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]

    @property
    def weights_id(self) -> str:
        """What identifies the weights: ``sha256:...`` of the checkpoint, ``random:SEED``, or (for
        an extractor built around a model directly) ``tensors:...``, a hash of the stages' tensors."""
        if self._weights_id is None:
            sha = getattr(self.weights, "sha256", None)
            if sha:
                self._weights_id = f"sha256:{sha}"
            else:
                digest = hashlib.sha256()
                for name, t in itertools.chain(self.stages.named_parameters(), self.stages.named_buffers()):
                    digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
                    digest.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
                self._weights_id = f"tensors:{digest.hexdigest()[:32]}"
        return self._weights_id

    def stage_of(self, layer: str) -> int:
        """Position of the stage that produces ``layer`` (0 = the first)."""
        if layer not in self._targets:
            raise LayerError(unknown_layer_message(layer, self.spec.name, list(self.layers)))
        return self._stage_names.index(self._targets[layer])

    def depth(self, layers: Iterable[str]) -> int:
        """Position of the deepest stage needed for ``layers`` (how far a pass must run)."""
        return max(self.stage_of(name) for name in layers)

    def iter_stages(self, image: torch.Tensor, layers: Iterable[str]) -> Iterator[tuple[str, torch.Tensor]]:
        """``(stage name, activation)`` of every stage from the first to the deepest needed for
        ``layers``, in order (memory probes, inspection)."""
        from ..precision import autocast

        last = self.depth(layers)
        x = self._input(image)  # the same layout (and so the same numbers) as forward
        for i, (stage_name, module) in enumerate(zip(self._stage_names, self.stages)):
            with autocast(x.device, self.compute_dtype):
                x = module(x)
            yield stage_name, x.float()
            if i >= last:
                break

    @property
    def min_side(self) -> int:
        """Smallest image side (px) the encoder accepts."""
        return self.spec.min_side

    def train(self, mode: bool = True) -> "FeatureExtractor":  # always eval: frozen encoder
        return super().train(False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> the encoder's input convention."""
        x = image * self.scale if self.scale != 1.0 else image
        if self.bgr:
            x = x.flip(1)
        return (x - self.mean) / self.std

    def forward(self, image: torch.Tensor, layers: Iterable[str] | None = None) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """Activations of ``layers`` (default: all requested at construction), float32 (computed in
        ``compute_dtype`` when set)."""
        from ..precision import autocast

        if image.dim() != 4 or image.shape[1] != 3:
            raise UsageError(f"encoder input must be Bx3xHxW, got {tuple(image.shape)}")
        wanted = self.layers if layers is None else tuple(layers)
        by_stage: dict[str, list[str]] = {}
        for name in wanted:
            if name not in self._targets:
                raise LayerError(unknown_layer_message(name, self.spec.name, list(self.layers)))
            by_stage.setdefault(self._targets[name], []).append(name)
        last = max(self._stage_names.index(s) for s in by_stage)
        out: dict[str, torch.Tensor] = {}
        x = self._input(image)
        kept = True  # whether the current x is one of the outputs (then it must not change in place)
        with autocast(x.device, self.compute_dtype):
            for i, (stage_name, module) in enumerate(zip(self._stage_names, self.stages)):
                if not kept and type(module) is nn.ReLU and isinstance(self.stages[i - 1], nn.Conv2d):
                    x = torch.relu_(x)  # a convolution's backward needs its input, not its output
                else:
                    x = module(x)
                names = by_stage.get(stage_name, ())
                for name in names:
                    out[name] = x
                kept = bool(names)
                if i >= last:
                    break
        return {k: v.float() for k, v in out.items()} if self.compute_dtype is not None else out

    def _input(self, image: torch.Tensor) -> torch.Tensor:
        """The preprocessed image in the layout the stages run in."""
        x = self.preprocess(image)
        return x.contiguous(memory_format=torch.channels_last) if self._use_channels_last(x) else x

    def _use_channels_last(self, x: torch.Tensor) -> bool:
        """Channels-last activations for VGG on a CPU (oneDNN's faster layout; measured at
        512x384, VGG19 to relu5_1, forward + backward on 2 cores: fp32 1.91 -> 1.48 s with reflect
        padding, 1.82 -> 1.59 s with zeros; bf16 0.97 -> 0.84 s with reflect, but 0.83 -> 1.11 s
        with zeros, so not there). ``channels_last`` set to True/False overrides."""
        if self.channels_last is not None:
            return bool(self.channels_last)
        if x.device.type != "cpu" or "vgg" not in self.spec.name:
            return False
        from .padding import current_padding

        return not (self.compute_dtype is not None and current_padding(self) == "zeros")


def unknown_layer_message(name: str, encoder: str, known: Sequence[str]) -> str:
    """The one-line error for an unknown layer, with a "did you mean"."""
    close = difflib.get_close_matches(name, list(known), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown layer {name!r} for encoder {encoder}{hint} (known layers: {', '.join(known[:12])}{', ...' if len(known) > 12 else ''})"


def _to_avg(m: nn.Module) -> nn.Module:
    if isinstance(m, nn.MaxPool2d):
        return nn.AvgPool2d(kernel_size=m.kernel_size, stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode)
    return m


def stage_keys(model: nn.Module, stages: Iterable[nn.Module]) -> set[str]:
    """The keys of ``model.state_dict()`` held by ``stages`` (the part of the network a run uses)."""
    wanted = {id(t) for m in stages for t in itertools.chain(m.parameters(), m.buffers())}
    return {k for k, t in model.state_dict(keep_vars=True).items() if id(t) in wanted}


def _load_state(model: nn.Module, state_dict: dict[str, torch.Tensor], spec: EncoderSpec, source: str, needed: set[str]) -> None:
    """Materialise the ``needed`` tensors of ``model`` (built on the meta device) from ``state_dict``.

    Only the stages a run uses are loaded; the rest of ``model`` stays on the meta device (no
    memory) and is dropped with it. Tensors are copied out of the (possibly memory-mapped) file.
    """
    own = model.state_dict(keep_vars=True)
    missing = sorted(needed - set(state_dict))
    if missing:
        raise WeightsError(
            f"{source}: does not fit encoder {spec.name} (missing {len(missing)} tensors, e.g. {missing[0]!r})"
        )
    bad = [k for k in needed if tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if bad:
        k = sorted(bad)[0]
        raise WeightsError(
            f"{source}: does not fit encoder {spec.name} ({k} has shape {tuple(state_dict[k].shape)}, expected {tuple(own[k].shape)})"
        )
    tensors = {k: state_dict[k].detach().to(dtype=own[k].dtype, copy=True).contiguous() for k in needed}
    model.load_state_dict(tensors, strict=False, assign=True)  # FeatureExtractor freezes them


def build_encoder(
    name: str = "vgg19",
    *,
    weights: str = "auto",
    layers: Iterable[str] | None = None,
    pooling: str = "max",
    device: str | torch.device = "cpu",
    seed: int = 0,
    download: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
    preprocessing: str | None = None,
) -> FeatureExtractor:
    """Build a frozen feature extractor.

    ``weights``: ``auto`` (pretrained if cached or downloadable, else deterministic random weights
    with a warning), ``random``, a registry name such as ``vgg19.torchvision`` (demanded), or a
    checkpoint file. ``seed`` only affects random weights. ``layers`` default to the encoder's
    content and style presets. ``preprocessing``: ``None``/``auto`` (from the checkpoint's
    record), ``caffe`` or ``torchvision``; a checkpoint file matching no record needs one.

    With a checkpoint, only the layers up to the deepest one requested are built and loaded (the
    network is first laid out on the meta device, which costs no memory), only their tensors are
    read from the file, and the state dict is not kept: ``extractor.weights.state_dict`` is None.
    """
    from ..weights.registry import IMAGENET
    from ..weights.resolve import resolve_weights

    spec = get_encoder_spec(name)
    if layers is None:
        layers = list(spec.default_content_layers) + list(spec.default_style_layers)
    layers = list(layers)
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        skeleton = spec.build()
    # validates the layers and pooling before any file is hashed, and says which stages are used
    probe = FeatureExtractor(spec, skeleton, layers, preprocessing=IMAGENET, pooling=pooling)
    needed = stage_keys(skeleton, probe.stages)
    del probe
    resolved = resolve_weights(
        weights, spec.weights_arch, download=download, progress=progress, preprocessing=preprocessing, keys=needed
    )
    if resolved.warning:
        log.warning(resolved.warning)
    if resolved.state_dict is not None:
        model = skeleton
        _load_state(model, resolved.state_dict, spec, resolved.name, needed)
    else:
        with torch.random.fork_rng(devices=[]):  # constructors' default init must not move the user's RNG
            model = spec.build()
        random_init(model, seed)
    info = dataclasses.replace(resolved, state_dict=None)  # the encoder keeps provenance, not tensors
    del resolved
    weights_id = f"sha256:{info.sha256}" if info.sha256 else (f"random:{int(seed)}" if info.kind == "random" else None)
    extractor = FeatureExtractor(spec, model, layers, preprocessing=info.preprocessing, weights=info, pooling=pooling, weights_id=weights_id)
    return extractor.to(resolve_device(device))
