"""The ``multiview`` task's inputs and coverage figures (docs/protocol.md 4.2.4).

A host renders, per camera, the target object's depth, camera-space normals, UV coordinates
and a visibility mask, plus the camera's matrices; once, the target's UV-space position and
normal maps. The server paints the views in order and bakes them into the texture. The wire
carries plain arrays and 16-number matrices, so the host needs no ML and the server needs no
3D library: everything geometric is defined here and in docs/protocol.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ._fields import BlobWriter, Reader
from .arrays import Array, DType
from .errors import ErrorCode, ProtocolError
from .limits import Limits

MAX_VIEWS = 16
MATRIX_LEN = 16  # 4×4, row-major


class Paint(str, Enum):
    """What paints each view: the model, or (a diagnostic) the world position it sees."""

    GENERATE = "generate"
    POSITION = "position"


# (name, dtype, channels) of each per-view pass, in wire order.
VIEW_PASSES = (
    ("depth", DType.FLOAT32, 1),  # view-space depth along the camera's −Z; 0 = no surface
    ("normal", DType.FLOAT32, 3),  # camera-space unit normals (x right, y up, z to camera)
    ("uv", DType.FLOAT32, 2),  # the target's texture coordinates (u right, v up)
    ("mask", DType.UINT8, 1),  # 255 = the target is the nearest surface here
)
# (name, dtype, channels) of the texture-space maps, in wire order.
TEXTURE_MAPS = (
    ("position", DType.FLOAT32, 3),  # world position of each texel
    ("surface_normal", DType.FLOAT32, 3),  # world unit normal of each texel
    ("texels", DType.UINT8, 1),  # 255 = the texel lies on the target's UV islands
)


def _bad(message: str, field: str, code: ErrorCode = ErrorCode.BAD_FIELD) -> ProtocolError:
    return ProtocolError(code, message, field=field)


def read_matrix(r: Reader, key: str) -> tuple[float, ...]:
    """16 finite numbers (a 4×4 matrix, row-major)."""
    values = r.items(key)
    name = f"{r._path}.{key}"
    ok = len(values) == MATRIX_LEN and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )
    if not ok:
        raise _bad(
            f"{name} must be 16 finite numbers (a 4×4 matrix, row-major), got "
            f"{len(values)} values; send the matrix's rows one after another",
            name,
        )
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class View:
    """One camera's passes (all params.width × params.height) and its matrices."""

    depth: Array
    normal: Array
    uv: Array
    mask: Array
    world_to_camera: tuple[float, ...]  # 4×4 row-major: the camera's matrix_world inverted
    projection: tuple[float, ...]  # 4×4 row-major camera → clip, OpenGL convention

    def _write(self, w: BlobWriter) -> dict[str, Any]:
        out: dict[str, Any] = {name: w.ref(getattr(self, name)) for name, _, _ in VIEW_PASSES}
        out["world_to_camera"] = list(self.world_to_camera)
        out["projection"] = list(self.projection)
        return out

    @classmethod
    def _read(cls, r: Reader) -> View:
        arrays = {name: r.array(name) for name, _, _ in VIEW_PASSES}
        view = cls(
            **arrays,
            world_to_camera=read_matrix(r, "world_to_camera"),
            projection=read_matrix(r, "projection"),
        )
        r.finish()
        return view

    def check(self, name: str, width: int, height: int) -> None:
        for key, dtype, channels in VIEW_PASSES:
            size = (width, height)
            array = getattr(self, key)
            _check_array(array, f"{name}.{key}", dtype, channels, size, "params.width × height")
        p = self.projection
        if p[12] == p[13] == p[14] == p[15] == 0.0:
            raise _bad(
                f"{name}.projection has a zero last row; send camera → clip as Blender's "
                "camera.calc_matrix_camera gives it, row-major",
                f"{name}.projection",
            )


def _check_array(
    a: Array, name: str, dtype: DType, channels: int, size: tuple[int, int], size_name: str
) -> None:
    if a.dtype is not dtype or a.channels != channels:
        raise _bad(
            f"{name} must be {dtype.value} with {channels} channel(s), got "
            f"{a.dtype.value} {list(a.shape)}",
            name,
            ErrorCode.BAD_ARRAY,
        )
    if (a.width, a.height) != size:
        raise _bad(
            f"{name} is {a.width}×{a.height} but {size_name} is {size[0]}×{size[1]}; "
            "send every map at that size",
            name,
            ErrorCode.BAD_ARRAY,
        )


