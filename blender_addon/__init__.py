"""Sfumato for Blender: textures, backdrops and worlds from a local diffusion server.

Registration only. The modules: ``props`` (state on ``Scene.sfumato``), ``prefs`` (server
URL, token), ``panels`` (the sidebar tab), ``operators`` (actions), ``jobs`` (what each
action sends), ``results`` (how a result is applied, all or nothing: ``rollback``; the
history's Apply Again and Restore), ``passes`` (render → arrays), ``scene``
(arrays → images, UVs, materials, world), ``geometry`` (numpy maths), ``bridge`` (the
client's events → the main thread, via ``bpy.app.timers``).
"""

import bpy

from . import bridge, operators, panels, prefs, props, results

CLASSES = (*props.CLASSES, *prefs.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.register()
    bridge.start(results.apply)


def unregister() -> None:
    bridge.stop()
    props.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
