"""A training dataset: images, their captions, and the rights to train on each of them.

A dataset is a folder::

    dataset.toml        owner, license, source (required); covers, [images."x.png"] (optional)
    logo-01.png         an image (.png .jpg .jpeg .webp), in subfolders too
    logo-01.txt         its caption, beside it, same name

``dataset.toml``::

    owner = "Northwind Studio"
    license = "LicenseRef-Northwind-Internal"
    source = "in-house product photography, 2026 catalogue"
    covers = ["*"]                    # which images the declaration above covers (globs)
    [images."partner/kit-07.png"]     # one image's own rights (the missing fields inherit)
    owner = "Partner Co"
    license = "CC-BY-4.0"
    source = "https://partner.example/press-kit"

A studio must be able to prove what a LoRA learnt from, so nothing here is guessed: a dataset
without a license, an image the declaration does not cover, an image without a caption, and
a caption without an image are all refused, each problem naming the file and the fix, before
a step of training runs. The manifest lists every file the training reads (``dataset.toml``,
images, captions) as ``<sha256>  <relative path>`` lines sorted by path — the same form as a
weights folder's manifest (engine/hashing.py) — and its sha256 is the dataset's hash, which
the LoRA's registry entry and every output's content credentials record.

Standard library only: the CLI checks a dataset before torch is imported.
"""

from __future__ import annotations

import fnmatch
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol import SfumatoError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATASET_FILE = "dataset.toml"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CAPTION_SUFFIX = ".txt"
_RIGHTS = ("owner", "license", "source")
_TOP_LEVEL = (*_RIGHTS, "covers", "images", "description")
_SHOWN = 10  # problems listed in one error; the rest are counted


class DatasetError(SfumatoError, ValueError):
    """A dataset that must not be trained on. ``problems`` holds one line per refused file,
    each naming the file and the fix; ``path`` is the first file refused."""

    def __init__(self, path: Path, problems: tuple[str, ...]) -> None:
        shown = "\n  ".join(problems[:_SHOWN])
        more = len(problems) - _SHOWN
        tail = f"\n  … and {more} more" if more > 0 else ""
        super().__init__(
            f"refusing to train: {shown}"
            if len(problems) == 1
            else f"refusing to train on this dataset ({len(problems)} problems):\n  {shown}{tail}"
        )
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class Rights:
    """Who owns an image, under which license it may be trained on, and where it came from."""

    owner: str
    license: str
    source: str


@dataclass(frozen=True)
class Sample:
    """One image to train on, with its caption and its rights."""

    image: Path
    caption: str
    rights: Rights
    name: str  # the image's path relative to the dataset folder, with / separators


@dataclass(frozen=True)
class Dataset:
    root: Path
    rights: Rights  # the dataset's own declaration
    samples: tuple[Sample, ...]  # sorted by name
    manifest: str  # "<sha256>  <relative path>\n" per file read, sorted by path
    description: str = ""

    @property
    def sha256(self) -> str:
        """The dataset's hash: sha256 of its manifest."""
        return hashlib.sha256(self.manifest.encode("utf-8")).hexdigest()

    @property
    def license(self) -> str:
        """Every license the images are used under, as an SPDX-style ``A AND B`` expression
        (the dataset's own first): what the trained LoRA's registry entry records."""
        licenses = [self.rights.license]
        for sample in self.samples:
            if sample.rights.license not in licenses:
                licenses.append(sample.rights.license)
        return " AND ".join(licenses)


