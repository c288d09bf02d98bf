"""Device and dtype choice: defaults, explicit choices, and what can't be had here says so."""

from __future__ import annotations

import pytest
import torch

from segserve.engine.loading import select_device, select_dtype
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
