"""Training datasets (pure): rights declared or refused with the reason, the manifest hash;
trained-LoRA registry entries written and approved as text edits that read back exactly."""

from __future__ import annotations

import hashlib
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfumato.registry import Registry, RegistryError
from sfumato.registry.editing import add_entry, approve
from sfumato.training import DatasetError, TrainOptions, defaults_for, load_dataset
from sfumato.training.options import OptionError

DECLARED = 'owner = "Northwind"\nlicense = "LicenseRef-Northwind"\nsource = "in-house shoot"\n'


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return folder


def test_a_declared_dataset_reads_with_its_manifest(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "dataset.toml": DECLARED + '[images."sub/b.jpg"]\nlicense = "CC-BY-4.0"\n',
        "a.png": b"png-a", "a.txt": "a red logo\n", "sub/b.jpg": b"jpg-b", "sub/b.txt": "blue",
        "notes.md": "not read", ".hidden/c.png": b"skipped",
    })  # fmt: skip
    data = load_dataset(root)
    assert [s.name for s in data.samples] == ["a.png", "sub/b.jpg"]
    assert [s.caption for s in data.samples] == ["a red logo", "blue"]
    assert data.samples[1].rights.license == "CC-BY-4.0"
    assert data.samples[1].rights.owner == "Northwind"  # inherited from the declaration
    assert data.license == "LicenseRef-Northwind AND CC-BY-4.0"
    names = ["a.png", "a.txt", "dataset.toml", "sub/b.jpg", "sub/b.txt"]
    expected = "".join(
        f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}\n" for n in names
    )
    assert data.manifest == expected  # what `sha256sum` prints for the sorted files
    assert data.sha256 == hashlib.sha256(expected.encode()).hexdigest()


def test_changing_any_file_changes_the_dataset_hash(tmp_path: Path) -> None:
    root = write(tmp_path, {"dataset.toml": DECLARED, "a.png": b"1", "a.txt": "cap"})
    first = load_dataset(root).sha256
    (root / "a.txt").write_text("another caption")
    second = load_dataset(root).sha256
    (root / "a.png").write_bytes(b"2")
    third = load_dataset(root).sha256
    assert len({first, second, third}) == 3


@pytest.mark.parametrize(
    ("toml", "files", "reason"),
    [
        ('owner = "x"\nsource = "y"\n', {}, "the dataset has no license"),
        ('owner = "x"\nsource = "y"\nlicense = "  "\n', {}, "the dataset has no license"),
        ('license = "x"\nsource = "y"\n', {}, "no owner"),
        (DECLARED + 'covers = ["*.jpg"]\n', {}, "a.png has no declared rights"),
        (DECLARED + '[images."a.png"]\nlicense = ""\n', {}, "a.png has no license"),
        (DECLARED + '[images."gone.png"]\nlicense = "x"\n', {}, "names no image"),
        (DECLARED, {"a.txt": None}, "a.png has no caption"),
        (DECLARED, {"a.txt": ""}, "is empty"),
        (DECLARED, {"z.txt": "orphan"}, "z.txt is a caption without an image"),
        (DECLARED + "colour = 1\n", {}, "unknown key 'colour'"),
        ("license = [", {}, "is not valid TOML"),
    ],
)
def test_a_dataset_without_rights_is_refused_with_the_reason(
    tmp_path: Path, toml: str, files: dict[str, str | None], reason: str
) -> None:
    content: dict[str, str | bytes] = {"dataset.toml": toml, "a.png": b"img", "a.txt": "cap"}
    for name, text in files.items():
        if text is None:
            del content[name]
        else:
            content[name] = text
    with pytest.raises(DatasetError) as caught:
        load_dataset(write(tmp_path, content))
    assert reason in str(caught.value), caught.value
    assert any(word in str(caught.value) for word in ("declare", "add", "write", "fix", "remove"))


def test_a_folder_without_a_declaration_or_images_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"dataset.toml is missing; write it with owner"):
        load_dataset(tmp_path)
    write(tmp_path, {"dataset.toml": DECLARED})
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset(tmp_path)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    root = write(tmp_path, {
        "dataset.toml": DECLARED + 'covers = ["ok*"]\n',
        "ok.png": b"1", "ok.txt": "fine", "bad1.png": b"2", "bad1.txt": "x", "bad2.png": b"3",
    })  # fmt: skip
    with pytest.raises(DatasetError) as caught:
        load_dataset(root)
    assert len(caught.value.problems) == 2
    assert caught.value.path == root / "bad1.png"


