"""Parameter sweeps and batches over the gatys method, reusing encoders and style targets.

Value syntax of ``--param NAME=VALUES``: ``;`` (or its alias ``|``) always separates values.
Without ``;``/``|``, a comma separates the values of a scalar parameter (``style_weight=1e2,1e3``),
while for a list-valued parameter (:data:`LIST_VALUED`, e.g. ``content_layers``) the comma belongs
to the one value, exactly as in ``impasto gatys --content-layers relu3_1,relu4_2``.
"""

from __future__ import annotations

import csv
import os
import dataclasses
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..errors import ConfigError, ImpastoError
from .gatys import GatysConfig

__all__ = ["SweepAxis", "SWEEPABLE", "LIST_VALUED", "VALUE_SEPARATORS", "parse_axis", "grid", "contact_sheet", "write_csv", "slug", "run_sweep", "run_batch"]

#: parameters that can be swept (GatysConfig fields)
SWEEPABLE = tuple(f.name for f in dataclasses.fields(GatysConfig) if f.name not in ("device", "save_every", "max_pixels", "content_mask", "style_mask"))

#: GatysConfig fields whose one value is itself a comma-separated list
LIST_VALUED = ("content_layers", "style_layers", "scales", "scale_iterations", "patch_scales")

#: what separates the values of one swept parameter (always; ',' too for scalar parameters)
VALUE_SEPARATORS = (";", "|")


@dataclass(frozen=True)
class SweepAxis:
    """One swept parameter and its values (each exactly as ``impasto gatys`` takes it).

    ``note`` is a one-line remark for the user when the spelling could have meant something
    else (the core never prints; the CLI shows it)."""

    name: str
    values: tuple[str, ...]
    note: str = field(default="", compare=False)


def parse_axis(text: str) -> SweepAxis:
    """``style_weight=1e2,1e3`` -> 2 values; ``content_layers="relu4_2;relu3_1,relu4_2"`` -> 2
    values (``relu4_2`` and ``relu3_1,relu4_2``); ``content_layers=relu3_1,relu4_2`` -> 1 value
    (one list), with a note saying how to get one run per layer."""
    name, eq, rest = text.partition("=")
    name = name.strip().replace("-", "_")
    if not eq or not rest.strip():
        raise ConfigError(f"param {text!r}: expected NAME=V1,V2,... (e.g. style_weight=1e2,1e3,1e4)", params="param")
    if name not in SWEEPABLE:
        import difflib

        close = difflib.get_close_matches(name, SWEEPABLE, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"param {name!r} cannot be swept{hint}; choose from {', '.join(SWEEPABLE)}", params="param")
    rest = rest.strip()
    listed = name in LIST_VALUED
    if any(s in rest for s in VALUE_SEPARATORS):
        parts, sep = re.split(r"[;|]", rest), "';'"
    elif listed:
        parts, sep = [rest], "';'"
    else:
        parts, sep = rest.split(","), "',' or ';'"
    values = tuple(p.strip() for p in parts)
    if any(not v for v in values):
        raise ConfigError(f"param {name}={rest}: empty value (separate values with {sep}, nothing between or after them)", params="param")
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise ConfigError(f"param {name}={rest}: value {dupes[0]!r} is given twice", params="param")
    note = ""
    if listed and len(values) == 1 and "," in values[0]:
        each = ";".join(p.strip() for p in values[0].split(","))
        note = f'--param {name}={values[0]} is one value: one run using the list {values[0]}; for one run per entry separate values with \';\': --param "{name}={each}"'
    return SweepAxis(name, values, note)


def grid(base: GatysConfig, axes: Sequence[SweepAxis]) -> list[tuple[dict[str, str], GatysConfig]]:
    """Every combination of the axes' values applied to ``base``. Each value is validated up front
    (including layer names against the encoder), so a misspelt value fails before any run starts
    with one line naming ``--param NAME=VALUE``."""
    from ..config import config_from_mapping, config_to_dict

    if not 1 <= len(axes) <= 2:
        raise ConfigError("a sweep takes one or two param axes", params="param")
    if len({a.name for a in axes}) != len(axes):
        raise ConfigError("the two param axes must be different parameters", params="param")
    base_dict = config_to_dict(base)
    for a in axes:
        for v in a.values:
            try:
                config_from_mapping(GatysConfig, {**base_dict, a.name: v})
            except ImpastoError as exc:
                raise ConfigError(f"param {a.name}={v}: {exc}", params=("param", *exc.params)) from None
    combos = []
    for values in itertools.product(*(a.values for a in axes)):
        labels = {a.name: v for a, v in zip(axes, values)}
        try:
            cfg = config_from_mapping(GatysConfig, {**base_dict, **labels})
        except ImpastoError as exc:
            raise ConfigError(f"param {_joined(labels)}: {exc}", params=("param", *exc.params)) from None
        combos.append((labels, cfg))
    _check_layers(combos)
    return combos


def _joined(labels: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in labels.items())


