"""A folder of photographs as a training set for feed-forward networks.

Any folder works: files are found recursively (nested folders, mixed formats; MS-COCO's
``train2014/*.jpg`` layout just works) and listed in a deterministic sorted order. Each photo is
resized so its shortest side is ``size`` and cropped to ``size`` x ``size`` (centre crop, or a
random crop that depends only on (seed, sample key) so runs are reproducible with any number of
loading workers). Unreadable files never crash training: a quick header check at scan time drops
files that are not images, and a file that still fails to decode is skipped (the next photo is
used in its place) and counted.

Sample keys: index ``i`` of epoch ``e`` is key ``e * len(dataset) + i``; :class:`EpochSampler`
produces them (a seeded permutation per epoch, resumable at any position), so a training run can
stop and continue at exactly the same sample.
"""

from __future__ import annotations

import logging
import os
import random
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ImageError, UsageError
from ..image._common import DEFAULT_MAX_PIXELS

__all__ = ["PhotoFolder", "EpochSampler", "IMAGE_EXTENSIONS", "default_workers", "make_loader", "collate_tracked"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
CROPS = ("center", "random")


def default_workers() -> int:
    """Background loading workers by default: min(2, CPUs)."""
    return min(2, os.cpu_count() or 1)


def _header_ok(path: Path) -> bool:
    """Cheap check at scan time: non-empty and Pillow recognises the header (no decoding)."""
    try:
        if path.stat().st_size == 0:
            return False
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
        return w > 0 and h > 0
    except Exception:  # noqa: BLE001 - any failure means "not a usable image"
        return False


class PhotoFolder(Dataset):
    """Photos under ``root`` as ``size`` x ``size`` image tensors (3xSxS float32 in [0, 1]).

    ``crop``: ``center`` or ``random`` (random offsets derived from ``seed`` and the sample key,
    see the module docstring). ``skipped`` counts files dropped at scan time plus files that failed
    to decode in this process; ``skipped_files`` lists them.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        size: int,
        *,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        crop: str = "random",
        seed: int = 0,
        check_headers: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise UsageError(f"{self.root}: data folder does not exist")
        if not self.root.is_dir():
            raise UsageError(f"{self.root}: is not a folder (give a folder of photos)")
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise UsageError(f"size must be a whole number of pixels >= 8, got {size!r}")
        if crop not in CROPS:
            raise UsageError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
        self.size = size
        self.crop = crop
        self.seed = int(seed)
        self.max_pixels = max_pixels
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        candidates = sorted(
            (p for p in self.root.rglob("*") if p.suffix.lower() in exts and p.is_file() and not any(part.startswith(".") for part in p.relative_to(self.root).parts)),
            key=lambda p: p.relative_to(self.root).as_posix(),
        )
        self.skipped_files: list[Path] = []
        files: list[Path] = []
        for p in candidates:
            if check_headers and not _header_ok(p):
                self.skipped_files.append(p)
            else:
                files.append(p)
        self.files = files
        self.scan_skipped = len(self.skipped_files)
        self._bad: set[int] = set()
        if not self.files:
            extra = f" ({len(self.skipped_files)} unreadable file(s) skipped)" if self.skipped_files else ""
            raise UsageError(f"{self.root}: no readable photos found (looked for {', '.join(exts)} in nested folders){extra}")

    @property
    def skipped(self) -> int:
        """Files skipped so far (unreadable at scan time or when decoded in this process)."""
        return len(self.skipped_files)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int, key: int | None = None, *, crop: str | None = None) -> torch.Tensor:
        """Decode, resize and crop photo ``index`` (raises ImageError if it cannot be read).

        ``key`` seeds a random crop (default: ``index``); ``crop`` overrides the dataset's mode.
        """
        from ..image.io import load_image

        loaded = load_image(self.files[index], max_pixels=self.max_pixels)
        return self._resize_crop(loaded.image, index if key is None else key, crop or self.crop)

    def _resize_crop(self, image: torch.Tensor, key: int, crop: str) -> torch.Tensor:
        from ..image.resize import resize

        s = self.size
        h, w = image.shape[-2:]
        scale = s / min(h, w)
        nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
        image = resize(image, (nh, nw))
        if crop == "random":
            rng = random.Random(self.seed * 1_000_003 + key)
            y, x = rng.randint(0, nh - s), rng.randint(0, nw - s)
        else:
            y, x = (nh - s) // 2, (nw - s) // 2
        return image[0, :, y : y + s, x : x + s].contiguous()

    def fetch(self, key: int) -> tuple[torch.Tensor, list[int]]:
        """The sample for ``key`` and the indices of files that failed on the way.

        A file that fails to decode is skipped: the next index (wrapping) is used instead.
        """
        n = len(self.files)
        index = key % n
        failed: list[int] = []
        for attempt in range(n):
            i = (index + attempt) % n
            if i in self._bad:
                continue
            try:
                return self.load(i, key), failed
            except (ImageError, OSError, ValueError, RuntimeError) as exc:
                self._bad.add(i)
                self.skipped_files.append(self.files[i])
                failed.append(i)
                log.warning("skipping unreadable photo %s: %s", self.files[i], exc)
        raise UsageError(f"{self.root}: none of the {n} photos could be read")

    def __getitem__(self, key: int) -> torch.Tensor:
        return self.fetch(int(key))[0]


class _Tracked(Dataset):
    """Wraps a PhotoFolder so each item also reports the files that failed (for the skip count)."""

    def __init__(self, folder: PhotoFolder) -> None:
        self.folder = folder

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, key: int) -> tuple[torch.Tensor, list[int]]:
        return self.folder.fetch(int(key))


def collate_tracked(items: list[tuple[torch.Tensor, list[int]]]) -> tuple[torch.Tensor, list[int]]:
    """Stack the images; concatenate the failed indices."""
    images = torch.stack([im for im, _ in items])
    failed = [i for _, f in items for i in f]
    return images, failed


class EpochSampler(Sampler[int]):
    """Endless sample keys: a seeded permutation per epoch, starting at sample ``start``.

    Key of position ``p``: epoch ``e = p // n`` and index ``perm_e[p % n]`` give ``e * n + index``.
    ``shuffle=False`` keeps the sorted order. Resuming at ``start = steps * batch_size``
    continues exactly where the previous run stopped.
    """

    def __init__(self, n: int, *, seed: int = 0, start: int = 0, shuffle: bool = True) -> None:
        self.n = int(n)
        self.seed = int(seed)
        self.start = int(start)
        self.shuffle = shuffle

    def permutation(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.n))
        gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        return torch.randperm(self.n, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        p = self.start
        epoch = p // self.n
        perm = self.permutation(epoch)
        while True:
            e, i = divmod(p, self.n)
            if e != epoch:
                epoch, perm = e, self.permutation(e)
            yield e * self.n + perm[i]
            p += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for len(loader)
        return 2**62


def make_loader(folder: PhotoFolder, batch_size: int, *, seed: int = 0, start: int = 0, workers: int | None = None, shuffle: bool = True, pin_memory: bool = False) -> DataLoader[Any]:
    """An endless DataLoader of ``(images BxCxSxS, failed indices)`` batches from sample ``start``.

    ``workers`` background processes (default min(2, CPUs); 0 loads in this process). Batches do
    not depend on the number of workers.
    """
    workers = default_workers() if workers is None else int(workers)
    if workers < 0:
        raise UsageError(f"workers must be >= 0, got {workers}")
    sampler = EpochSampler(len(folder), seed=seed, start=start, shuffle=shuffle)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs.update(persistent_workers=False, prefetch_factor=2)
    return DataLoader(
        _Tracked(folder),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_tracked,
        pin_memory=pin_memory,
        drop_last=True,
        **kwargs,
    )
