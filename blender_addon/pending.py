"""What a submitted job's result is for: typed records, no bpy objects and no dicts read by
string keys. Names, not bpy objects, because the user may delete or rename things while the
job runs; ``results`` checks they are still there when it applies the result."""

from __future__ import annotations

from dataclasses import dataclass

from sfumato.protocol import Job

Matrix = tuple[tuple[float, ...], ...]  # rows of a 4×4 matrix


@dataclass(frozen=True)
class TextureTarget:
    """Texture from View: where the camera stood and how it projects, when the passes were
    rendered (the texture sticks to the objects as the camera saw them, even if they move
    while the job runs)."""

    camera: str
    uv_map: str  # one name for the modifier, the UV map and the UV Map node (≤ 63 bytes)
    world_to_camera: Matrix
    projection: Matrix
    stood: tuple[tuple[str, Matrix], ...]  # object name → its matrix_world then

    def stood_at(self, name: str) -> Matrix | None:
        return next((m for n, m in self.stood if n == name), None)


@dataclass(frozen=True)
class BackdropTarget:
    camera: str
    distance: float  # from the camera, behind the farthest object


@dataclass(frozen=True)
class InpaintTarget:
    material: str
    node: str  # the Image Texture node whose image is regenerated
    source: str  # that image's name when the job was sent


@dataclass(frozen=True)
class ObjectTarget:
    """Texture Object: the UV map painted (and whether Sfumato made it for this job), the
    cameras in the order they were painted, where the object stood."""

    uv_map: str
    made_uv: bool
    cameras: tuple[str, ...]
    stood: Matrix


Detail = TextureTarget | BackdropTarget | InpaintTarget | ObjectTarget | None


@dataclass
class Pending:
    """A submitted job and what its result is for; ``kind`` is a props.KINDS identifier."""

    job: Job
    kind: str
    scene: str
    targets: tuple[str, ...] = ()  # the objects the result goes on
    detail: Detail = None
    message: str = ""  # what apply reported
    failure: str = ""  # why it could not be applied, or how the job ended without a result

    @property
    def label(self) -> str:
        return self.kind.lower()


def matrix(rows: object) -> Matrix:
    """Any 4×4 (a mathutils Matrix, a numpy array, nested lists) as plain float tuples."""
    return tuple(tuple(float(v) for v in row) for row in rows)  # type: ignore[attr-defined]
