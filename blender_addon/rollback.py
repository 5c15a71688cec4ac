"""Applying a result happens completely or not at all.

A result is applied in several steps (a new image, UV maps, materials, the world, a backdrop
plane, a history entry), and any of them can fail on a scene no one foresaw: a mesh in Edit
Mode, a modifier named like Sfumato's, data deleted while the job ran. ``Changes``
records, before each step, how to take it back, and remembers which datablocks existed; when
a step fails, ``undo`` takes the steps back in reverse order and removes every datablock made
since, so a failed apply leaves the file as it was (only the message says it happened).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import bpy

log = logging.getLogger(__name__)

# Datablock collections an apply may add to, in the order their new members are removed
# (objects before the meshes they use, materials before the images they show).
COLLECTIONS = ("objects", "meshes", "materials", "worlds", "node_groups", "images")


class Changes:
    """The undo log of one apply."""

    def __init__(self) -> None:
        self._existing = {name: _pointers(name) for name in COLLECTIONS}
        self._steps: list[tuple[str, Callable[[], None]]] = []

    def on_undo(self, what: str, step: Callable[[], None]) -> None:
        """Register how to take back what the caller is about to change."""
        self._steps.append((what, step))

    def undo(self) -> None:
        """Take every recorded change back, newest first, then remove the datablocks made
        since this log began. Never raises: a step that cannot be taken back is logged and
        the others still run (the caller is already handling a failure)."""
        for what, step in reversed(self._steps):
            try:
                step()
            except Exception:  # best effort: the caller is already handling a failure
                log.exception("could not take back %s", what)
        self._steps.clear()
        for name in COLLECTIONS:
            collection = getattr(bpy.data, name)
            for block in [b for b in collection if b.as_pointer() not in self._existing[name]]:
                try:
                    collection.remove(block)
                except (ReferenceError, RuntimeError):
                    log.exception("could not remove %s %r", name, block)

    # ------------------------------------------------------------------ common snapshots

    def keep_materials(self, obj: Any) -> None:
        """Before assigning a material: what the object's slots hold now."""
        from . import scene  # slots are linked per object: scene knows how to put them back

        previous, name = scene.slot_state(obj), obj.name

        def put_back() -> None:
            scene.restore_materials(bpy.data.objects[name], previous)

        self.on_undo(f"the materials of {name}", put_back)


def _pointers(name: str) -> set[int]:
    return {block.as_pointer() for block in getattr(bpy.data, name)}
