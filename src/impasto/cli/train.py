"""``impasto train``: train a feed-forward stylisation network for one style."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..config import add_config_arguments, config_from_mapping
from ..errors import UsageError

__all__ = ["register", "run_command"]

EPILOG = """\
examples:
  impasto train --style starry.jpg --data coco/train2014 -o models/starry
  impasto train --style starry.jpg --data photos/ -o models/starry-small --arch johnson-small --steps 20000
  impasto train --style wall.jpg --texture --arch texture -o models/wall      # texture synthesis, no photos
  impasto train --style starry.jpg --data photos/ -o m --style-layers relu1_2:0.5,relu2_2,relu3_3,relu4_3
  impasto train --arch multistyle --style a.jpg --style b.jpg --data photos/ -o models/two
  impasto train --arch multistyle --style-dir paintings/ --data photos/ -o models/many
  impasto train --arch multistyle --add-style c.jpg --from models/two -o models/three   # only c's γ/β
  impasto train --arch adain --data coco/ --style-data wikiart/ -o models/adain  # any painting
  impasto train --arch stylepredict --data coco/ --style-data wikiart/ -o models/sp  # any painting, style space
  impasto train --arch swap-inverse --data coco/ --style-data wikiart/ -o models/si  # then: impasto swap photo.jpg painting.jpg models/si
  impasto train --arch superres --scale 4 --data photos/ -o models/x4                # then: impasto upscale models/x4 small.png -o big.png
  impasto train --resume -o models/starry                                     # continue after a stop
  impasto monitor models/starry                                               # watch it in a browser

