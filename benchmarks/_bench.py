"""What the benchmark scripts share: one case per fresh subprocess, plain tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

__all__ = ["run_child", "table", "fmt", "CHILD_TIMING"]

#: source for child programs (after ``import torch``): ``peak_mb()`` (this process's peak RSS)
#: and ``best(fn, repeat)`` (the fastest of ``repeat`` calls after one warm-up call)
CHILD_TIMING = r"""
import resource, time

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def best(fn, repeat):
    fn()  # warm-up (oneDNN primitive creation, ONNX Runtime arena)
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return min(times)
"""


def run_child(child: str, case: dict, threads: int) -> dict:
    """Run the program ``child`` (``python -c``, with ``src/`` on the path) on ``case``; the
    JSON object it prints last, plus ``wall`` seconds, or ``{"error": last stderr line}``."""
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", child, json.dumps(case), str(threads)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:100], "wall": time.perf_counter() - t}
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return {**json.loads(line), "wall": time.perf_counter() - t}


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print a titled plain-text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)] if rows else [len(h) for h in header]
    print(f"\n{title}")
    print("  ".join(h.ljust(wd) for h, wd in zip(header, widths)))
    print("  ".join("-" * wd for wd in widths))
    for r in rows:
        print("  ".join(c.ljust(wd) for c, wd in zip(r, widths)), flush=True)


def fmt(res: dict, key: str, spec: str) -> str:
    """``res[key]`` formatted, or the case's error."""
    return res["error"] if "error" in res else format(res[key], spec)
