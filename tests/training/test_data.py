"""PhotoFolder and the resumable sampler: any folder works, broken files are skipped and counted."""

from __future__ import annotations

import logging

import pytest
import torch

from impasto.data import EpochSampler, PhotoFolder, make_loader
from impasto.errors import UsageError


def test_recursive_sorted_listing_and_header_check(photo_folder):
    folder = PhotoFolder(photo_folder, 32, seed=0)
    names = [p.relative_to(photo_folder).as_posix() for p in folder.files]
    assert names == sorted(names)
    assert "a/b/p2.webp" in names and "a/p4.PNG" in names and "p3.bmp" in names
    assert "notes.txt" not in names
    assert "a/zz_header_garbage.jpg" not in names, "dropped by the header check"
    assert folder.scan_skipped == 1 and folder.skipped == 1
    x = folder[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_corrupt_file_is_skipped_lazily_and_counted(photo_folder, caplog):
    folder = PhotoFolder(photo_folder, 32)
    bad = [i for i, p in enumerate(folder.files) if p.name == "zz_truncated.png"]
    assert bad, "a truncated file passes the cheap header check"
    with caplog.at_level(logging.WARNING):
        image, failed = folder.fetch(bad[0])
    assert image.shape == (3, 32, 32)
    assert failed == bad
    assert folder.skipped == 2
    assert "zz_truncated.png" in caplog.text
    folder.fetch(bad[0])
    assert folder.skipped == 2, "counted once"


def test_random_crops_depend_only_on_seed_and_key(photo_folder):
    a = PhotoFolder(photo_folder, 32, seed=3)
    b = PhotoFolder(photo_folder, 32, seed=3)
    assert torch.equal(a[1], b[1])
    assert torch.equal(a.load(0, crop="center"), b.load(0, crop="center"))


def test_empty_or_missing_folder_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no readable photos"):
        PhotoFolder(tmp_path / "empty", 32)
    with pytest.raises(UsageError, match="does not exist"):
        PhotoFolder(tmp_path / "missing", 32)


def test_sampler_is_seeded_endless_and_resumable():
    s = EpochSampler(5, seed=1)
    it = iter(s)
    keys = [next(it) for _ in range(12)]
    assert sorted(k % 5 for k in keys[:5]) == list(range(5)), "each epoch is a permutation"
    assert [k // 5 for k in keys] == [0] * 5 + [1] * 5 + [2] * 2
    resumed = iter(EpochSampler(5, seed=1, start=7))
    assert [next(resumed) for _ in range(5)] == keys[7:12]
    other = iter(EpochSampler(5, seed=2))
    assert [next(other) for _ in range(5)] != keys[:5]


def test_batches_do_not_depend_on_the_number_of_workers(tmp_path, photo_folder_factory):
    root = photo_folder_factory(tmp_path / "w", n=5, broken=False)
    folder = PhotoFolder(root, 32, seed=0)
    serial = iter(make_loader(folder, 2, seed=0, workers=0))
    parallel = iter(make_loader(folder, 2, seed=0, workers=2))
    for _ in range(3):
        (a, fa), (b, fb) = next(serial), next(parallel)
        assert torch.equal(a, b) and fa == fb