@dataclass(frozen=True)
class MultiviewInputs:
    """Everything the multiview task reads beyond its params."""

    views: tuple[View, ...]
    position: Array
    surface_normal: Array
    texels: Array

    @property
    def texture_size(self) -> tuple[int, int]:
        """(width, height) of the texture the result bakes."""
        return self.position.width, self.position.height

    def write_into(self, inputs: dict[str, Any], w: BlobWriter) -> None:
        inputs["views"] = [v._write(w) for v in self.views]
        for name, _, _ in TEXTURE_MAPS:
            inputs[name] = w.ref(getattr(self, name))

    @classmethod
    def read(cls, r: Reader) -> MultiviewInputs | None:
        """The multiview inputs of ``inputs`` (None when none is present: a job of another
        task, or a multiview job missing them, which :meth:`check_present` then names)."""
        present = [k for k in ("views", *(n for n, _, _ in TEXTURE_MAPS)) if k in r.names()]
        if not present:
            return None
        count = len(r.items("views", []))
        if count > MAX_VIEWS:
            raise _bad(
                f"inputs.views has {count} views; at most {MAX_VIEWS}: send the best "
                f"{MAX_VIEWS} cameras (or split the object into several jobs)",
                "inputs.views",
            )
        views = tuple(View._read(r.element("views", i)) for i in range(count))
        maps: dict[str, Array] = {}
        for name, _, _ in TEXTURE_MAPS:
            value = r.array(name, None)
            if value is None:
                raise _bad(
                    f"task multiview needs inputs.{name} (the target's UV-space "
                    f"{name.replace('_', ' ')} map)",
                    f"inputs.{name}",
                )
            maps[name] = value
        return cls(views, **maps)

    def check(self, width: int, height: int, limits: Limits) -> None:
        if not self.views:
            raise _bad(
                "task multiview needs inputs.views: send 1 to 16 cameras' passes", "inputs.views"
            )
        for n, view in enumerate(self.views):
            view.check(f"inputs.views[{n}]", width, height)
        tw, th = self.texture_size
        if max(tw, th) > limits.max_image_side:
            raise _bad(
                f"inputs.position is {tw}×{th}; this server bakes textures of at most "
                f"{limits.max_image_side} a side, send a smaller texture",
                "inputs.position",
                ErrorCode.IMAGE_TOO_LARGE,
            )
        for name, dtype, channels in TEXTURE_MAPS:
            array = getattr(self, name)
            _check_array(array, f"inputs.{name}", dtype, channels, (tw, th), "inputs.position")


def read_bounds(r: Reader) -> tuple[float, ...]:
    """params.bounds: [min x, min y, min z, max x, max y, max z], or () when absent."""
    if r.raw("bounds", None) is None:
        return ()
    values = r.items("bounds")
    ok = len(values) == 6 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )
    if not ok or not all(values[i] < values[i + 3] for i in range(3)):
        raise _bad(
            "params.bounds must be 6 finite numbers [min x, min y, min z, max x, max y, max z] "
            "with each min below its max; leave it out to use the position map's bounds",
            "params.bounds",
        )
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Coverage:
    """How much of the texture the views covered (result.coverage).

    ``covered``: the fraction of island texels (inputs.texels 255) whose accumulated weight is
    above zero, i.e. alpha 255 in the baked texture. ``views[i]``: the fraction of island
    texels that view *i* was the first to give weight to. Their sum is ``covered``.
    """

    covered: float
    views: tuple[float, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"covered": self.covered, "views": list(self.views)}

    @classmethod
    def from_wire(cls, r: Reader) -> Coverage:
        covered = r.number("covered", lo=0.0, hi=1.0)
        views = r.items("views", [])
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0
            for v in views
        ):
            raise _bad("result.coverage.views must be numbers from 0 to 1", "coverage.views")
        r.finish()
        return cls(covered, tuple(float(v) for v in views))
