"""The device facts (engine/system.py) read from this machine's torch, and what the doctor and
``welcome.system`` make of facts from machines we do not have (named as such: a GPU cannot
run here, so those facts are written by hand)."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from sfumato.engine.system import Gpu, TorchFacts, probe
from sfumato.service.health import Level, torch_findings

from ..protocol.strategies import FAST


def test_probe_reads_this_torch() -> None:
    facts = probe()
    assert facts.torch == torch.__version__
    assert facts.build == ("rocm" if torch.version.hip else "cuda" if torch.version.cuda else "cpu")
    assert len(facts.gpus) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert facts.device_problem == "" and facts.device in ("cpu", "mps", "cuda")


def test_a_device_this_machine_lacks_is_a_problem_not_a_crash() -> None:
    wanted = f"cuda:{len(probe().gpus)}"  # one past the last GPU, or cuda:0 on a CPU machine
    facts = probe(wanted)
    assert facts.device == ""
    assert wanted in facts.device_problem and "cuda" in facts.device_problem.lower()
    (fail,) = [f for f in torch_findings(facts) if f.level is Level.FAIL]
    assert fail.text == facts.device_problem and "--device" in fail.fix


RTX = Gpu(0, "NVIDIA GeForce RTX 4090", 24 * 2**30, 20 * 2**30)


def test_a_cuda_machine_reads_as_ready() -> None:
    facts = TorchFacts(
        "2.5.1+cu124", "cuda", cuda="12.4", gpus=(RTX,), driver="550.54", device="cuda"
    )
    lines = torch_findings(facts)
    assert all(f.level is Level.OK for f in lines), lines
    texts = [f.text for f in lines]
    assert texts[0].startswith("torch 2.5.1+cu124 (CUDA 12.4 build")
    assert "cuda:0 NVIDIA GeForce RTX 4090: 24.0 GiB, 20.0 GiB free" in texts
    assert "GPU driver: 550.54" in texts
    assert texts[-1] == "jobs will run on cuda:0 NVIDIA GeForce RTX 4090"


def test_a_cpu_build_says_which_build_to_install() -> None:
    (warn,) = [
        f
        for f in torch_findings(TorchFacts("2.5.1+cpu", "cpu", device="cpu"))
        if f.level is Level.WARN
    ]
    assert "CPU" in warn.text and "CUDA or ROCm build" in warn.fix


def test_a_rocm_build_that_sees_no_gpu_points_at_the_driver() -> None:
    facts = TorchFacts("2.5.1+rocm6.2", "rocm", hip="6.2", device="cpu")
    lines = torch_findings(facts)
    assert lines[0].text.startswith("torch 2.5.1+rocm6.2 (ROCm 6.2 build")
    (warn,) = [f for f in lines if f.level is Level.WARN]
    assert "ROCM build of torch sees no GPU (no GPU driver found)" in warn.fix
    assert "rocm-smi" in warn.fix


@FAST
@given(
    st.lists(st.integers(1, 2**45), min_size=1, max_size=8),
    st.data(),
)
def test_the_device_label_and_memory_are_the_chosen_gpus(
    totals: list[int], data: st.DataObject
) -> None:
    gpus = tuple(Gpu(i, f"gpu{i}", total) for i, total in enumerate(totals))
    index = data.draw(st.integers(0, len(gpus) - 1))
    device = data.draw(st.sampled_from([f"cuda:{index}", *(["cuda"] if index == 0 else [])]))
    facts = TorchFacts("t", "cuda", gpus=gpus, device=device)
    assert facts.vram() == totals[index]
    assert facts.device_label() == f"cuda:{index} gpu{index}"
    assert TorchFacts("t", "cpu", gpus=gpus, device="cpu").vram() == 0


devices = st.sampled_from(["cpu", "mps", "cuda", "cuda:0", "cuda:1", ""])


@FAST
@given(
    st.sampled_from(["cuda", "rocm", "cpu"]),
    st.lists(st.integers(1, 2**40), max_size=3),
    devices,
    st.booleans(),
    st.text(max_size=20),
)
def test_one_verdict_about_the_device_whatever_the_machine(
    build: str, totals: list[int], device: str, mps: bool, problem: str
) -> None:
    """Exactly one line says where jobs run or why they cannot; FAIL only for a device the
    machine lacks; every WARN and FAIL carries a fix."""
    gpus = tuple(Gpu(i, f"gpu{i}", t) for i, t in enumerate(totals))
    facts = TorchFacts("2.5.1", build, gpus=gpus, mps=mps, device="" if problem else device or "cpu",
                       device_problem=problem)  # fmt: skip
    lines = torch_findings(facts)
    verdicts = [f for f in lines if f.text.startswith("jobs will run on") or f.level is Level.FAIL]
    assert len(verdicts) == 1, lines
    assert (verdicts[0].level is Level.FAIL) == bool(problem)
    assert all(f.fix for f in lines if f.level in (Level.WARN, Level.FAIL))
    assert len([f for f in lines if f.text.startswith("cuda:")]) == len(gpus)
