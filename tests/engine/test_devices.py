"""Device and dtype choice, decided from a description of the machine (no GPU needed)."""

from __future__ import annotations

import pytest
import torch

from sfumato.engine import choose_device, choose_dtype
from sfumato.engine.devices import Available

CPU_ONLY = Available(cuda_devices=0, mps=False)
TWO_GPUS = Available(cuda_devices=2, mps=False)
MAC = Available(cuda_devices=0, mps=True)


@pytest.mark.parametrize(
    ("available", "expected"), [(CPU_ONLY, "cpu"), (TWO_GPUS, "cuda"), (MAC, "mps")]
)
def test_auto_picks_the_best_device_present(available: Available, expected: str) -> None:
    assert choose_device(None, env={}, available=available) == expected
    assert choose_device("auto", env={}, available=available) == expected


def test_argument_overrides_environment_and_environment_overrides_auto() -> None:
    env = {"SFUMATO_DEVICE": "cuda:1"}
    assert choose_device(None, env=env, available=TWO_GPUS) == "cuda:1"
    assert choose_device("cpu", env=env, available=TWO_GPUS) == "cpu"
    assert choose_device(" CUDA ", env={}, available=TWO_GPUS) == "cuda"


@pytest.mark.parametrize(
    ("requested", "available", "message"),
    [
        ("gpu", TWO_GPUS, "not a device"),
        ("cuda", CPU_ONLY, "no CUDA device"),
        ("cuda:2", TWO_GPUS, "cuda:0 to cuda:1"),
        ("mps", CPU_ONLY, "MPS is not available"),
        ("mps:0", MAC, "MPS has no index"),
    ],
)
def test_impossible_requests_name_the_fix(
    requested: str, available: Available, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        choose_device(requested, env={}, available=available)


def test_a_bad_environment_value_is_named_as_such() -> None:
    with pytest.raises(ValueError, match="SFUMATO_DEVICE"):
        choose_device(None, env={"SFUMATO_DEVICE": "tpu"}, available=CPU_ONLY)


def test_dtype_half_on_gpus_full_on_cpu_and_for_tiny() -> None:
    assert choose_dtype("cuda", tiny=False) == torch.float16
    assert choose_dtype("mps", tiny=False) == torch.float16
    assert choose_dtype("cpu", tiny=False) == torch.float32
    assert choose_dtype("cuda:1", tiny=True) == torch.float32


def test_probe_reports_this_machine_consistently_with_torch() -> None:
    probe = Available.probe()
    assert (probe.cuda_devices > 0) == torch.cuda.is_available()
    assert choose_device(None, env={}) in {"cpu", "cuda", "mps"}
