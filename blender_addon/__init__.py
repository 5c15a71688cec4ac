"""Sfumato for Blender: textures, backdrops and worlds from a local diffusion server.

Registration only. The modules: ``props`` (state on ``Scene.sfumato``), ``prefs`` (server
URL, token), ``panels`` (the sidebar tab), ``operators`` (actions), ``jobs`` (what each
action sends and how its result is applied), ``passes`` (render → arrays), ``scene``
(arrays → images, UVs, materials, world), ``geometry`` (numpy maths), ``bridge`` (the
client's events → the main thread, via ``bpy.app.timers``).
"""

import bpy

from . import bridge, jobs, operators, panels, prefs, props

CLASSES = (*props.CLASSES, *prefs.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.register()
    bridge.start(jobs.apply)


def unregister() -> None:
    bridge.stop()
    props.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
