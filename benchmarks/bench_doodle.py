"""Benchmark of the patch-based methods: a whole 512 px doodle (neural-doodle's README: hours on a
CPU; target here: under 10 minutes on 2 cores) and `impasto swap` at 512 and 1024 px.

The doodle paints a made-up landscape map (sky, hills, a moon) with the bundled Starry Night, whose
own map is made here by clustering the painting's colours into three regions (sky blues, dark
cypress and village, bright stars). Encoder: VGG19 with seeded random weights (no pretrained
weights can be downloaded here), so the figures are times, not a quality claim.

  python benchmarks/bench_doodle.py            # 512 px doodle (default options), swap at 512 and 1024
  python benchmarks/bench_doodle.py --quick    # 64 px, a few iterations (CI: checks the code runs)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _bench import fmt, run_child, table

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time, torch
case, threads = json.loads(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
from impasto import api
from impasto.provenance import peak_memory_mb
out = case.pop("out")
t0 = time.perf_counter()
result = api.run(case.pop("method"), **case)
result.save(out, sidecar=False)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": peak_memory_mb(), "losses": result.manifest.get("final_losses", {})}))
"""


def maps(folder: Path, edge: int) -> tuple[Path, Path, Path]:
    """(painting, its map, the target map), written into ``folder``."""
    import numpy as np
    from PIL import Image, ImageDraw

    painting = Image.open(ROOT / "examples" / "style" / "starry_night.jpg").convert("RGB")
    painting.thumbnail((edge, edge))
    px = np.asarray(painting).astype(np.float32)
    lum = px.mean(axis=2)
    blue = px[..., 2] - px[..., 0]
    labels = np.where(lum > 175, 2, np.where((lum < 70) | (blue < 0), 1, 0))  # stars, dark land, sky
    palette = np.array([(40, 90, 200), (30, 120, 40), (250, 230, 60)], dtype=np.uint8)
    style = folder / "starry.png"
    painting.save(style)
    Image.fromarray(palette[labels]).save(folder / "starry_sem.png")
    w, h = edge, edge * 3 // 4
    target = Image.new("RGB", (w, h), tuple(palette[0]))
    draw = ImageDraw.Draw(target)
    draw.polygon([(0, h), (0, int(h * 0.6)), (w // 3, int(h * 0.45)), (2 * w // 3, int(h * 0.65)), (w, int(h * 0.5)), (w, h)], fill=tuple(palette[1]))
    draw.ellipse((int(w * 0.7), int(h * 0.1), int(w * 0.85), int(h * 0.3)), fill=tuple(palette[2]))
    target_path = folder / "landscape_sem.png"
    target.save(target_path)
    return style, folder / "starry_sem.png", target_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--keep", metavar="DIR", help="keep the doodle's output and maps in DIR")
    args = ap.parse_args()
    print(f"bench_doodle: python {sys.version.split()[0]}, {'quick' if args.quick else 'full'} mode, 2 threads")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        edge = 64 if args.quick else 512
        style, style_map, target = maps(folder, edge)
        extra = {"iterations": 3, "scales": "64"} if args.quick else {}
        case = {"method": "doodle", "style": str(style), "style_map": str(style_map), "map": str(target), "edge": edge, "weights": "random", **extra}
        res = run_child(CHILD, {**case, "out": str(folder / "doodle.png")}, 2)
        table(f"doodle: {edge} px from a three-colour map, default options (target: < 10 min)", ["edge", "seconds", "minutes", "peak MB"],
              [[str(edge), fmt(res, "seconds", ".1f"), fmt({**res, "m": res.get("seconds", 0) / 60}, "m", ".1f"), fmt(res, "peak_mb", ".0f")]])
        rows = []
        for size in (64,) if args.quick else (512, 1024):
            case = {"method": "swap", "content": str(ROOT / "examples" / "content" / "tubingen.jpg"), "style": str(style), "edge": size, "weights": "random",
                    **({"iterations": 3} if args.quick else {})}
            r = run_child(CHILD, {**case, "out": str(folder / f"swap{size}.png")}, 2)
            rows.append([str(size), fmt(r, "seconds", ".1f"), fmt(r, "peak_mb", ".0f")])
        table("swap (relu3_1, 3x3 patches, default 60 inversion steps)", ["edge", "seconds", "peak MB"], rows)


if __name__ == "__main__":
    main()
