"""Batch plans: a TOML file naming prompts, audience segments, seeds, styles and sizes,
expanded into the full matrix of items. Pure: no network, no images."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from ..protocol import LoraRef, SfumatoError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class PlanError(SfumatoError, ValueError):
    pass


@dataclass(frozen=True)
class Style:
    name: str
    loras: tuple[LoraRef, ...] = ()


@dataclass(frozen=True)
class Item:
    """One output of the matrix; ``key`` names its file and makes reruns resumable."""

    prompt_index: int
    prompt: str
    segment: str  # the audience segment's name ("" when the plan has none)
    segment_text: str  # … and the prompt fragment it adds
    style: Style
    width: int
    height: int
    seed: int

    @property
    def full_prompt(self) -> str:
        return f"{self.prompt}, {self.segment_text}" if self.segment_text else self.prompt

    @property
    def key(self) -> str:
        slug = "-".join(
            (f"p{self.prompt_index}", _slug(self.segment or "all"), _slug(self.style.name),
             f"{self.width}x{self.height}", f"s{self.seed}")
        )  # fmt: skip
        return slug

    @property
    def job_id(self) -> str:
        """Stable across reruns of the same plan item, so nothing is generated twice."""
        facts = [self.full_prompt, self.style.name, [(lo.name, lo.weight) for lo in self.style.loras],
                 self.width, self.height, self.seed]  # fmt: skip
        return "batch-" + hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Plan:
    name: str
    prompts: tuple[str, ...]
    segments: dict[str, str]
    styles: tuple[Style, ...]
    sizes: tuple[tuple[int, int], ...]
    seeds: tuple[int, ...]
    negative: str = ""
    steps: int = 20
    guidance: float = 7.0
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def items(self) -> list[Item]:
        segments = list(self.segments.items()) or [("", "")]
        return [
            Item(p, prompt, seg, text, style, w, h, seed)
            for (p, prompt), (seg, text), style, (w, h), seed in product(
                enumerate(self.prompts), segments, self.styles, self.sizes, self.seeds
            )
        ]


def load_plan(path: Path) -> Plan:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"plan {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"plan {path} is not valid TOML: {exc}") from None
    return parse_plan(data, str(path))


def parse_plan(data: dict[str, Any], where: str = "plan") -> Plan:
    known = {"name", "prompts", "segments", "styles", "sizes", "seeds", "negative", "steps",
             "guidance", "model", "width", "height"}  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise PlanError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    prompts = data.get("prompts")
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise PlanError(
            f'{where}: prompts must be a non-empty list of text, e.g. prompts = ["a red shoe"]'
        )
    seeds = data.get("seeds", [1])
    if not seeds or not all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds):
        raise PlanError(f"{where}: seeds must be a list of integers from 0 to 4294967295")
    width, height = data.get("width", 512), data.get("height", 512)
    sizes = tuple(tuple(s) for s in data.get("sizes", [[width, height]]))
    if not all(
        len(s) == 2 and all(isinstance(v, int) and v % 8 == 0 and v >= 64 for v in s) for s in sizes
    ):
        raise PlanError(
            f"{where}: sizes must be [width, height] pairs, multiples of 8 and at least 64"
        )
    segments = data.get("segments", {})
    if not isinstance(segments, dict) or not all(isinstance(v, str) for v in segments.values()):
        raise PlanError(
            f'{where}: [segments] maps a name to a prompt fragment, e.g. teens = "neon"'
        )
    return Plan(
        name=str(data.get("name", "batch")),
        prompts=tuple(prompts),
        segments=dict(segments),
        styles=_styles(data.get("styles", {}), where),
        sizes=sizes,  # type: ignore[arg-type]
        seeds=tuple(seeds),
        negative=str(data.get("negative", "")),
        steps=int(data.get("steps", 20)),
        guidance=float(data.get("guidance", 7.0)),
        model=data.get("model"),
    )


def _styles(data: Any, where: str) -> tuple[Style, ...]:
    if not data:
        return (Style("base"),)
    if not isinstance(data, dict):
        raise PlanError(f"{where}: [styles] maps a style name to a list of LoRAs")
    styles = []
    for name, loras in data.items():
        try:
            refs = tuple(LoraRef(str(lo["name"]), float(lo.get("weight", 1.0))) for lo in loras)
        except (TypeError, KeyError, AttributeError):
            raise PlanError(
                f'{where}: styles.{name} must be a list like [{{ name = "brand-lora", weight = 0.8 }}]'
            ) from None
        styles.append(Style(str(name), refs))
    return tuple(styles)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:32] or "x"