_names = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    covered=st.sets(_names.map(lambda n: "c" + n), max_size=4),
    uncovered=st.sets(_names.map(lambda n: "x" + n), max_size=3),
    overridden=st.data(),
)
def test_exactly_the_images_without_rights_are_refused(
    tmp_path_factory: pytest.TempPathFactory,
    covered: set[str],
    uncovered: set[str],
    overridden: st.DataObject,
) -> None:
    """Images matching covers, or with their own table, train; every other image is named in
    the refusal, and only those."""
    rescued = overridden.draw(st.sets(st.sampled_from(sorted(uncovered)))) if uncovered else set()
    root = tmp_path_factory.mktemp("ds")
    toml = (
        DECLARED
        + 'covers = ["[!x]*"]\n'
        + "".join(f'[images."{n}.png"]\nlicense = "CC0-1.0"\n' for n in sorted(rescued))
    )
    files: dict[str, str | bytes] = {"dataset.toml": toml}
    for n in covered | uncovered:
        files[f"{n}.png"] = n.encode()
        files[f"{n}.txt"] = f"caption {n}"
    write(root, files)
    refused = uncovered - rescued
    if not covered and not uncovered:
        with pytest.raises(DatasetError, match="holds no images"):
            load_dataset(root)
    elif refused:
        with pytest.raises(DatasetError) as caught:
            load_dataset(root)
        assert sorted(p.split(" has no declared rights")[0] for p in caught.value.problems) == [
            str(root / f"{n}.png") for n in sorted(refused)
        ]
    else:
        data = load_dataset(root)
        assert {s.name for s in data.samples} == {f"{n}.png" for n in covered | rescued}
        assert all(
            s.rights.license == ("CC0-1.0" if s.name[:-4] in rescued else "LicenseRef-Northwind")
            for s in data.samples
        )


def test_options_defaults_per_family_and_errors_name_the_flag() -> None:
    assert defaults_for("sdxl").resolution == 1024 and defaults_for("sd15").resolution == 512
    assert defaults_for("sd15", tiny=True).resolution == 64
    assert defaults_for("sd15", rank=8, steps=None).rank == 8
    for bad, flag in ((dict(rank=0), "--rank"), (dict(learning_rate=-1.0), "--lr"),
                      (dict(resolution=100), "--resolution"), (dict(steps=1.5), "--steps"),
                      (dict(seed=-1), "--seed")):  # fmt: skip
        with pytest.raises(OptionError, match=flag):
            TrainOptions(**bad).check()  # type: ignore[arg-type]


TRAINED = {
    "kind": "lora", "family": "sd15", "source": "file:brand/brand.safetensors",
    "license": "LicenseRef-X", "approved": False, "dataset_sha256": "ab" * 32,
    "base_model": "tiny-sd", "base_sha256": "cd" * 32, "sha256": "ef" * 32,
}  # fmt: skip


def test_a_trained_entry_is_appended_unapproved_then_approved(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text('# ours\ninclude_builtin = true\n[models.keep]\nkind = "lora"\n'
                    'family = "sd15"\nsource = "tiny:sd15-lora-style"\napproved = false\n')  # fmt: skip
    entry = add_entry(path, "brand.v2", dict(TRAINED))
    assert not entry.approved and entry.dataset_sha256 == "ab" * 32
    assert entry.source == f"file:{(tmp_path / 'brand/brand.safetensors').resolve()}"
    assert Registry.load(path).get("brand.v2") == entry  # the server reads the same entry
    with pytest.raises(RegistryError, match="already has an entry"):
        add_entry(path, "brand.v2", dict(TRAINED))
    approved, changed = approve(path, "brand.v2")
    assert changed and approved.approved
    again, changed = approve(path, "brand.v2")
    assert not changed and again.approved
    registry = Registry.load(path)
    assert registry.get("brand.v2").approved and not registry.get("keep").approved
    assert path.read_text().startswith("# ours\n")  # the studio's text stays
    with pytest.raises(RegistryError, match="built-in entry"):
        approve(path, "tiny-sd")


def test_trained_fields_are_checked(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="dataset_sha256 must be 64 hexadecimal"):
        add_entry(tmp_path / "r.toml", "x", {**TRAINED, "dataset_sha256": "nope"})
    with pytest.raises(RegistryError, match='only for kind = "lora"'):
        add_entry(tmp_path / "r.toml", "y", {**TRAINED, "kind": "base", "source": "tiny:sd15"})
    assert not (tmp_path / "r.toml").exists()  # a refused edit writes nothing


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(license=st.text(max_size=40), description=st.text(max_size=40))
def test_any_text_reads_back_exactly(
    tmp_path_factory: pytest.TempPathFactory, license: str, description: str
) -> None:
    path = tmp_path_factory.mktemp("reg") / "registry.toml"
    add_entry(path, "brand", {**TRAINED, "license": license, "description": description})
    entry = Registry.load(path).get("brand")
    assert (entry.license, entry.description) == (license, description)
