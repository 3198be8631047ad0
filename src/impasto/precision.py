"""Compute precision: the one home of ``--precision auto|fp32|bf16``.

``bf16`` runs convolutions and matrix products in bfloat16 (``torch.autocast``) while parameters,
optimiser state, the image being optimised and the loss statistics stay float32. It pays where the
hardware computes bfloat16 natively: CPUs with AVX512-BF16 or AMX, and CUDA GPUs with bfloat16
support; emulated bfloat16 is slower than float32.

``auto`` picks bf16 only where the hardware has it natively *and* the method passes the quality
guard (network outputs within 1e-2 of fp32; an optimisation's final loss within 2 % of fp32):
:data:`AUTO_BF16` says, per method, with the measurement. Optimisation (gatys, doodle) stays fp32
under ``auto``. An L-BFGS run is chaotic: rerun in fp32 from the photo moved by 1e-6, its final
loss moves by up to 2.8 %, and its image is another draw of the same texture (PSNR 24-30 dB
against the first run, so no precision change can meet a 35 dB guard). Averaged over 4 such
runs per pair (random VGG19, 256 px, 100 iterations, the loss of the delivered image measured
in fp32), bf16's final loss is above fp32's on all 6 example pairs: +0.9, +1.3, +1.6, +2.0, +1.3
and +2.0 % (one single run +9.1 %). So bf16 costs about 1.5 % of final loss at equal iterations,
2 % on two pairs: the guard is not met. Tried and dropped: the first convolution in fp32 (bf16
quantises the image itself to 8 significant bits): +0.6 to +2.7 % on the same pairs, no better.
``--precision bf16`` asks for it anyway (0.4x fp32's time at 256 px on a CPU with AMX-BF16).
The guards are tested in tests/test_precision.py and measured at full size by
benchmarks/bench_perf.py.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

__all__ = ["PRECISIONS", "PRECISION_CHOICES", "AUTO_BF16", "DEFAULT_PRECISION", "PRECISION_HELP", "TRAIN_PRECISION_HELP", "normalise_precision", "is_precision", "cpu_bf16", "native_bf16", "resolve_precision", "BF16_TIP", "precision_tip", "autocast", "encoder_precision", "precision_name", "AUTO_RESIDUAL_BF16", "residual_precision"]

PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PRECISION = "auto"
#: what ``--precision`` accepts: the names and the long spellings earlier releases took
PRECISION_CHOICES = PRECISIONS + ("float32", "bfloat16")
#: the --help text of every --precision flag
PRECISION_HELP = ("compute precision: bf16 runs convolutions in bfloat16 (faster on CPUs with AVX512-BF16 or AMX and on "
                  "recent GPUs), fp32 in float32; auto = bf16 where the hardware has it natively and the method keeps its "
                  "quality in bf16 (AdaIN, superres networks; the residual blocks alone for johnson and multistyle), fp32 otherwise")
#: the --help text of the training commands' --precision flag
TRAIN_PRECISION_HELP = ("compute precision of the frozen loss network: bf16 runs it in bfloat16 (its features come back in float32, "
                        "so the generator, Adam and the losses stay float32; --amp puts the whole step under autocast instead), "
                        "fp32 in float32; auto = bf16 where the hardware has it natively and the recipe was measured to train as "
                        "well in bf16, fp32 otherwise")
#: per method or network architecture: whether ``auto`` may pick bf16 (largest output difference
#: from fp32 measured by benchmarks/bench_perf.py at full size: adain 1e-4, superres 1.6e-3 pass
#: the 1e-2 guard; johnson and multistyle 3e-2 do not (see AUTO_RESIDUAL_BF16); optimisation: see the module docstring)
#: Training recipes (keys ``train``, ``train-adain``, ... = their configs' ``PRECISION_KEY``): bf16
#: runs the frozen loss network only. benchmarks/bench_train_quality.py (johnson, random VGG16,
#: 128 px, 300 steps, 2 styles x 2 seeds, each run twice: as is and with the photos moved by 1e-6;
#: networks scored in fp32): mean loss -0.3 % against fp32 (per style and seed +1.0, -1.2, -2.1,
#: +1.4 %; fp32's own spread up to 5.6 %), so ``train`` (johnson, texture, multistyle) passes the
#: 2 % guard. The whole step in bf16 (``--amp``) did not: +2.8 % (+9.2 % on the scream). The other
#: recipes are not measured yet.
AUTO_BF16: dict[str, bool] = {"adain": True, "superres": True, "train": True}
#: networks whose ``auto`` runs only their residual blocks in bf16 (convolutions under autocast;
#: each block's last norm and the skip connection in float32, see
#: :class:`impasto.nets.johnson.ResidualBlock`) where the whole network in bf16 misses the 1e-2
#: guard. Largest output difference from fp32 measured by benchmarks/bench_perf.py (random
#: weights): johnson 1024 px 8.3e-3, multistyle 512 px 6.6e-3 (a johnson network trained 600
#: steps: 5.0e-3; the whole network in bf16: 1.3e-2), in 0.7x the time of fp32 (channels-last).
AUTO_RESIDUAL_BF16: dict[str, bool] = {"johnson": True, "multistyle": True}
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "fp32": "fp32", "bf16": "bf16", "auto": "auto"}


def normalise_precision(name: str) -> str:
    """``auto``, ``fp32`` or ``bf16`` (``float32``/``bfloat16`` accepted); ValueError otherwise."""
    key = str(name).strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"precision {name!r}: choose from {', '.join(PRECISIONS)}")
    return _ALIASES[key]


def is_precision(name: str) -> bool:
    """Whether ``name`` is a precision (auto, fp32, bf16 or their long spellings)."""
    try:
        normalise_precision(name)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16 in its flags, and
    PyTorch's oneDNN can use them). ``IMPASTO_CPU_BF16=0|1`` overrides the detection."""
    import os

    forced = os.environ.get("IMPASTO_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return False
    try:
        onednn = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    return onednn and bool(flags & {"avx512_bf16", "amx_bf16"})


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_bf16()
    return False


def resolve_precision(name: str, device: torch.device | str, method: str | None = None) -> torch.dtype | None:
    """The autocast dtype for ``name`` on ``device``: ``torch.bfloat16`` or None (float32).
    ``bf16`` is honoured on any CPU or CUDA device (emulated where not native); ``auto`` only
    where native and :data:`AUTO_BF16` allows it for ``method`` (a method or architecture name).
    Other devices (mps) run float32."""
    device = torch.device(device)
    choice = normalise_precision(name)
    if choice == "fp32" or device.type not in ("cpu", "cuda"):
        return None
    if choice == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if AUTO_BF16.get(str(method), False) and native_bf16(device) else None


def residual_precision(name: str, device: torch.device | str, arch: str | None = None) -> torch.dtype | None:
    """The dtype of the residual blocks alone (``torch.bfloat16`` or None): for ``auto`` where
    :func:`resolve_precision` keeps ``arch`` in float32 and :data:`AUTO_RESIDUAL_BF16` has it,
    on a device with native bfloat16."""
    device = torch.device(device)
    if normalise_precision(name) != "auto" or device.type not in ("cpu", "cuda") or resolve_precision(name, device, arch) is not None:
        return None
    return torch.bfloat16 if AUTO_RESIDUAL_BF16.get(str(arch), False) and native_bf16(device) else None


#: methods whose ``auto`` stays fp32 though bf16 runs natively, and what bf16 would cost there
#: (the measurement is in the module docstring); the commands print it as a one-line tip
BF16_TIP = {
    "gatys": "this CPU computes bfloat16 natively: --precision bf16 takes about 0.4x the time, with a final loss "
             "about 1.5 % higher after the same iterations (--precision fp32 keeps float32 without this tip)",
}


def precision_tip(name: str, device: torch.device | str, method: str) -> str | None:
    """A one-line tip when ``name`` (``auto``) keeps ``method`` in fp32 on a CPU that computes
    bfloat16 natively and :data:`BF16_TIP` has the numbers; None otherwise (and for explicit
    choices)."""
    device = torch.device(device)
    if normalise_precision(name) != "auto" or device.type != "cpu" or method not in BF16_TIP:
        return None
    return BF16_TIP[method] if resolve_precision(name, device, method) is None and native_bf16(device) else None


@contextlib.contextmanager
def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; a no-op for None."""
    device = torch.device(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


@contextlib.contextmanager
def encoder_precision(encoder: torch.nn.Module, dtype: torch.dtype | None) -> Iterator[torch.nn.Module]:
    """Set a FeatureExtractor's ``compute_dtype`` for the duration of a ``with`` block (a shared
    encoder is left as it was)."""
    before = getattr(encoder, "compute_dtype", None)
    encoder.compute_dtype = dtype  # type: ignore[assignment]
    try:
        yield encoder
    finally:
        encoder.compute_dtype = before  # type: ignore[assignment]


def precision_name(dtype: torch.dtype | None, residual: torch.dtype | None = None) -> str:
    """``bf16``, ``fp32`` or ``bf16-residual`` (only the residual blocks in bf16): what a
    manifest records as the precision used."""
    if dtype == torch.bfloat16:
        return "bf16"
    return "bf16-residual" if residual == torch.bfloat16 else "fp32"
