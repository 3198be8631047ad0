"""Exporting a trained model to ONNX or TorchScript, and reading an exported ONNX file's description.

The network says what to trace (``export_module()`` and ``example_inputs()``, see
:mod:`impasto.nets.protocol`); this module adds the dynamic axes, the model's description as
metadata (ONNX ``impasto`` property; TorchScript extra file ``impasto.json``), the SHA-256 of the
model file an ONNX file was exported from (property ``impasto_source_sha256``: ``impasto apply``
reuses a ``model.onnx`` next to ``model.pt`` only while it matches) and writes the file atomically.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path
from ..config import check_rules
from ..errors import ModelFileError, UsageError
from ..provenance import sha256_file
from .ff_model import MODEL_FORMAT, load_model

__all__ = ["EXPORT_FORMATS", "ONNX_OPSET", "ONNX_EXPORT_VERSION", "SOURCE_KEY", "export_model", "read_onnx_meta", "read_onnx_export", "dynamic_axes"]

EXPORT_FORMATS = ("onnx", "torchscript")
#: the ONNX opset ``export_model`` writes by default
ONNX_OPSET = 17
#: the version of what ``export_model`` writes into an ONNX file (graph, inputs, metadata): bump it
#: whenever that changes, so that cached exports (:mod:`.ff_onnx`) made by older code are not reused
ONNX_EXPORT_VERSION = 2  # 2: the source model's SHA-256 (SOURCE_KEY)
#: the ONNX metadata property holding the SHA-256 of the model file the export was made from
SOURCE_KEY = "impasto_source_sha256"


def dynamic_axes(inputs: dict[str, torch.Tensor], scale: int = 1) -> dict[str, dict[int, str]]:
    """Every input and the output (``stylised``) take any batch; 4-D inputs any height and width.

    The content image (``image``) shares the output's ``height`` and ``width``; every other
    input (noise at other scales, ...) has sizes of its own (``heightK``/``widthK``, K its index).
    A super-resolution network (``scale`` > 1) names its output sides ``height_xS``/``width_xS``:
    ``scale`` times the input's.
    """
    axes: dict[str, dict[int, str]] = {}
    for k, (name, tensor) in enumerate(inputs.items()):
        axes[name] = {0: "batch"}
        if tensor.dim() == 4:
            axes[name].update({2: "height" if name == "image" else f"height{k}", 3: "width" if name == "image" else f"width{k}"})
    suffix = f"_x{scale}" if scale > 1 else ""
    axes["stylised"] = {0: "batch", 2: "height" + suffix, 3: "width" + suffix}
    return axes


def export_model(model_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, format: str = "onnx", opset: int = ONNX_OPSET) -> Path:
    """Export a model file to ONNX (dynamic batch, height and width) or TorchScript.

    The exported network takes sides that are multiples of the network's ``multiple`` (stored in
    the metadata as ``multiple``; the input names as ``inputs``): ``apply`` pads and crops around
    it. The model's description (architecture, style, steps, licence) is stored in the file
    (ONNX metadata ``impasto``; TorchScript extra file ``impasto.json``); an ONNX file also
    records the SHA-256 of the model file (metadata :data:`SOURCE_KEY`).
    """
    check_rules([
        (format in EXPORT_FORMATS, "format", f"format {format!r}: choose from {', '.join(EXPORT_FORMATS)}"),
        (opset >= 17, "opset", f"opset must be >= 17, got {opset}"),
    ])
    loaded = load_model(model_path)
    net = loaded.net.cpu().eval()
    target = Path(out) if out is not None else loaded.path.with_suffix(".onnx" if format == "onnx" else ".torchscript.pt")
    if target.is_dir():
        target = target / (loaded.path.stem + (".onnx" if format == "onnx" else ".torchscript.pt"))
    meta = dict(loaded.meta)
    wrapper = net.export_module()  # type: ignore[operator]
    inputs = net.example_inputs()  # type: ignore[operator]
    names = list(inputs)
    args = tuple(inputs.values())
    meta["multiple"] = int(net.multiple)  # type: ignore[arg-type]
    meta["inputs"] = names
    scale = int(getattr(net, "scale", 1) or 1)
    if scale > 1:
        meta["scale"] = scale  # super-resolution: the output is scale x the input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if format == "onnx":
            try:
                import onnx
            except ImportError:
                raise UsageError("ONNX export needs the onnx package: pip install 'impasto[onnx]'") from None
            with atomic_path(target) as tmp:
                torch.onnx.export(wrapper, args, str(tmp), dynamo=False, opset_version=opset, input_names=names, output_names=["stylised"], dynamic_axes=dynamic_axes(inputs, scale), do_constant_folding=True)
                model = onnx.load(str(tmp))
                entry = model.metadata_props.add()
                entry.key, entry.value = "impasto", json.dumps(meta, default=str)
                source = model.metadata_props.add()
                source.key, source.value = SOURCE_KEY, sha256_file(loaded.path)
                model.producer_name = "impasto"
                onnx.save(model, str(tmp))
        else:
            traced = torch.jit.trace(wrapper, args, check_trace=False)
            with atomic_path(target) as tmp:
                torch.jit.save(traced, str(tmp), _extra_files={"impasto.json": json.dumps(meta, default=str)})
    return target


def read_onnx_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The impasto description stored in an exported ONNX file."""
    return read_onnx_export(path)[0]


def read_onnx_export(path: str | os.PathLike[str]) -> tuple[dict[str, Any], str | None]:
    """The impasto description stored in an exported ONNX file and the SHA-256 of the model file
    it was exported from (None in a file exported before impasto recorded it)."""
    try:
        import onnx
    except ImportError:
        raise UsageError("reading ONNX models needs the onnx package: pip install 'impasto[onnx]'") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})") from None
    props = {p.key: p.value for p in model.metadata_props}
    if "impasto" not in props:
        raise ModelFileError(f"{path}: an ONNX file that impasto did not export (no 'impasto' metadata)")
    try:
        meta = json.loads(props["impasto"])
    except json.JSONDecodeError:
        raise ModelFileError(f"{path}: corrupt impasto metadata in the ONNX file") from None
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not an impasto feed-forward model")
    return meta, props.get(SOURCE_KEY) or None
