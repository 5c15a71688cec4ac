"""Sfumato for Blender: textures, backdrops and worlds from a local diffusion server.

Registration only. The modules: ``props`` (state on ``Scene.sfumato``), ``prefs`` (server
URL, token), ``panels`` (the sidebar tab), ``operators`` (actions), ``jobs`` (what each
action sends), ``results`` (how a result is applied, all or nothing: ``rollback``; the
history's Apply Again and Restore), ``passes`` (render → arrays), ``scene``
(arrays → images, UVs, materials, world), ``geometry`` (numpy maths), ``bridge`` (the
client's events → the main thread, via ``bpy.app.timers``), ``localserver`` (Start a
local server, in the preferences); Texture Object: ``texcams``
(cameras), ``texbake`` (UV map, bake, view passes), ``texjob`` (send, apply), ``texmath``
(numpy), ``texops``/``texpanel``/``texprops`` (operators, panel, settings); the live
viewport: ``live`` (handler, timer, in-place results), ``liveops``/``liveprops``;
``direction`` (per-object prompts as regions, the world/backdrop reference picture).
"""

import bpy

from . import (
    bridge,
    direction,
    live,
    liveops,
    liveprops,
    localserver,
    operators,
    panels,
    prefs,
    props,
    results,
    texops,
    texpanel,
)

CLASSES = (
    *props.CLASSES,
    *prefs.CLASSES,
    *localserver.CLASSES,
    *operators.CLASSES,
    *texops.CLASSES,
    *panels.CLASSES,
    *texpanel.CLASSES,
    *liveops.CLASSES,
    *direction.CLASSES,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.register()
    liveprops.register()
    direction.register()
    bridge.start(results.apply)
    live.register()
    localserver.start()


def unregister() -> None:
    localserver.stop()  # the server this add-on started goes with it
    live.unregister()  # off: cancels what runs, puts back what it replaced
    bridge.stop()
    direction.unregister()
    liveprops.unregister()
    props.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