OUT_DIR receives model.pt (the final, self-describing model), checkpoint.pt + config.json (every
--checkpoint-every steps; --resume continues exactly from there), log.jsonl (mean losses every
--log-every steps) and previews/step_N/*.png. Ctrl-C saves a checkpoint of the last finished step.
Photos are found recursively (any mix of JPEG/PNG/WebP/TIFF/BMP/GIF; MS-COCO's layout works);
unreadable files are skipped and counted. Layer lists take NAME[:WEIGHT],...

Multi-style (Dumoulin et al. 2017): one network, one γ/β pair per style; each step trains one
style drawn at random. --add-style trains only the new style's γ/β on a copy of --from's model
(every other parameter stays bit-identical; the settings are --from's, --steps defaults to %(add)d).
AdaIN (Huang & Belongie 2017) trains a decoder for a frozen VGG19 (relu4_1); its defaults differ:
%(adain)s.
Style prediction (Ghiasi et al. 2017) embeds each painting (Inception-v3 Mixed_6e) and predicts the
γ/β of a Johnson network; its defaults differ (and it has the --arch stylepredict options below):
%(stylepredict)s.
"""


def _arch_defaults(arch: str) -> str:
    """The training defaults of ``arch`` that differ from the flags' defaults, as flags."""
    import dataclasses
    import textwrap

    base, own = api.train_config_class(), api.train_config_class(arch)
    flags = [f"--{f.name.replace('_', '-')} {f.default}" for f in dataclasses.fields(own)
             if f.name != "arch" and f.name in base.__dataclass_fields__ and f.default != base.__dataclass_fields__[f.name].default]
    return "\n".join(textwrap.wrap(" ".join(flags), 96, break_on_hyphens=False))


def register(subparsers: Any) -> None:
    TrainConfig = api.train_config_class()
    p = subparsers.add_parser(
        "train",
        help="train a fast feed-forward network: one style, many styles (multistyle) or any painting (adain, stylepredict)",
        description="Train a generator network that stylises any photo in one pass (or synthesises a texture).",
        epilog=EPILOG % {"add": api.ADD_STYLE_STEPS, "adain": _arch_defaults("adain"), "stylepredict": _arch_defaults("stylepredict")},
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--style", metavar="STYLE", action="append", help="the style image (multistyle: repeat it, one per style, in index order)")
    p.add_argument("--style-dir", metavar="DIR", help="multistyle: every image in DIR is a style (sorted by path: the index order)")
    p.add_argument("--data", metavar="PHOTOS_DIR", help="folder of training photos (searched recursively)")
    p.add_argument("--style-data", metavar="PAINTINGS_DIR", help="adain, stylepredict, swap-inverse (any painting): folder of paintings (searched recursively, e.g. WikiArt)")
    p.add_argument("--add-style", metavar="STYLE", action="append", help="multistyle: add this style (repeatable) to the model of --from, training only its γ/β")
    p.add_argument("--from", dest="from_model", metavar="RUN", help="multistyle: the model (model.pt or its training folder) that --add-style extends")
    p.add_argument("-o", "--output", metavar="OUT_DIR", required=True, help="folder for the model, checkpoints, log and previews")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT_DIR from its last checkpoint (style, data and settings are read from OUT_DIR/config.json; --steps may be raised)")
    add_config_arguments(p, TrainConfig, group_title="training options")
    for arch, (cls, names) in _recipe_options().items():
        add_config_arguments(p, cls, group_title=f"--arch {arch} options", only=names)
    p.set_defaults(handler=run_command)


def _recipe_options() -> dict[str, tuple[type, list[str]]]:
    """arch -> (its recipe's config class, the fields TrainConfig lacks): their flags."""
    known = set(api.train_config_class().__dataclass_fields__)
    extra: dict[str, tuple[type, list[str]]] = {}
    for arch in [*api.painting_archs(), *api.photo_archs()]:
        cls = api.train_config_class(arch)
        names = [name for name in cls.__dataclass_fields__ if name not in known]
        if names:
            extra[arch] = (cls, names)
            known.update(names)
    return extra


def run_command(args: argparse.Namespace) -> int:
    from .progress import ProgressRenderer

    TrainConfig = api.train_config_class()

    quiet = bool(getattr(args, "quiet", False))
    out = Path(args.output)
    names = [*TrainConfig.__dataclass_fields__, *(n for _, fields in _recipe_options().values() for n in fields)]
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    styles: Any = list(args.style or []) + ([args.style_dir] if args.style_dir else [])
    data, style_data, add_from = args.data, args.style_data, args.from_model
    if args.add_style:
        if styles:
            raise UsageError("--add-style adds styles to --from's model; give the new styles with --add-style only")
        if not add_from and not args.resume:
            raise UsageError("--add-style needs --from RUN (the multi-style model to extend)")
        styles = list(args.add_style)
        if add_from and not data and not args.resume:  # the photos --from was trained on, if its folder says
            try:
                data = api.saved_training(add_from).get("data")
            except UsageError:
                data = None
            if not data:
                raise UsageError("--add-style needs the training photos: give --data PHOTOS_DIR")
    elif add_from:
        raise UsageError("--from needs --add-style STYLE (the style to add)")
    if args.resume:
        saved = api.saved_training(out)
        arch = given.get("arch") or saved.get("config", {}).get("arch")
        config = config_from_mapping(api.train_config_class(arch), {**saved.get("config", {}), **given})
        paths = (saved.get("style") or {}).get("path")
        styles = styles or ([] if paths is None else paths)
        data = data or saved.get("data")
        style_data = style_data or saved.get("style_data")
        add_from = add_from or saved.get("add_style_from")
    elif add_from:
        config = None
    else:
        arch = given.get("arch", TrainConfig.__dataclass_fields__["arch"].default)
        config = config_from_mapping(api.train_config_class(arch), given)
        if arch in api.photo_archs():
            if styles or style_data:
                raise UsageError(f"--arch {arch} learns from photos alone: no --style or --style-data")
            if not data:
                raise UsageError(f"--arch {arch} needs --data PHOTOS_DIR")
        elif arch in api.painting_archs():
            if styles:
                raise UsageError(f"--arch {arch} learns any style from a folder of paintings: give --style-data PAINTINGS_DIR instead of --style")
            if not style_data or not data:
                raise UsageError(f"--arch {arch} needs --data PHOTOS_DIR and --style-data PAINTINGS_DIR")
        else:
            if style_data:
                raise UsageError(f"--style-data is for --arch {' or '.join(api.painting_archs())} (not {arch}); give the style image with --style")
            if not styles:
                raise UsageError("give the style image with --style STYLE.jpg" + (" (repeat it, or --style-dir DIR)" if "multistyle" in arch else ""))
            if not config.texture and not args.data:
                raise UsageError("give a folder of training photos with --data PHOTOS_DIR (or --texture --arch texture for texture synthesis)")
    style: Any = None if not styles else (styles[0] if len(styles) == 1 and not args.style_dir and not args.add_style else styles)
    from .apply import tune_allocator

    if getattr(args, "tune_allocator", True):  # see its docstring: ~1.3x faster steps on a CPU
        tune_allocator()
    renderer = ProgressRenderer(enabled=not quiet, unit="step", desc="training")
    try:
        if config is None:  # --add-style: --from's settings, overridden by the flags given
            model = api.train(None, style, data, out, callback=renderer, resume=args.resume, add_style_from=add_from, **given)
        else:
            model = api.train(config, style, data, out, callback=renderer, resume=args.resume, style_data=style_data, add_style_from=add_from)
    finally:
        renderer.close()
    print(f"wrote {model}", file=sys.stderr)
    return 0
