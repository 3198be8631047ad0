"""The weights cache: verified downloads, imports and loads.

Files live in ``$IMPASTO_HOME/weights`` or, without IMPASTO_HOME, in torch hub's checkpoint folder
(which honours TORCH_HOME), under the same file names torch.hub uses, so checkpoints a user already
has are reused. A file is only ever put in place by an atomic rename after its size and SHA-256
were checked, and it is checked again every time it is loaded: hashed once per load, and not at
all while the verified-files record (:mod:`.verified`) shows the file unchanged since it was hashed.

Loading is lean: zip-format checkpoints are memory-mapped (``mmap=True``) and only the tensors a
caller asks for (``keys=``) are kept, so a VGG19 file's 400 MB classifier is never read.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import pickle
import shutil
import socket
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, Callable, Collection

import torch

from ..atomic import atomic_path
from ..provenance import sha256_file
from ..errors import ChecksumError, DownloadError, OutputError, WeightsError
from . import verified
from .registry import REGISTRY, WeightSpec

__all__ = [
    "cache_dir",
    "cache_path",
    "sha256_file",
    "file_sha256",
    "verify",
    "cached_path",
    "download",
    "import_file",
    "identify",
    "load_state_dict",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]

_CHUNK = 1 << 20
_USER_AGENT = "impasto (+https://github.com/impasto)"


def cache_dir() -> Path:
    """Where checkpoints are kept: ``$IMPASTO_HOME/weights``, else ``torch.hub.get_dir()/checkpoints``.

    This is the one place in impasto's library code that reads the environment.
    """
    home = os.environ.get("IMPASTO_HOME")
    if home:
        return Path(home).expanduser() / "weights"
    return Path(torch.hub.get_dir()).expanduser() / "checkpoints"


def cache_path(spec: WeightSpec) -> Path:
    """Where ``spec``'s file is (or would be) cached."""
    return cache_dir() / spec.filename


def _fix_hint(spec: WeightSpec) -> str:
    return f"delete it and run `impasto weights download {spec.name}`"


def _import_hint(spec: WeightSpec) -> str:
    return (
        f"download {spec.filename} on a machine with internet access and run "
        f"`impasto weights import {spec.filename}`"
    )


def _expected(spec: WeightSpec, *, digests: bool) -> str:
    """What ``spec`` accepts, for error messages: sizes, or digests (prefixes marked as such)."""
    if not digests:
        sizes = [spec.size] if spec.size is not None else []
        return " or ".join(f"{n} bytes" for n in sizes + [v.size for v in spec.variants]) or "?"
    first = spec.sha256 + ("... (8-hex prefix, the only published part)" if spec.check == "prefix" else "")
    return " or ".join([first] + [v.sha256 for v in spec.variants])


def _check(where: object, spec: WeightSpec, *, size: int, digest: str | None, fix: str) -> None:
    """Raise ChecksumError when ``size``/``digest`` (of the file at ``where``) do not match ``spec``
    (its published file or one of its known variants)."""
    if not spec.size_fits(size):
        raise ChecksumError(
            f"{where}: size mismatch for {spec.name} (expected {_expected(spec, digests=False)}, got {size}); {fix}"
        )
    if digest is not None and not spec.accepts(size, digest):
        raise ChecksumError(
            f"{where}: SHA-256 mismatch for {spec.name} (expected {_expected(spec, digests=True)}, got {digest}); {fix}"
        )


def file_sha256(path: str | os.PathLike[str], *, force: bool = False) -> str:
    """SHA-256 of ``path``, taken from the verified-files record while the file's size, mtime,
    ctime, inode and device are unchanged since it was hashed (``force=True``: always hash)."""
    return verified.file_sha256(path, cache_dir(), lambda p: sha256_file(p), force=force)