def load_dataset(folder: Path) -> Dataset:
    """Read and check the dataset in ``folder``; raises :class:`DatasetError` listing every
    problem (each names the file and the fix), or OSError for a file that cannot be read."""
    root = Path(folder)
    toml_path = root / DATASET_FILE
    if not root.is_dir():
        raise DatasetError(root, (f"{root} is not a folder; give the dataset's folder",))
    if not toml_path.is_file():
        raise DatasetError(
            toml_path,
            (
                f"{toml_path} is missing; write it with owner, license and source declaring "
                "the rights to these images (docs/studio.md, Brand LoRAs)",
            ),
        )
    declared = _read_declaration(toml_path)
    rights, covers, overrides, description = declared
    images, captions = _files(root)
    problems: list[tuple[str, str]] = []  # (relative path, message)
    for name in sorted(overrides):
        if name not in images:
            problems.append((
                DATASET_FILE,
                f'{toml_path}: [images."{name}"] names no image in the folder; fix the name '
                "(a path relative to the dataset folder, with /) or remove the table",
            ))  # fmt: skip
    samples = []
    for name in sorted(images):
        path = root / name
        own = overrides.get(name)
        if own is None and not any(fnmatch.fnmatchcase(name, pattern) for pattern in covers):
            problems.append((
                name,
                f"{path} has no declared rights: covers = {list(covers)} in {DATASET_FILE} does "
                f'not match it; add an [images."{name}"] table with owner, license and source, '
                "widen covers, or remove the image",
            ))  # fmt: skip
            continue
        image_rights = Rights(**{**vars(rights), **(own or {})})
        if not image_rights.license.strip():
            problems.append((
                name,
                f'{path} has no license: [images."{name}"] sets license = ""; declare the '
                "license it may be trained under, or remove the image",
            ))  # fmt: skip
            continue
        caption_name = _caption_name(name)
        if caption_name not in captions:
            problems.append((
                name,
                f"{path} has no caption; write one line describing it into "
                f"{root / caption_name}",
            ))  # fmt: skip
            continue
        caption = _read_caption(root / caption_name, problems, caption_name)
        if caption is not None:
            samples.append(Sample(path, caption, image_rights, name))
    for caption_name in sorted(captions - {_caption_name(n) for n in images}):
        problems.append((
            caption_name,
            f"{root / caption_name} is a caption without an image (expected an image named "
            f"{Path(caption_name).stem} with one of {', '.join(IMAGE_SUFFIXES)}); rename or "
            "remove it",
        ))  # fmt: skip
    if not images and not problems:
        problems.append((
            DATASET_FILE,
            f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)}); add the images to train on, "
            "each with a .txt caption beside it",
        ))  # fmt: skip
    if problems:
        problems.sort(key=lambda p: p[0])
        raise DatasetError(root / problems[0][0], tuple(message for _name, message in problems))
    files = sorted({DATASET_FILE, *images, *(_caption_name(n) for n in images)})
    manifest = "".join(f"{_sha256(root / name)}  {name}\n" for name in files)
    return Dataset(root, rights, tuple(samples), manifest, description)


def _read_declaration(
    path: Path,
) -> tuple[Rights, tuple[str, ...], dict[str, dict[str, str]], str]:
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(path, (f"{path} is not valid TOML: {exc}; fix the syntax",)) from None
    except UnicodeDecodeError:
        raise DatasetError(path, (f"{path} is not UTF-8 text; save it as UTF-8",)) from None
    problems = [
        f"{path}: unknown key {key!r}; remove it or fix its name (allowed: {', '.join(_TOP_LEVEL)})"
        for key in data
        if key not in _TOP_LEVEL
    ]
    for key in _RIGHTS:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            what = "the dataset has no license" if key == "license" else f"no {key}"
            problems.append(
                f'{path}: {what}; declare {key} = "..." '
                + (
                    "(an SPDX id such as CC-BY-4.0, or LicenseRef-<your contract>)"
                    if key == "license"
                    else "(who owns the images)"
                    if key == "owner"
                    else "(where the images came from)"
                )
            )
    covers = data.get("covers", ["*"])
    if not (isinstance(covers, list) and all(isinstance(c, str) and c for c in covers)):
        problems.append(f'{path}: covers must be a list of file patterns such as ["*.png"]')
        covers = []
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{path}: description must be a string")
    overrides: dict[str, dict[str, str]] = {}
    images = data.get("images", {})
    if not isinstance(images, dict):
        problems.append(f'{path}: images must be tables such as [images."logo.png"]')
        images = {}
    for name, table in images.items():
        where = f'{path}: [images."{name}"]'
        if not isinstance(table, dict):
            problems.append(f"{where} must be a table of owner, license, source")
            continue
        for key, value in table.items():
            if key not in _RIGHTS:
                problems.append(f"{where}: unknown key {key!r}; use {', '.join(_RIGHTS)}")
            elif not isinstance(value, str):
                problems.append(f"{where}: {key} must be a string, got {value!r}")
        overrides[name] = {k: v for k, v in table.items() if k in _RIGHTS and isinstance(v, str)}
    if problems:
        raise DatasetError(path, tuple(problems))
    rights = Rights(*(data[key].strip() for key in _RIGHTS))
    return rights, tuple(covers), overrides, str(description)


def _files(root: Path) -> tuple[set[str], set[str]]:
    """Image and caption names (relative, /-separated); hidden files and folders are skipped."""
    images: set[str] = set()
    captions: set[str] = set()
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            images.add(relative.as_posix())
        elif suffix == CAPTION_SUFFIX:
            captions.add(relative.as_posix())
    return images, captions


def _caption_name(image: str) -> str:
    return image[: -len(Path(image).suffix)] + CAPTION_SUFFIX


def _read_caption(path: Path, problems: list[tuple[str, str]], name: str) -> str | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        problems.append((name, f"{path} is not UTF-8 text; save the caption as UTF-8"))
        return None
    if not text:
        problems.append((name, f"{path} is empty; write one line describing its image"))
        return None
    return text


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
