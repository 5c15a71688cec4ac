"""The registry's ``config`` field (issue 15 item 2): a single-file checkpoint's own diffusers
configuration folder, resolved like its source; refused anywhere else, naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfumato.registry import Registry, RegistryError


def load(tmp_path: Path, source: str, config: str) -> Registry:
    path = tmp_path / "models.toml"
    path.write_text(
        f'default = "m"\n[models.m]\nkind = "base"\nfamily = "sd15"\nsource = "{source}"\n{config}',
        encoding="utf-8",
    )
    return Registry.load(path)


def test_config_resolves_against_the_registry_and_defaults_to_the_familys(tmp_path: Path) -> None:
    assert load(tmp_path, "file:x.safetensors", "").get("m").config == ""
    entry = load(tmp_path, "file:x.safetensors", 'config = "inpaint-configs"\n').get("m")
    assert entry.config == str((tmp_path / "inpaint-configs").resolve())
    absolute = load(tmp_path, "file:x.safetensors", f'config = "{tmp_path / "c"}"\n').get("m")
    assert absolute.config == str(tmp_path / "c")


@pytest.mark.parametrize(
    ("source", "config", "says"),
    [
        ("hub:org/repo", 'config = "c"\n', 'only for source = "file:'),
        ("dir:folder", 'config = "c"\n', "remove it"),
        ("file:x.safetensors", "config = 3\n", "folder path string"),
    ],
)
def test_config_elsewhere_is_refused_naming_the_fix(
    tmp_path: Path, source: str, config: str, says: str
) -> None:
    with pytest.raises(RegistryError, match=r"\[models\.m\]: config") as caught:
        load(tmp_path, source, config)
    assert says in str(caught.value)
