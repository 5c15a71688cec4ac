"""Sfumato for Krita: a docker that sends the canvas, the selection and chosen layers to a
local Sfumato server and brings the results back as layers.

Krita imports this package when the plugin is enabled. Its dependencies (sfumato's protocol
and client, msgpack, websockets: pure Python) sit in ``vendor/``, put there by
``sfumato package krita``, because Krita has no pip.
"""

import os
import sys

_VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vendor")
if os.path.isdir(_VENDOR) and _VENDOR not in sys.path:
    sys.path.insert(0, _VENDOR)

try:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita
except ImportError:  # imported outside Krita (unit tests of model and jobs): register nothing
    Krita = None

DOCKER_ID = "sfumato_docker"

if Krita is not None:
    from .docker import SfumatoDocker
    from .extension import SfumatoExtension

    _app = Krita.instance()
    _app.addExtension(SfumatoExtension(_app))
    _app.addDockWidgetFactory(
        DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, SfumatoDocker)
    )