def _check_layers(combos: Sequence[tuple[dict[str, str], GatysConfig]]) -> None:
    """Fail before the first run if a combination names a layer its encoder does not have."""
    from .gatys import parse_layers

    known: dict[str, list[str] | None] = {}
    for labels, cfg in combos:
        if cfg.encoder not in known:
            known[cfg.encoder] = _layer_names(cfg.encoder)
        names = known[cfg.encoder]
        if names is None:
            continue  # unknown or unbuildable encoder: the run itself reports it
        for fld in ("content_layers", "style_layers"):
            for layer in parse_layers(getattr(cfg, fld)):
                if layer not in names:
                    from ..features.extractor import unknown_layer_message

                    swept = fld in labels or "encoder" in labels
                    where = f"param {_joined(labels)}" if swept else fld
                    raise ConfigError(f"{where}: {unknown_layer_message(layer, cfg.encoder, names)}", params="param" if swept else fld)


def _layer_names(encoder: str) -> list[str] | None:
    """The layer names (and block aliases) of ``encoder``, built on the meta device (no memory,
    no weights); None where that is not possible (the run then checks the names itself)."""
    try:
        from ..features.registry import get_encoder_spec

        spec = get_encoder_spec(encoder)
        with torch.device("meta"):
            model = spec.build()
        names = [n for n, _ in spec.stages(model)]
    except Exception:  # noqa: BLE001 - a pre-check only; the run validates the names anyway
        return None
    return names + sorted({n.split(".", 1)[0] for n in names if "." in n})


def slug(labels: Mapping[str, str]) -> str:
    """A file-name-safe, distinct label: ``style_weight-1e3_init-noise``; commas in list values
    become ``+`` (``content_layers-relu3_1+relu4_2``). Where the name had to lose characters or
    length, a short hash of the full label keeps different values apart."""
    text = "_".join(f"{k}-{v}" for k, v in labels.items())
    safe = re.sub(r"[^A-Za-z0-9._,-]+", "-", text).replace(",", "+")
    lossy = bool(re.search(r"[^A-Za-z0-9._,-]", text))
    if lossy or len(safe) > 120:
        safe = safe[:111].rstrip("-") + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return safe


def _label_lines(label: str | Mapping[str, str]) -> list[str]:
    """``NAME=VALUE`` per swept parameter (a joined ``a=1, b=x,y`` string is split at the names)."""
    if isinstance(label, Mapping):
        return [f"{k}={v}" for k, v in label.items()]
    return re.split(r", (?=(?:" + "|".join(SWEEPABLE) + r")=)", label)


def _wrap(text: str, width: float, measure: Any) -> list[str]:
    """Greedy wrap of ``text`` to ``width`` px, breaking after commas, else anywhere."""
    lines, line = [], ""
    for token in re.split(r"(?<=,)", text):
        while token:
            if measure(line + token) <= width:
                line, token = line + token, ""
            elif line:
                lines.append(line)
                line = ""
            else:  # one token wider than the cell: cut it
                cut = max(1, max((i for i in range(1, len(token) + 1) if measure(token[:i]) <= width), default=1))
                lines.append(token[:cut])
                token = token[cut:]
    return lines + ([line] if line else [])


