"""Running a feed-forward model whole or tile by tile, with PyTorch or ONNX Runtime.

Tiled application equals the whole-image result (up to float rounding) with either engine: the
instance-norm statistics of the whole image are computed exactly in streaming passes over the
tiles (see :mod:`impasto.nets.streaming`), then every tile runs with those statistics frozen and
contributes its core (the part no other tile owns; tiles extend the network's receptive radius
beyond it). Memory stays that of one tile; the time is a few whole-image passes (one per level
of norms, each stopping at that level).

ONNX Runtime runs the same algorithm on the exported graph: each InstanceNormalization node is
rewritten into ``x * scale + shift`` with ``scale`` and ``shift`` as graph inputs (computed here
from the streamed statistics), the norms' inputs become graph outputs, and each pass runs the
sub-graph that ends at that pass's norms. Any ONNX file impasto exported works, old ones too.

``stats_edge > 0`` (torch only) keeps the older, approximate and faster mode: statistics from one
pass over a copy downscaled to ``stats_edge`` px, feathered tiles.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch

from ..errors import ConfigError, ModelFileError, UsageError
from ..nets.johnson import ResidualBlock
from ..nets.protocol import pad_to
from ..nets.streaming import NormStreamer, Sums, core_sums, finish_moments, receptive_radius
from ..precision import residual_precision, resolve_precision

if TYPE_CHECKING:
    from .ff_apply import ApplyConfig
    from .ff_model import LoadedModel

__all__ = ["TorchRunner", "OnnxRunner", "auto_tile", "stylise_tensor", "plan_cores", "cells"]

Box = tuple[int, int, int, int]  # y0, y1, x0, x1


def cells(net: torch.nn.Module) -> int:
    """Tile origins must be multiples of this for tiles to reproduce the whole-image result
    (the network's ``multiple``)."""
    return int(net.multiple)  # type: ignore[arg-type]


def auto_tile(size: tuple[int, int], max_tile: int, overlap: int, cell: int, *, whole_pixels: int | None = None) -> int:
    """Tile side for automatic tiling, 0 for none.

    No tiling when the image has at most ``whole_pixels`` pixels (or, if that is None, when it
    fits in ``max_tile``); otherwise the smallest side (a multiple of ``cell``, at most
    ``max_tile``) that covers the image with as few tiles per side as possible.
    """
    h, w = size
    longest = max(size)
    if (whole_pixels is None and longest <= max_tile) or (whole_pixels is not None and h * w <= whole_pixels):
        return 0
    if longest <= max_tile:
        return 0  # one tile would be the whole image anyway
    n = 2
    while True:
        side = -(-(longest + (n - 1) * overlap) // n)
        side += (-side) % cell
        if side <= max_tile or side <= overlap + cell:
            return max(side, overlap + cell)
        n += 1


def _axis(length: int, tile: int, halo: int, cell: int) -> list[tuple[int, int, int, int]]:
    """(extent start, extent end, core start, core end) along one axis of a canvas ``length``."""
    core = max(cell, (tile - 2 * halo) // cell * cell)
    n = -(-length // core)
    while True:  # cores of (nearly) equal size, multiples of cell, none above `core`
        bounds = [(i * length // n) // cell * cell for i in range(n)] + [length]
        if max(b - a for a, b in zip(bounds, bounds[1:])) <= core:
            break
        n += 1
    return [(max(0, a - halo), min(length, b + halo), a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def plan_cores(canvas: tuple[int, int], tile: int, halo: int, cell: int) -> list[tuple[Box, Box]]:
    """Tiles of a ``canvas`` (sides multiples of ``cell``): (extent, core) boxes in canvas px.

    Cores partition the canvas; each extent is its core grown by ``halo`` (a multiple of
    ``cell``) where the canvas allows, so extents are at most about ``tile`` px a side (at least
    ``2 * halo + cell``).
    """
    rows, cols = _axis(canvas[0], tile, halo, cell), _axis(canvas[1], tile, halo, cell)
    return [((ey0, ey1, ex0, ex1), (cy0, cy1, cx0, cx1)) for ey0, ey1, cy0, cy1 in rows for ex0, ex1, cx0, cx1 in cols]


class TorchRunner:
    """Runs a loaded model with PyTorch (whole image or one tile)."""

    def __init__(self, model: LoadedModel, config: ApplyConfig) -> None:
        from ..features import resolve_device

        self.model = model
        self.net = model.net
        self.device = resolve_device(config.device)
        channels_last = config.channels_last if config.channels_last is not None else (self.device.type == "cpu" and getattr(self.net, "channels_last_cpu", True))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(device=self.device, memory_format=self.memory_format)
        self.seed = config.seed
        self.style: Any = None  # what the network's prepare_style made (multi-style, AdaIN)
        self.autocast = resolve_precision(getattr(config, "precision", "fp32"), self.device, getattr(model, "arch", None))  # bfloat16 or None
        self.residual_dtype = residual_precision(getattr(config, "precision", "fp32"), self.device, getattr(model, "arch", None))
        for module in self.net.modules():  # auto's mixed mode (bfloat16 residual blocks) where the arch has it, else off
            if isinstance(module, ResidualBlock):
                module.compute_dtype = self.residual_dtype

    @property
    def multiple(self) -> int:
        """Tile origins are multiples of this (the network's ``multiple``)."""
        return cells(self.net)

    def __call__(self, image: torch.Tensor | None, size: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None):
            x = None if image is None else image.to(device=self.device, memory_format=self.memory_format)
            y = self.net.generate(x, size=size, seed=self.seed, origin=origin, style=self.style)  # type: ignore[operator]
            return y.float().cpu().contiguous()

    @property
    def halo(self) -> int:
        """Receptive radius of the network in px (tiles extend this far beyond their cores)."""
        return receptive_radius(self.net)

    @contextlib.contextmanager
    def streaming(self) -> Iterator[Any]:
        """A :class:`_TorchStream`; the network's norms are back to normal afterwards."""
        m = cells(self.net)
        side = max(16, 2 * m)
        tiny = torch.rand(1, 3, side, side) if "content" in self.net.takes else None  # type: ignore[operator]
        with NormStreamer(self.net, lambda: self(tiny, (side, side))) as streamer:
            yield _TorchStream(self, streamer)

    def frozen(self, reference: torch.Tensor | None, size: tuple[int, int]) -> Any:
        """Approximate mode: statistics recorded on ``reference`` and frozen for the block."""
        from ..nets.norm import frozen_statistics

        return frozen_statistics(self.net, lambda: self(reference, size))


class _TorchStream:
    def __init__(self, runner: TorchRunner, streamer: NormStreamer) -> None:
        self.runner, self.streamer = runner, streamer
        self.passes = streamer.passes

    def collect(self, p: int, image: torch.Tensor | None, size: tuple[int, int], origin: tuple[int, int], core: Box) -> dict[int, Sums]:
        return self.streamer.collect(p, lambda: self.runner(image, size, origin), size, core)

    def freeze(self, stats: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.streamer.freeze(stats)


class OnnxRunner:
    """Runs an exported model with ONNX Runtime on the CPU."""

    def __init__(self, onnx_path: Path, meta: Mapping[str, Any], config: ApplyConfig) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("runtime onnx needs onnxruntime: pip install 'impasto[onnx]'", params="runtime") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._ort, self._options = ort, options
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a broken file
            raise ModelFileError(f"{onnx_path}: not a loadable ONNX model ({str(exc).splitlines()[0][:160]})") from None
        self.path = Path(onnx_path)
        self.meta = meta
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.seed = config.seed
        self.style: Any = None  # what the network's prepare_style made (multi-style, AdaIN)
        self.arch = str(meta["arch"])
        self.net_config = dict(meta.get("net_config", {}))
        from ..nets.registry import twin_net

        self.net = twin_net(self.arch, self.net_config)  # sizes, noise and receptive field; its weights are unused
        self.multiple = cells(self.net)
        self._graph: _FrozenGraph | None = None
        self._affine: dict[str, Any] | None = None  # frozen scale/shift inputs while streaming

    def _feeds(self, image: torch.Tensor | None, size: tuple[int, int], origin: tuple[int, int]) -> dict[str, Any]:
        """The graph's inputs for an output of ``size`` at ``origin``, as the network makes them."""
        inputs = self.net.core_inputs(image if "content" in self.net.takes else None, size, seed=self.seed, origin=origin, style=self.style)  # type: ignore[operator]
        return {name: t.numpy() for name, t in inputs.items() if name in self.inputs}

    def __call__(self, image: torch.Tensor | None, size: tuple[int, int], origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
        h, w = size
        feeds = self._feeds(image, size, origin)
        if self._affine is None:
            y = self.session.run(None, feeds)[0]
        else:
            assert self._graph is not None
            y = self._graph.run([self.output], {**feeds, **self._affine})[0]
        return torch.from_numpy(y)[..., :h, :w].contiguous()

    @property
    def halo(self) -> int:
        """Receptive radius of the network in px (measured on a PyTorch twin of the graph)."""
        return receptive_radius(self.net)

    @contextlib.contextmanager
    def streaming(self) -> Iterator[Any]:
        """A stream over the rewritten graph; whole-image runs use the original graph again afterwards."""
        if self._graph is None:
            self._graph = _FrozenGraph(self.path, self._ort, self._options)
        self._affine = {}
        try:
            yield _OnnxStream(self, self._graph)
        finally:
            self._affine = None

    def frozen(self, reference: torch.Tensor | None, size: tuple[int, int]) -> Any:
        raise UsageError("stats_edge (approximate statistics) works with runtime torch only; leave it at 0 for exact tiles", params=("stats_edge", "runtime"))


class _FrozenGraph:
    """An exported graph with every InstanceNormalization rewritten to ``x * scale + shift``
    (``scale``/``shift`` graph inputs) and the norms' inputs exposed as outputs."""

    def __init__(self, path: Path, ort: Any, options: Any) -> None:
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(path))
        graph = model.graph
        inits = {t.name: t for t in graph.initializer}
        for node in graph.node:  # constants may also come from Constant nodes or Identity (deduplicated weights)
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    inits[node.output[0]] = value
            elif node.op_type == "Identity" and node.input[0] in inits:
                inits[node.output[0]] = inits[node.input[0]]
        depth: dict[str, int] = {}
        nodes = []
        self.norms: list[dict[str, Any]] = []
        for node in graph.node:
            d = max((depth.get(i, -1) for i in node.input if i), default=-1)
            if node.op_type != "InstanceNormalization":
                nodes.append(node)
                for o in node.output:
                    depth[o] = d
                continue
            if node.input[1] not in inits or node.input[2] not in inits:
                raise ModelFileError(f"{path}: InstanceNormalization {node.name!r} without constant scale and bias; re-export the model")
            k = len(self.norms)
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            scale = numpy_helper.to_array(inits[node.input[1]]).astype("float64")
            self.norms.append({"input": node.input[0], "pass": d + 1, "eps": float(eps), "weight": scale, "bias": numpy_helper.to_array(inits[node.input[2]]).astype("float64")})
            a, b, mid = f"impasto_norm{k}_scale", f"impasto_norm{k}_shift", f"impasto_norm{k}_scaled"
            nodes += [helper.make_node("Mul", [node.input[0], a], [mid]), helper.make_node("Add", [mid, b], [node.output[0]])]
            for name in (a, b):
                graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", int(scale.shape[0]), 1, 1]))
            depth[node.output[0]] = d + 1
        del graph.node[:]
        graph.node.extend(nodes)
        self.model = model
        self.passes = 1 + max((n["pass"] for n in self.norms), default=-1)
        self._ort, self._options = ort, options
        self._sessions: dict[tuple[str, ...], Any] = {}

    def session(self, outputs: list[str]) -> Any:
        """An ONNX Runtime session for the part of the graph that computes ``outputs``."""
        key = tuple(outputs)
        if key not in self._sessions:
            import onnx
            from onnx import helper

            g = self.model.graph
            needed, keep = set(outputs), []
            for node in reversed(g.node):
                if any(o in needed for o in node.output):
                    keep.append(node)
                    needed.update(i for i in node.input if i)
            keep.reverse()
            known = {o.name: o for o in g.output}
            outs = [known.get(name) or helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in outputs]
            sub = helper.make_graph(keep, "impasto_stage", [i for i in g.input if i.name in needed], outs, [t for t in g.initializer if t.name in needed])
            m = helper.make_model(sub, opset_imports=list(self.model.opset_import), ir_version=self.model.ir_version)
            self._sessions[key] = self._ort.InferenceSession(m.SerializeToString(), self._options, providers=["CPUExecutionProvider"])
        return self._sessions[key]

    def run(self, outputs: list[str], feeds: Mapping[str, Any]) -> list[Any]:
        session = self.session(outputs)
        names = {i.name for i in session.get_inputs()}
        return session.run(outputs, {k: v for k, v in feeds.items() if k in names})


class _OnnxStream:
    def __init__(self, runner: OnnxRunner, graph: _FrozenGraph) -> None:
        self.runner, self.graph = runner, graph
        self.passes = graph.passes

    def collect(self, p: int, image: torch.Tensor | None, size: tuple[int, int], origin: tuple[int, int], core: Box) -> dict[int, Sums]:
        members = [k for k, n in enumerate(self.graph.norms) if n["pass"] == p]
        feeds = {**self.runner._feeds(image, size, origin), **(self.runner._affine or {})}
        arrays = self.graph.run([self.graph.norms[k]["input"] for k in members], feeds)
        return {k: core_sums(torch.from_numpy(a), size, core) for k, a in zip(members, arrays)}

    def freeze(self, stats: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> None:
        assert self.runner._affine is not None
        for k, (mean, var) in stats.items():
            n = self.graph.norms[k]
            weight = torch.from_numpy(n["weight"]).view(1, -1, 1, 1)
            scale = weight / torch.sqrt(var.double().cpu() + n["eps"])
            shift = torch.from_numpy(n["bias"]).view(1, -1, 1, 1) - mean.double().cpu() * scale
            self.runner._affine[f"impasto_norm{k}_scale"] = scale.float().numpy()
            self.runner._affine[f"impasto_norm{k}_shift"] = shift.float().numpy()


def _crop(x: torch.Tensor, box: Box) -> torch.Tensor:
    return x[..., box[0] : box[1], box[2] : box[3]]


def stylise_tensor(runner: Any, image: torch.Tensor | None, size: tuple[int, int], *, tile: int, overlap: int, cell: int, stats_edge: int = 0) -> torch.Tensor:
    """Run ``runner`` on ``image`` (or generate ``size`` for texture models), tiled if ``tile``.

    Tiles are at most ``tile`` px a side (at least twice the network's receptive radius plus
    ``cell``), aligned to ``cell`` px. ``stats_edge=0``: exact whole-image statistics from
    streaming passes; each tile extends the receptive radius beyond the core it owns, so the
    result equals the whole-image one. ``stats_edge > 0``: approximate statistics from a copy of
    at most that many px and tiles blended over ``overlap`` px (faster; torch only).
    """
    h, w = size
    if not tile or (h <= tile and w <= tile):
        return runner(image, (h, w))
    ch, cw = -(-h // cell) * cell, -(-w // cell) * cell
    canvas = None if image is None else pad_to(image, (ch, cw))
    if stats_edge:
        return _stylise_approximate(runner, image, canvas, size, (ch, cw), tile=tile, overlap=overlap, stats_edge=stats_edge, cell=cell)
    halo = runner.halo
    halo += (-halo) % cell
    plan = plan_cores((ch, cw), tile, halo, cell)
    batch = 1 if image is None else int(image.shape[0])
    out = torch.zeros(batch, 3, ch, cw)
    with runner.streaming() as stream:
        for p in range(stream.passes):
            totals: dict[int, list[Any]] = {}
            for ext, core in plan:
                local = (core[0] - ext[0], core[1] - ext[0], core[2] - ext[2], core[3] - ext[2])
                crop = None if canvas is None else _crop(canvas, ext)
                for k, (s, ss, n) in stream.collect(p, crop, (ext[1] - ext[0], ext[3] - ext[2]), (ext[0], ext[2]), local).items():
                    if k in totals:
                        totals[k] = [totals[k][0] + s, totals[k][1] + ss, totals[k][2] + n]
                    else:
                        totals[k] = [s, ss, n]
            stream.freeze({k: finish_moments((s, ss, n)) for k, (s, ss, n) in totals.items()})
        for ext, core in plan:
            y = runner(None if canvas is None else _crop(canvas, ext), (ext[1] - ext[0], ext[3] - ext[2]), (ext[0], ext[2]))
            _crop(out, core).copy_(y[..., core[0] - ext[0] : core[1] - ext[0], core[2] - ext[2] : core[3] - ext[2]])
    return out[..., :h, :w]


def _stylise_approximate(runner: Any, image: torch.Tensor | None, canvas: torch.Tensor | None, size: tuple[int, int], padded: tuple[int, int], *, tile: int, overlap: int, stats_edge: int, cell: int) -> torch.Tensor:
    """Statistics from a copy downscaled to ``stats_edge`` px, feathered overlapping tiles."""
    from ..image.resize import fit_edge, resize
    from ..image.tiles import feather_weight, plan_tiles

    if stats_edge < 16:
        raise ConfigError(f"stats_edge must be 0 (exact) or >= 16 px, got {stats_edge}", params="stats_edge")
    h, w = size
    ch, cw = padded
    t = max(1, tile // cell)
    ov = min(max(0, -(-overlap // cell)), t - 1)
    tiles = [tl.scaled(cell) for tl in plan_tiles((ch // cell, cw // cell), t, ov)]
    reference, ref_size = image, (h, w)
    if max(h, w) > stats_edge:  # measure the statistics on a downscaled copy (bounded memory)
        ref_size = fit_edge((h, w), stats_edge)
        reference = None if image is None else resize(image, ref_size)
    acc: torch.Tensor | None = None
    total = torch.zeros(1, 1, ch, cw)
    with runner.frozen(reference, ref_size):
        for tl in tiles:
            y = runner(None if canvas is None else tl.crop(canvas), tl.size, (tl.y0, tl.x0))
            weight = feather_weight(tl, (ch, cw), overlap)
            if acc is None:
                acc = torch.zeros(y.shape[0], y.shape[1], ch, cw)
            tl.crop(acc).addcmul_(y, weight)
            tl.crop(total).add_(weight)
    assert acc is not None
    return acc.div_(total)[..., :h, :w]  # in place: one full-size buffer less for huge images