def verify(path: str | os.PathLike[str], spec: WeightSpec, *, deep: bool = False) -> str:
    """Check ``path`` has ``spec``'s byte size and SHA-256 and return the digest; ChecksumError says
    how to fix it.

    The digest comes from the verified-files record when the file is unchanged since it was last
    hashed; ``deep=True`` hashes regardless (``impasto weights verify``).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise WeightsError(f"{p}: no such file (weights {spec.name})") from None
    fix = _fix_hint(spec)
    _check(p, spec, size=size, digest=None, fix=fix)  # cheap test first
    digest = file_sha256(p, force=deep)
    _check(p, spec, size=size, digest=digest, fix=fix)
    return digest


_verify = verify  # cached_path's keyword argument shadows the name


def cached_path(spec: WeightSpec, *, verify: bool = True) -> Path | None:
    """The cached file for ``spec`` if there is one (verified unless ``verify=False``), else None.

    A cached file that fails verification raises ChecksumError: it is never silently ignored.
    """
    path = cache_path(spec)
    if not path.is_file():
        return None
    if verify:
        _verify(path, spec)
    return path


def _describe(exc: BaseException) -> str:
    """One short phrase for a transport failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "timed out"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, socket.gaierror):
            return f"host not found ({reason.strerror or reason})"
        return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, _Interrupted):
        return str(exc)
    if isinstance(exc, http.client.IncompleteRead):
        return "transfer interrupted (incomplete read)"
    if isinstance(exc, ConnectionError):
        return f"connection lost ({exc.__class__.__name__})"
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


class _Interrupted(Exception):
    """The server closed the connection before sending all it announced."""