def contact_sheet(images: Sequence[torch.Tensor], labels: Sequence[str | Mapping[str, str]], columns: int, *, cell: int = 256) -> torch.Tensor:
    """Tile ``images`` into a labelled grid (1x3xHxW in [0, 1]). Each label shows one
    ``NAME=VALUE`` line per parameter, wrapped (never cut) to the cell width."""
    from PIL import Image, ImageDraw, ImageFont

    from ..image.convert import pil_to_tensor, tensor_to_pil

    font = ImageFont.load_default()
    measure = lambda s: font.getlength(s) if hasattr(font, "getlength") else 6 * len(s)  # noqa: E731
    wrapped = [[w for part in _label_lines(lab) for w in _wrap(part, cell, measure)] for lab in labels]
    line_h = 12
    text_h = max(18, max((len(w) for w in wrapped), default=1) * line_h + 6)
    rows = (len(images) + columns - 1) // columns
    pad = 6
    sheet = Image.new("RGB", (columns * (cell + pad) + pad, rows * (cell + text_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, lines) in enumerate(zip(images, wrapped)):
        pil = tensor_to_pil(img)
        pil.thumbnail((cell, cell))
        r, c = divmod(i, columns)
        x, y = pad + c * (cell + pad), pad + r * (cell + text_h + pad)
        sheet.paste(pil, (x + (cell - pil.width) // 2, y + text_h + (cell - pil.height) // 2))
        for j, line in enumerate(lines):
            draw.text((x, y + 2 + j * line_h), line, fill="black", font=font)
    return pil_to_tensor(sheet)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` (same keys) as CSV atomically; list values stay one quoted cell."""
    from ..atomic import atomic_path

    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)


# ------------------------------------------------------------------------------------------
# running a grid or a batch: one process, encoders and style targets computed once


class _EncoderCache:
    """Encoders keyed by what builds them (name, weights, preprocessing, pooling, layers, device)."""

    def __init__(self) -> None:
        self._store: dict[tuple[Any, ...], Any] = {}

    def get(self, config: GatysConfig, download_progress: Any = None) -> Any:
        from .gatys_method import build_gatys_encoder

        key = (config.encoder, config.weights, config.preprocessing, config.pooling, config.content_layers, config.style_layers, config.device)
        if key not in self._store:
            self._store[key] = build_gatys_encoder(config, download_progress)
        return self._store[key]


def _preload(path: Any, max_pixels: int) -> Any:
    from ..image.io import load_image

    return load_image(path, max_pixels=max_pixels) if isinstance(path, (str, os.PathLike)) else path


def _preload_style(spec: Any, max_pixels: int) -> Any:
    """Load a style once (keeping weight/scale) so every run shares the same tensor."""
    from ..image.io import load_image
    from .gatys_method import LoadedStyle, StyleSpec, parse_style_spec

    if isinstance(spec, str):
        spec = parse_style_spec(spec)
    if isinstance(spec, StyleSpec):
        return LoadedStyle(load_image(spec.path, max_pixels=max_pixels), spec)
    return spec


def _style_path(spec: Any) -> str:
    from .gatys_method import parse_style_spec

    return parse_style_spec(spec).path if isinstance(spec, str) else getattr(spec, "path", str(spec))


def run_sweep(content: Any, style: Any, axes: Sequence[SweepAxis], out_dir: Any, *, config: GatysConfig | None = None,
              callback: Any = None, columns: int | None = None, download_progress: Any = None) -> dict[str, Any]:
    """Run a grid over one or two GatysConfig parameters; write each image, a labelled contact
    sheet (``sheet.png``) and ``results.csv`` (final losses, time) into ``out_dir``."""
    from ..image.save import save_image
    from ..progress import MessageEvent, emit
    from .gatys import StyleCache
    from .gatys_method import GatysMethod, as_style_list

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = config or GatysConfig()
    combos = grid(base, axes)
    encoders, styles_cache = _EncoderCache(), StyleCache()
    loaded_content = _preload(content, base.max_pixels)
    loaded_styles = [_preload_style(s, base.max_pixels) for s in as_style_list(style)]
    images, labels, rows = [], [], []
    for i, (lab, cfg) in enumerate(combos):
        emit(callback, MessageEvent(f"[{i + 1}/{len(combos)}] " + ", ".join(f"{k}={v}" for k, v in lab.items())))
        enc = encoders.get(cfg, download_progress)
        r = GatysMethod().run(cfg, {"content": loaded_content, "style": loaded_styles}, callback=callback, extractor=enc, style_cache=styles_cache)
        name = slug(lab) + ".png"
        r.save(out / name, sidecar=False)
        images.append(r.image)
        labels.append(", ".join(f"{k}={v}" for k, v in lab.items()))
        rows.append({**lab, "file": name, **{f"loss_{k}": round(v, 6) for k, v in r.losses.items()}, "time_s": r.manifest["time_s"]})
    cols = columns or (len(axes[-1].values) if len(axes) == 2 else min(len(images), 4))
    save_image(out / "sheet.png", contact_sheet(images, labels, cols))
    write_csv(out / "results.csv", rows)
    return {"runs": rows, "sheet": str(out / "sheet.png"), "csv": str(out / "results.csv"), "style_targets_computed": len(styles_cache)}


def run_batch(contents: Sequence[Any], styles: Sequence[Any], out_dir: Any, *, config: GatysConfig | None = None,
              callback: Any = None, download_progress: Any = None) -> list[dict[str, Any]]:
    """Stylise every content image with every style in one process (``<content>__<style>.png``);
    the encoder is built once and style targets are cached per (style, size, layers, encoder)."""
    from ..progress import MessageEvent, emit
    from .gatys import StyleCache
    from .gatys_method import GatysMethod

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config or GatysConfig()
    encoders, cache = _EncoderCache(), StyleCache()
    enc = encoders.get(cfg, download_progress)
    loaded_styles = [_preload_style(s, cfg.max_pixels) for s in styles]
    done = []
    total = len(contents) * len(loaded_styles)
    for ci, c in enumerate(contents):
        loaded = _preload(c, cfg.max_pixels)
        for si, (s, spec) in enumerate(zip(loaded_styles, styles)):
            k = ci * len(loaded_styles) + si + 1
            emit(callback, MessageEvent(f"[{k}/{total}] {Path(str(c)).name} x {Path(str(_style_path(spec))).name}"))
            r = GatysMethod().run(cfg, {"content": loaded, "style": [s]}, callback=callback, extractor=enc, style_cache=cache)
            name = f"{Path(str(c)).stem}__{Path(str(_style_path(spec))).stem}.png"
            r.save(out / name)
            done.append({"content": str(c), "style": str(_style_path(spec)), "output": str(out / name), "losses": r.losses})
    return done
