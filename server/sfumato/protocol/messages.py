"""Typed messages of protocol v1 (docs/protocol.md is the normative text).

Each message is a frozen dataclass with ``TYPE`` (its wire ``type``), ``_write`` (fields →
header map, arrays → blob references) and ``_read`` (the reverse, validating every field and
the limits). The codec adds ``v`` and ``type`` and handles framing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._fields import BlobWriter, Reader
from .arrays import Array, DType
from .conditioning import Control, Tile, read_controls
from .direction import Reference, Region, read_references, read_regions, region_loras
from .errors import ErrorCode, ProtocolError
from .limits import Limits
from .multiview import MultiviewInputs, Paint
from .params import LIVE_KEY_CHARS as LIVE_KEY_CHARS  # re-exported: params.py holds the
from .params import SEED_MAX as SEED_MAX  # job's parameters; these names stay importable here
from .params import JobParams, Task
from .params import check_live as check_live
from .params import denoising_steps as denoising_steps
from .params import min_steps as min_steps
from .params import min_strength as min_strength
from .training import check_train

# ``\Z``, not ``$`` (which accepts a trailing newline); the first character is not "." or "-",
# so an id is never ".", ".." or an option, wherever a server files it.
JOB_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
# Job.result_bytes (docs/protocol.md section 7): the result's msgpack header (ids, seeds,
# model, the prompt, timings), and what each stored PNG holds beyond its pixel rows (chunks,
# zlib framing, the signed C2PA manifest: ~8 KB measured, benchmarks/result_sizes.py).
RESULT_HEADER_BYTES = 64 * 1024
PNG_EXTRA_BYTES = 128 * 1024


def _job_id(r: Reader, key: str = "id") -> str:
    value: str = r.text(key)
    if not JOB_ID.fullmatch(value):
        raise ProtocolError(
            ErrorCode.BAD_FIELD,
            f"{key} {value[:80]!r} must be 1–64 characters of A–Z a–z 0–9 _ . - "
            "that does not start with . or -",
            field=key,
        )
    return value


# --------------------------------------------------------------------------- client → server


@dataclass(frozen=True)
class Hello:
    TYPE: ClassVar[str] = "hello"
    client: str
    version: str = ""
    token: str | None = None
    client_id: str | None = None  # stable identity for fetch after reconnect; see protocol.md

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {"client": self.client, "version": self.version}
        if self.token is not None:
            out["token"] = self.token
        if self.client_id is not None:
            out["client_id"] = self.client_id
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Hello:
        return cls(
            client=r.text("client", max_len=200),
            version=r.text("version", "", max_len=200),
            token=r.text("token", None, max_len=1000),
            client_id=r.text("client_id", None, max_len=200),
        )


@dataclass(frozen=True)
class Job:
    """Submit work. Inputs: ``image`` (uint8 sRGB, 3 or 4 channels) for every task but
    generate; ``mask`` (uint8, 1 channel, 255 = regenerate, same size as image) for inpaint;
    ``controls`` for any task (conditioning.py)."""

    TYPE: ClassVar[str] = "job"
    id: str
    task: Task
    params: JobParams = field(default_factory=JobParams)
    image: Array | None = None
    mask: Array | None = None
    controls: tuple[Control, ...] = ()
    multiview: MultiviewInputs | None = None  # task multiview: views, position, normals, texels
    references: tuple[Reference, ...] = ()  # IP-Adapter pictures (direction.py)
    regions: tuple[Region, ...] = ()  # a mask + prompt per area (direction.py)

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            name: w.ref(a) for name, a in (("image", self.image), ("mask", self.mask)) if a
        }
        if self.controls:
            inputs["controls"] = [c._write(w) for c in self.controls]
        if self.references:
            inputs["references"] = [ref._write(w) for ref in self.references]
        if self.regions:
            inputs["regions"] = [region._write(w) for region in self.regions]
        if self.multiview is not None:
            self.multiview.write_into(inputs, w)
        out: dict[str, Any] = {
            "id": self.id,
            "task": self.task.value,
            "params": self.params._write(),
        }
        if inputs:
            out["inputs"] = inputs
        return out

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Job:
        job_id = _job_id(r)
        task = r.choice("task", Task)
        p = r.submap("params", None) or Reader({}, "params")
        params = JobParams._read(p, limits)
        p.finish()
        i = r.submap("inputs", None)
        image = mask = None
        controls: tuple[Control, ...] = ()
        multiview = None
        references: tuple[Reference, ...] = ()
        regions: tuple[Region, ...] = ()
        if i is not None:
            image, mask, controls = i.array("image", None), i.array("mask", None), read_controls(i)
            references, regions = read_references(i), read_regions(i, limits)
            multiview = MultiviewInputs.read(i)
            i.finish()
        job = cls(job_id, task, params, image, mask, controls, multiview, references, regions)
        job.check(limits)
        return job

    def check(self, limits: Limits) -> None:
        """Inputs fit the task and the limits; errors name the input and the fix."""
        for n, control in enumerate(self.controls):
            control.check(f"inputs.controls[{n}]", limits)
        self._check_direction_task(limits)
        if self.params.live and self.task is Task.TRAIN:
            raise _bad("params.live: task train cannot run live; leave params.live out",
                       "params.live")  # fmt: skip
        if self.task is Task.TRAIN or self.params.train is not None:
            check_train(self)
            return
        if self.task is Task.MULTIVIEW:
            self._check_multiview(limits)
            return
        if self.multiview is not None:
            raise _bad(
                f"task {self.task.value} takes no inputs.views, position, surface_normal or "
                "texels; send them with task multiview",
                "inputs.views",
            )
        for name, unset in (
            ("paint", self.params.paint is Paint.GENERATE),
            ("bounds", not self.params.bounds),
        ):
            if not unset:
                raise _bad(
                    f"params.{name} is for task multiview only; leave it out", f"params.{name}"
                )
        if self.task is Task.GENERATE:
            for name in ("image", "mask"):
                if getattr(self, name) is not None:
                    raise _bad(
                        f"task generate takes no inputs.{name}; use refine or inpaint",
                        f"inputs.{name}",
                    )
            self.params.check_size(limits)
            self._check_regions()
            return
        t = self.task.value
        if self.image is None:
            raise _bad(f"task {t} needs inputs.image", "inputs.image")
        _check_image(self.image, "inputs.image", limits, channels=(3, 4))
        if self.task is Task.INPAINT and self.mask is None:
            raise _bad("task inpaint needs inputs.mask", "inputs.mask")
        if self.task is not Task.INPAINT and self.mask is not None:
            raise _bad(
                f"task {t} takes no inputs.mask; use inpaint to regenerate a region", "inputs.mask"
            )
        if self.mask is not None:
            _check_image(self.mask, "inputs.mask", limits, channels=(1,))
            if self.mask.shape[:2] != self.image.shape[:2]:
                raise ProtocolError(
                    ErrorCode.BAD_ARRAY,
                    f"inputs.mask is {self.mask.width}×{self.mask.height} but inputs.image is "
                    f"{self.image.width}×{self.image.height}; send a mask of the image's size",
                    field="inputs.mask",
                )
        self._check_output_size(limits)
        self.params.check_strength(self.task, limits)
        self._check_regions()

    def _check_direction_task(self, limits: Limits) -> None:
        """References serve every picture task, regions generate, refine and inpaint (with
        or without controls); neither multiview nor train (docs/protocol.md 4.2.6)."""
        t = self.task.value
        if self.references and self.task in (Task.MULTIVIEW, Task.TRAIN):
            raise _bad(
                f"task {t} takes no inputs.references; send them with generate, refine, "
                "inpaint, outpaint or upscale",
                "inputs.references",
            )
        for n, reference in enumerate(self.references):
            reference.check(f"inputs.references[{n}]", limits)
        if self.regions and self.task not in (Task.GENERATE, Task.REFINE, Task.INPAINT):
            raise _bad(
                f"task {t} takes no inputs.regions; send them with generate, refine or inpaint",
                "inputs.regions",
            )
        if self.regions:
            region_loras(self.params.loras, self.regions)

    def _check_regions(self) -> None:
        size = self.output_size()
        for n, region in enumerate(self.regions):
            region.check(f"inputs.regions[{n}]", size)

    def _check_multiview(self, limits: Limits) -> None:
        for name in ("image", "mask"):
            if getattr(self, name) is not None:
                raise _bad(
                    f"task multiview takes no inputs.{name}; it paints each view from its "
                    "passes (inputs.views)",
                    f"inputs.{name}",
                )
        if self.controls:
            raise _bad(
                "task multiview takes no inputs.controls; its depth and normal ControlNets "
                "read each view's passes",
                "inputs.controls",
            )
        if self.multiview is None:
            raise _bad(
                "task multiview needs inputs.views, position, surface_normal and texels",
                "inputs.views",
            )
        if self.params.variants != 1:
            raise _bad(
                "task multiview bakes one texture: params.variants must be 1; send one job "
                "per seed to compare",
                "params.variants",
            )
        if self.params.tile is not Tile.NONE:
            raise _bad(
                "task multiview paints views of an object, which do not tile; leave "
                "params.tile out (the UV texture's seams come from the object's islands)",
                "params.tile",
            )
        self.params.check_size(limits)
        self.multiview.check(self.params.width, self.params.height, limits)
        if self.params.paint is Paint.GENERATE and len(self.multiview.views) > 1:
            self.params.check_strength(self.task, limits)  # later views inpaint

    def output_size(self) -> tuple[int, int]:
        """(width, height) of each image the result will hold: the one place this is
        computed (the engine prepares control maps at it, the checks below and the hosts
        place results by it). Generate: params.width × height; outpaint: the image grown by
        params.expand; upscale: the image × params.scale; refine and inpaint: the image."""
        if self.image is None:
            return self.params.width, self.params.height
        width, height = self.image.width, self.image.height
        if self.task is Task.OUTPAINT:
            left, top, right, bottom = self.params.expand
            return width + left + right, height + top + bottom
        if self.task is Task.UPSCALE:
            return width * self.params.scale, height * self.params.scale
        return width, height

    def result_bytes(self) -> int:
        """An upper bound on the bytes of this job's ``result`` message: per variant one uint8
        RGB image at :meth:`output_size` (multiview: the RGBA texture and each view) and,
        with ``params.files``, its PNG — bounded by the stored encoding plus deflate's worst-case growth, so any compression fits — plus the
        header. A server refuses a job whose bound exceeds its ``max_message_bytes``
        (``result_too_large``); a client may check it before sending."""
        width, height = self.output_size()
        if self.multiview is not None:  # the RGBA texture, then one RGB image per view
            sizes = [(*self.multiview.texture_size, 4)]
            sizes += [(width, height, 3)] * len(self.multiview.views)
        else:
            sizes = [(width, height, 3)] * self.params.variants
        total = RESULT_HEADER_BYTES
        for w, h, channels in sizes:
            total += w * h * channels
            if self.params.files:
                rows = h * (w * channels + 1)  # one filter byte per row
                total += rows + rows // 1000 + PNG_EXTRA_BYTES
        return total

    def _check_output_size(self, limits: Limits) -> None:
        assert self.image is not None
        if self.task is Task.OUTPAINT:
            if not any(self.params.expand):
                raise _bad(
                    "task outpaint needs params.expand [left, top, right, bottom] > 0",
                    "params.expand",
                )
            name = "params.expand"
        elif self.task is Task.UPSCALE:
            name = "params.scale"
        else:
            return
        w, h = self.output_size()
        if max(h, w) > limits.max_image_side:
            raise ProtocolError(
                ErrorCode.IMAGE_TOO_LARGE,
                f"the result would be {w}×{h}, over this server's max_image_side "
                f"{limits.max_image_side}; use a smaller {name} or image",
                field=name,
            )


def _bad(message: str, field: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_FIELD, message, field=field)


def _check_image(a: Array, name: str, limits: Limits, *, channels: tuple[int, ...]) -> None:
    if a.dtype is not DType.UINT8 or a.channels not in channels:
        want = " or ".join(str(c) for c in channels)
        raise ProtocolError(
            ErrorCode.BAD_ARRAY,
            f"{name} must be uint8 with {want} channel(s), got {a.dtype.value} {list(a.shape)}",
            field=name,
        )
    if max(a.height, a.width) > limits.max_image_side:
        raise ProtocolError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"{name} is {a.width}×{a.height}; this server accepts at most "
            f"{limits.max_image_side} pixels a side, scale it down",
            field=name,
        )


@dataclass(frozen=True)
class Cancel:
    TYPE: ClassVar[str] = "cancel"
    id: str

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Cancel:
        return cls(_job_id(r))


@dataclass(frozen=True)
class Fetch:
    """Ask again for a finished job's result (after a reconnect)."""

    TYPE: ClassVar[str] = "fetch"
    id: str

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> Fetch:
        return cls(_job_id(r))


@dataclass(frozen=True)
class ListModels:
    """Client asks for the registry; the server answers with :class:`Models`."""

    TYPE: ClassVar[str] = "models"

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        return {}

    @classmethod
    def _read(cls, r: Reader, limits: Limits) -> ListModels:
        return cls()
