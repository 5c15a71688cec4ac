"""The server machine's facts as a host shows them: one line and the warnings, from
``welcome.system`` through the session's offer, kept across a ``models`` answer."""

from __future__ import annotations

from hypothesis import given

from sfumato.client import Connected
from sfumato.hostsession import HostSession, Offer
from sfumato.protocol import ModelInfo, Models, SystemInfo, Welcome

from ..protocol.strategies import FAST, system_infos


def test_an_old_server_says_nothing_about_its_machine() -> None:
    offer = Offer.of(Welcome("0.1", 1))
    assert offer.system_line() == "" and offer.system_warnings() == ()


@FAST
@given(system_infos)
def test_the_line_and_warnings_are_the_welcomes_and_survive_a_models_answer(
    system: SystemInfo,
) -> None:
    session: HostSession[str] = HostSession()
    session.handle(Connected(Welcome("0.1", 1, system=system)))
    assert session.offer.system_line() == system.line()
    assert session.offer.system_warnings() == system.warnings
    session.handle(Models((ModelInfo("m", "sd15", "base"),), "m"))
    assert session.offer.default_model == "m"
    assert session.offer.system_line() == system.line()
    assert session.offer.system_warnings() == system.warnings


def test_a_cpu_server_line_and_its_warning() -> None:
    warning = "jobs will run on the CPU: minutes per real image; install torch's CUDA build"
    offer = Offer.of(Welcome("0.1", 1, system=SystemInfo("cpu", 0, "2.5.1", 21, 13, (warning,))))
    assert offer.system_line() == "cpu · torch 2.5.1 · 21 of 34 models present"
    assert offer.system_warnings() == (warning,)
