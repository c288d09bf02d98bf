"""Device and dtype choice (defaults, explicit choices, and what can't be had here says so), and releasing
mapped weights from memory."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest
import torch

from process_memory import resident_kb
from segserve.engine.loading import release_mapped_pages, select_device, select_dtype
from segserve.errors import InvalidParameterError


@pytest.mark.parametrize(
    ("device", "dtype", "expected"),
    [
        ("cpu", None, torch.float32),  # fp32 on CPU by default
        ("cuda", None, torch.bfloat16),  # bf16 on CUDA by default
        ("cpu", "bfloat16", torch.bfloat16),  # explicit choice wins
        ("cpu", "FP16", torch.float16),  # short names, any case
        ("cpu", torch.float16, torch.float16),  # torch dtypes accepted as-is
    ],
)
def test_dtype_selection(device, dtype, expected):
    assert select_dtype(dtype, torch.device(device)) == expected


def test_unknown_dtype_names_the_choices():
    with pytest.raises(InvalidParameterError, match=r"use one of .*float32") as info:
        select_dtype("int8", torch.device("cpu"))
    assert info.value.param == "dtype"


def test_no_device_picks_the_best_available():
    best = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert select_device(None).type == best
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ("tpu", "Unknown device"),  # not a torch device at all
        ("meta", "Unsupported device"),  # a torch device segserve can't run on
        ("mps", "Metal is not available"),  # Apple GPU on a machine without one
    ],
)
def test_bad_device_is_a_parameter_error(device, match):
    with pytest.raises(InvalidParameterError, match=match) as info:
        select_device(device)
    assert info.value.param == "device"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_says_use_cpu():
    with pytest.raises(InvalidParameterError, match="no CUDA GPU is visible") as info:
        select_device("cuda")
    assert info.value.param == "device"


# --- release_mapped_pages --------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc: Linux only (a no-op elsewhere)")
@pytest.mark.parametrize(
    ("flags", "write", "released"),
    [
        (mmap.MAP_SHARED, False, True),  # OpenVINO's IR: a shared mapping, only read
        (mmap.MAP_PRIVATE, False, True),  # safetensors as torch maps it: private, only read
        (mmap.MAP_PRIVATE, True, False),  # a page written (copy on write): dropping it would lose the write
    ],
)
def test_release_mapped_pages(tmp_path, flags, write, released):
    path = tmp_path / "weights.bin"
    content = np.random.default_rng(0).integers(0, 256, 8 << 20, dtype=np.uint8)
    path.write_bytes(content.tobytes())
    prot = mmap.PROT_READ | (mmap.PROT_WRITE if flags == mmap.MAP_PRIVATE else 0)
    with open(path, "r+b") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, flags=flags, prot=prot)
    view = np.frombuffer(mapped, dtype=np.uint8)
    assert int(view[::4096].sum()) == int(content[::4096].sum())  # every page read: resident
    if write:
        view[0] ^= 0xFF
    assert resident_kb(path) > 0
    assert (release_mapped_pages(path) > 0) == released
    if released:
        assert resident_kb(path) == 0
    # Released pages read back from the file; a written page keeps what was written.
    expected = content.copy()
    if write:
        expected[0] ^= 0xFF
    np.testing.assert_array_equal(view, expected)
    del view
    mapped.close()


def test_release_mapped_pages_of_an_unmapped_file_is_nothing(tmp_path):
    path = tmp_path / "never-mapped.bin"
    path.write_bytes(b"\0" * 4096)
    assert release_mapped_pages(path) == 0
