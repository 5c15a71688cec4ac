"""The TOML model registry: the built-in entries, user files, and errors that name the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sfumato.protocol import SfumatoError
from sfumato.registry import Registry, RegistryError, UnknownModel

ENTRY = '[models.{name}]\nkind = "base"\nfamily = "sd15"\nsource = "{source}"\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_builtin_registry() -> None:
    reg = Registry.load(None)
    assert reg.default == "tiny-sd"
    assert set(reg.of_kind("base")) == {
        "tiny-sd", "tiny-sdxl", "sd15", "sdxl", "tiny-sd-turbo", "sdxl-turbo", "sd-turbo"
    }  # fmt: skip
    assert reg.get("tiny-sdxl").family == "sdxl" and reg.get("tiny-sdxl").tiny
    assert reg.get("sd15").source == "hub:stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert reg.get("sdxl").license == "openrail++" and not reg.get("sdxl").tiny
    assert reg.get(None).name == "tiny-sd"


def test_infos_never_expose_sources(tmp_path: Path) -> None:
    path = _write(tmp_path, 'default = "mine"\n' + ENTRY.format(name="mine", source="dir:w"))
    info = {i.name: i for i in Registry.load(path).infos()}["mine"]
    assert info.family == "sd15" and info.kind == "base" and not info.tiny
    assert str(tmp_path) not in repr(info)
    tiny_bases = {i.name for i in Registry.load(None).infos() if i.tiny and i.kind == "base"}
    assert tiny_bases == {"tiny-sd", "tiny-sdxl", "tiny-sd-turbo"}


def test_user_file_with_builtin_entries_and_relative_paths(tmp_path: Path) -> None:
    text = "include_builtin = true\n" + ENTRY.format(name="sd15", source="dir:weights/sd15")
    reg = Registry.load(_write(tmp_path, text))
    assert reg.default == "tiny-sd"  # inherited with the built-in entries
    assert "tiny-sdxl" in reg
    assert reg.get("sd15").source == f"dir:{(tmp_path / 'weights' / 'sd15').resolve()}"


def test_user_file_alone_has_only_its_entries(tmp_path: Path) -> None:
    text = 'default = "a"\n' + ENTRY.format(name="a", source="file:/abs/a.safetensors")
    reg = Registry.load(_write(tmp_path, text))
    assert reg.names() == ("a",)
    assert reg.get("a").location == str(Path("/abs/a.safetensors").resolve())


def test_unknown_model_lists_names_and_points_at_sfumato_models() -> None:
    with pytest.raises(UnknownModel) as caught:
        Registry.load(None).get("sd2")
    assert isinstance(caught.value, LookupError) and isinstance(caught.value, SfumatoError)
    message = str(caught.value)
    assert "'sd2'" in message and "tiny-sdxl" in message and "sfumato models" in message


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("default = [", ["not valid TOML"]),
        ('default = "a"\n[models.a]\nkind = "base"\nfamily = "sd15"\n', ["[models.a]", "source"]),
        ('default = "a"\n' + ENTRY.format(name="a", source="s3:bucket"), ["[models.a]", "source"]),
        ('default = "a"\n' + ENTRY.format(name="a", source="tiny:sd3"), ["tiny:sd15"]),
        ('default = "a"\n' + ENTRY.format(name="a", source="tiny:sdxl"), ['family = "sdxl"']),
        ('default = "a"\n' + ENTRY.format(name="a", source="hub:x") + "licence = 'MIT'\n",
         ["[models.a]", "'licence'", "license"]),
        ('default = "a"\n' + ENTRY.format(name="a", source="hub:x").replace("base", "vae"),
         ["[models.a]", "kind", "controlnet"]),
        ('default = "a"\n' + ENTRY.format(name="a", source="hub:x") + "approved = 'yes'\n",
         ["[models.a]", "approved"]),
        ('default = "b"\n' + ENTRY.format(name="a", source="hub:x"), ["default", "'b'", "a"]),
        (ENTRY.format(name="a", source="hub:x"), ["no default model"]),
        ('default = "a"\nmodel = 1\n' + ENTRY.format(name="a", source="hub:x"), ["'model'"]),
        ('default = "a"\n', ["names no models"]),
    ],
)  # fmt: skip
def test_invalid_registry_names_entry_field_and_fix(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    with pytest.raises(RegistryError) as caught:
        Registry.load(_write(tmp_path, text))
    assert isinstance(caught.value, ValueError)
    for name in names:
        assert name in str(caught.value)
    assert str(tmp_path / "models.toml") in str(caught.value)


def test_default_must_be_a_base_model(tmp_path: Path) -> None:
    text = 'default = "c"\n' + ENTRY.format(name="c", source="hub:x").replace("base", "lora")
    with pytest.raises(RegistryError, match="must be a base model"):
        Registry.load(_write(tmp_path, text))


def test_missing_file_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        Registry.load(tmp_path / "absent.toml")


def test_registry_imports_no_torch() -> None:
    code = "import sys, sfumato.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