def _fetch(url: str, dest: Path, spec: WeightSpec, progress: Progress | None, timeout: float) -> None:
    """Stream ``url`` into ``dest``; check length, size and SHA-256 (ChecksumError/DownloadError)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    done = 0
    with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
        length = response.headers.get("Content-Length")
        total: int | None = int(length) if length and length.isdigit() else spec.size
        if spec.size is not None and total is not None and total != spec.size:  # fail before fetching a wrong file
            _check(url, spec, size=total or 0, digest=None, fix="the server offers a different file")
        if progress is not None:
            progress(0, total)
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            if spec.size is not None and done + len(chunk) > spec.size:  # never store more than expected
                _check(url, spec, size=done + len(chunk), digest=None, fix="the server sent a different file")
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        if length and length.isdigit() and done != int(length):
            raise _Interrupted(f"transfer interrupted after {done} of {length} bytes")
    _check(url, spec, size=done, digest=digest.hexdigest(), fix="the server sent a different file")


def download(spec: WeightSpec, *, progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """Make sure ``spec``'s verified file is in the cache and return its path.

    A valid cached file is returned without any network request. Otherwise each URL is tried in
    order, streaming into a ``.part`` file inside the cache folder that is renamed into place only
    after its size and SHA-256 match. On failure nothing is left behind and DownloadError (network)
    or ChecksumError (wrong file served) says which URLs were tried and how to import manually.
    ``progress(done_bytes, total_bytes_or_None)`` is called as bytes arrive.
    """
    dest = cache_path(spec)
    if dest.is_file():
        try:
            verify(dest, spec)
            return dest
        except ChecksumError as exc:
            log.warning("%s; downloading it again", exc)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        error = DownloadError(f"cannot create the weights cache {dest.parent} ({exc.strerror or exc}); set IMPASTO_HOME to a writable folder")
        error.reason = f"cannot create {dest.parent}"  # type: ignore[attr-defined]
        raise error from exc

    failures: list[str] = []
    checksum_failed = False
    last: BaseException | None = None
    for url in spec.urls:
        try:
            with atomic_path(dest) as tmp:
                _fetch(url, tmp, spec, progress, timeout)
            return dest
        except ChecksumError as exc:
            checksum_failed = True
            last = exc
            failures.append(str(exc).rsplit("; ", 1)[0])
        except OutputError as exc:
            raise DownloadError(f"cannot write to the weights cache ({exc}); set IMPASTO_HOME to a writable folder") from exc
        except (urllib.error.URLError, http.client.HTTPException, _Interrupted, OSError, ValueError) as exc:
            last = exc
            failures.append(f"{url}: {_describe(exc)}")
    tried = "; ".join(failures)
    if checksum_failed:
        raise ChecksumError(f"could not download {spec.name}: {tried}. Alternatively {_import_hint(spec)}") from last
    error = DownloadError(f"could not download {spec.name} ({tried}); {_import_hint(spec)}")
    error.reason = tried  # type: ignore[attr-defined]  # the short cause, for resolve's warning
    raise error from last


def identify(path: str | os.PathLike[str]) -> WeightSpec | None:
    """The registered checkpoint ``path`` holds (by SHA-256, or a record's published prefix), or None."""
    p = Path(path)
    size = p.stat().st_size
    candidates = [s for s in REGISTRY.values() if s.size_fits(size)]
    if not candidates:
        return None
    digest = file_sha256(p)
    return next((s for s in candidates if s.accepts(size, digest)), None)


def import_file(src: str | os.PathLike[str], name: str) -> Path:
    """Verify a user-supplied file against the record ``name`` and copy it into the cache."""
    from .registry import get_spec

    spec = get_spec(name)
    source = Path(src).expanduser()
    if not source.is_file():
        raise WeightsError(f"{source}: no such file" if not source.exists() else f"{source}: not a file")
    size = source.stat().st_size
    fix = f"it is not the published {spec.filename} (get it from {spec.urls[0]})"
    _check(source, spec, size=size, digest=None, fix=fix)
    _check(source, spec, size=size, digest=file_sha256(source), fix=fix)
    dest = cache_path(spec)
    if dest.exists() and dest.resolve() == source.resolve():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            shutil.copyfile(source, tmp)
            _check(tmp, spec, size=tmp.stat().st_size, digest=sha256_file(tmp), fix=fix)  # the copy, not just the source
    except OutputError as exc:
        raise WeightsError(f"cannot write to the weights cache ({exc}); set IMPASTO_HOME to a writable folder") from exc
    except OSError as exc:
        if isinstance(exc, WeightsError):
            raise
        raise WeightsError(f"{dest}: cannot copy {source} into the weights cache ({exc.strerror or exc})") from exc
    return dest


def _not_a_checkpoint(path: Path, why: str) -> WeightsError:
    return WeightsError(f"{path}: not a PyTorch checkpoint ({why})")


def load_state_dict(
    path: str | os.PathLike[str],
    *,
    spec: WeightSpec | None = None,
    keys: Collection[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Load a state dict safely (``weights_only=True``), verifying it against ``spec`` first if given.

    Files wrapping the state dict as ``{"state_dict": {...}}`` are unwrapped. Anything that is not
    a mapping of names to tensors raises WeightsError. ``keys``: keep only these entries (those the
    file has); zip-format files are memory-mapped, so tensors that are not kept are never read.
    """
    p = Path(path).expanduser()
    if spec is not None:
        verify(p, spec)
    if not p.exists():
        raise WeightsError(f"{p}: no such file")
    if p.is_dir():
        raise WeightsError(f"{p}: is a folder, expected a checkpoint file")
    try:
        # mmap needs the zip format (torch >= 1.6); older "legacy" files are read whole
        obj: Any = torch.load(p, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(p))
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling failed"
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise _not_a_checkpoint(
                p, "it holds Python objects besides tensors, which impasto refuses to unpickle for safety"
            ) from exc
        raise _not_a_checkpoint(p, first) from exc
    except OSError as exc:
        raise WeightsError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes make the unpickler fail in arbitrary ways
        text = str(exc).strip()
        # torch's own RuntimeErrors say what is wrong ("failed finding central directory");
        # KeyErrors and IndexErrors from the unpickler on random bytes say nothing useful.
        why = text.splitlines()[0] if isinstance(exc, RuntimeError) and text else "unrecognised or corrupt data"
        raise _not_a_checkpoint(p, why) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        found = "an empty dict" if isinstance(obj, dict) else type(obj).__name__
        raise _not_a_checkpoint(p, f"expected a state dict of tensors, found {found}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise _not_a_checkpoint(p, f"entry {bad[0]!r} is not a tensor; expected a state dict")
    if keys is None:
        return dict(obj)
    wanted = set(keys)
    return {k: v for k, v in obj.items() if k in wanted}
