"""Registry entries for conditioning: ControlNets per family and kind, LoRAs, preview decoders."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfumato.registry import NoControlNet, Registry, RegistryError, UnknownModel

BASE = 'default = "b"\n[models.b]\nkind = "base"\nfamily = "sd15"\nsource = "tiny:sd15"\n'


def _load(tmp_path: Path, text: str) -> Registry:
    path = tmp_path / "models.toml"
    path.write_text(BASE + text)
    return Registry.load(path)


def test_builtin_controlnets_match_tininess_family_and_kind() -> None:
    reg = Registry.load(None)
    assert reg.controlnet("sd15", "depth", tiny=True).name == "tiny-sd-depth"
    assert reg.controlnet("sd15", "normal").source == "hub:lllyasviel/control_v11p_sd15_normalbae"
    assert reg.controlnet("sdxl", "canny").source == "hub:diffusers/controlnet-canny-sdxl-1.0"
    with pytest.raises(NoControlNet) as caught:
        reg.controlnet("sdxl", "pose")
    assert isinstance(caught.value, UnknownModel)
    assert "no pose ControlNet is registered for the sdxl family" in str(caught.value)
    assert "canny, depth" in str(caught.value)


def test_lora_lookup_checks_kind_and_family() -> None:
    reg = Registry.load(None)
    assert reg.lora("tiny-sd-style", "sd15").kind == "lora"
    with pytest.raises(UnknownModel):
        reg.lora("nope", "sd15")
    with pytest.raises(
        ValueError, match=r"LoRA for sdxl, but the model is sd15; pick one of .*tiny-sd-style"
    ):
        reg.lora("tiny-sdxl-style", "sd15")
    with pytest.raises(ValueError, match="is a controlnet, not a LoRA"):
        reg.lora("tiny-sd-depth", "sd15")


def test_preview_decoder_lookup_never_fails() -> None:
    reg = Registry.load(None)
    assert reg.preview("sd15").name == "taesd"  # type: ignore[union-attr]
    assert reg.preview("sdxl", tiny=True).name == "tiny-sdxl-preview"  # type: ignore[union-attr]
    assert Registry.parse(BASE).preview("sd15") is None


def test_approved_controlnet_wins_over_unapproved(tmp_path: Path) -> None:
    text = "".join(
        f'[models.{n}]\nkind = "controlnet"\nfamily = "sd15"\ncontrol = "canny"\n'
        f'source = "hub:x/{n}"\napproved = {a}\n'
        for n, a in (("a-cn", "false"), ("b-cn", "true"))
    )
    assert _load(tmp_path, text).controlnet("sd15", "canny").name == "b-cn"


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ('[models.c]\nkind = "controlnet"\nfamily = "sd15"\nsource = "hub:x"\n', "needs control = one of depth"),
        ('[models.c]\nkind = "controlnet"\nfamily = "sd15"\ncontrol = "fog"\nsource = "hub:x"\n', "got 'fog'"),
        ('[models.c]\nkind = "lora"\nfamily = "sd15"\ncontrol = "depth"\nsource = "hub:x"\n', "control is only for"),
        ('[models.c]\nkind = "lora"\nfamily = "sd15"\nsource = "tiny:sd15-preview"\n', 'set kind = "preview"'),
        ('[models.c]\nkind = "lora"\nfamily = "sdxl"\nsource = "tiny:sd15-lora-style"\n', 'set family = "sd15"'),
    ],
)  # fmt: skip
def test_bad_conditioning_entries_name_the_fix(tmp_path: Path, entry: str, words: str) -> None:
    with pytest.raises(RegistryError, match=words):
        _load(tmp_path, entry)


def test_model_infos_show_the_control_kind() -> None:
    infos = {i.name: i for i in Registry.load(None).infos()}
    assert infos["sd15-pose"].kind == "controlnet" and infos["sd15-pose"].control == "pose"
    assert infos["tiny-sd-style"].control == ""
