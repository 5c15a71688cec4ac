"""Cycles passes read from memory, without the multi-layer EXR: every pass render of the
add-on (depth, normal, and for the texture cameras UV and object index) at the cost of the
render alone.

Writing the EXR cost more than the render's own time at 512² (Blender encoding twelve float
channels, then reading them back; docs/benchmarks.md, Texture Object), and bpy offers no
pixels of the Render Result. A render engine does see its own result, though: ``Capture`` is
Cycles' own engine class under another name — the same kernels, settings and passes — that
copies the passes out of the result once Cycles has finished the frame. It is registered
for the length of one render only, so it never shows in the user's engine list, and where
Cycles' class cannot be found (the Cycles add-on disabled) the EXR path is used instead.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import bpy
import numpy as np

from . import passes

ENGINE = "SFUMATO_PASSES"
SKIP = frozenset({"Combined"})  # Cycles always makes it; the texture passes never use it


def render_passes(
    scene: Any, camera: Any, view_layer: Any, width: int, height: int
) -> passes.Passes:
    """Depth and camera-space normals of ``scene`` from ``camera`` at width×height (Texture
    from View, Camera Backdrop, the live viewport). The scene's render settings are restored
    afterwards, whatever happens."""
    return passes.passes_of(render_layers(scene, camera, view_layer, width, height), camera)


def render_layers(
    scene: Any,
    camera: Any,
    view_layer: Any,
    width: int,
    height: int,
    extra: Sequence[tuple[Any, str, Any]] = (),
) -> dict[str, np.ndarray]:
    """What :func:`passes.render_layers` returns (channels by their EXR names, row 0 at the
    top, float32, Combined left out), read from the render result instead of a file."""
    engine = _engine_class()
    if engine is None:
        found = passes.render_layers(scene, camera, view_layer, width, height, extra)
        return {n: c for n, c in found.items() if n.split(".")[-2] not in SKIP}
    unused = Path(tempfile.gettempdir()) / "sfumato-unwritten.exr"  # write_still is off
    with (
        _registered(engine),
        passes.pass_settings(scene, camera, view_layer, width, height, unused, extra),
    ):
        scene.render.engine = ENGINE  # put back with every other render setting
        engine.captured, engine.failure = {}, ""
        bpy.ops.render.render(write_still=False, scene=scene.name, layer=view_layer.name)
        found, failure, engine.captured, engine.failure = engine.captured, engine.failure, {}, ""
    if failure:
        raise RuntimeError(
            f"the depth, normal and UV passes could not be read from the render ({failure}); "
            "nothing in the scene was changed: try again, and report it if it repeats"
        )
    if not found:
        raise RuntimeError(
            "the pass render left no passes in its result (was it cancelled?); the depth, "
            "normal and UV passes could not be read"
        )
    return found


def result_channels(result: Any) -> dict[str, np.ndarray]:
    """Every channel of a render result but Combined, named as Blender names them in a
    multi-layer EXR (``ViewLayer.Depth.Z``), each H×W float32 with row 0 at the top (the
    result's rows run bottom to top)."""
    width, height = result.resolution_x, result.resolution_y
    channels: dict[str, np.ndarray] = {}
    for layer in result.layers:
        for render_pass in layer.passes:
            if render_pass.name in SKIP:
                continue
            ids = render_pass.channel_id
            flat = np.empty(width * height * len(ids), dtype=np.float32)
            render_pass.rect.foreach_get(flat)
            pixels = flat.reshape(height, width, len(ids))[::-1]
            for i, c in enumerate(ids):
                channels[f"{layer.name}.{render_pass.name}.{c}"] = np.ascontiguousarray(
                    pixels[..., i]
                )
    return channels


def _engine_class() -> Any:
    """A render engine that runs Cycles exactly as Cycles' own engine class does for a final
    render (the same calls into its ``engine`` module, the same ``bl_use_*`` flags) and keeps
    the passes; None where Cycles' class is not registered. Not a subclass of Cycles' class:
    bpy would take the subclass for Cycles' own RNA type."""
    base = next(
        (c for c in _subclasses(bpy.types.RenderEngine) if getattr(c, "bl_idname", "") == "CYCLES"),
        None,
    )
    if base is None:
        return None
    cycles = importlib.import_module(f"{base.__module__}.engine")

    class Capture(bpy.types.RenderEngine):  # type: ignore[misc]
        bl_idname = ENGINE
        bl_label = "Sfumato passes"
        captured: ClassVar[dict[str, np.ndarray]] = {}
        failure: ClassVar[str] = ""  # why the passes could not be copied out, when they could not

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.session = None

        def __del__(self) -> None:
            with contextlib.suppress(ReferenceError):  # Blender freed the struct first
                cycles.free(self)

        def update(self, data: Any, depsgraph: Any) -> None:
            if not self.session:
                cycles.create(self, data)
            cycles.reset(self, data, depsgraph)

        def render(self, depsgraph: Any) -> None:
            cycles.render(self, depsgraph)

        def render_frame_finish(self) -> None:
            cycles.render_frame_finish(self)
            try:  # Blender only prints what a callback raises: keep the reason for the caller
                type(self).captured = result_channels(self.get_result())
            except Exception as exc:  # any failure: render_layers reports it
                type(self).failure = f"{type(exc).__name__}: {exc}"  # not exc: it holds self

        def update_render_passes(self, scene: Any, view_layer: Any) -> None:
            cycles.register_passes(self, scene, view_layer)

    for name, value in vars(base).items():
        if name.startswith("bl_use_"):
            setattr(Capture, name, value)
    return Capture


def _subclasses(cls: type) -> Iterator[type]:
    """Every subclass, at any depth (Hydra's engines sit under an abstract base)."""
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@contextlib.contextmanager
def _registered(cls: Any) -> Iterator[None]:
    bpy.utils.register_class(cls)
    try:
        yield
    finally:
        bpy.utils.unregister_class(cls)
