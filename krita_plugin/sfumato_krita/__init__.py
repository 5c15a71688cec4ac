"""Sfumato for Krita: a docker that sends the canvas, the selection and chosen layers to a
local Sfumato server and brings the results back as layers.

Krita imports this package when the plugin is enabled. Its dependencies (sfumato's protocol,
client and host session, msgpack, websockets: pure Python) travel in ``_vendor/``, put there
by ``sfumato package krita``, because Krita has no pip. They are imported only by their
private names (``sfumato_krita._vendor.websockets`` …: the packager rewrites the imports),
never put on ``sys.path``: another plugin that vendors its own websockets or msgpack
(krita-ai-diffusion does) gets its own, and so do we (issue 10, item 2). In a source
checkout (the unit tests) the plain ``sfumato`` package is used instead.
"""

try:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita
except ImportError:  # imported outside Krita (unit tests of model and jobs): register nothing
    Krita = None

DOCKER_ID = "sfumato_docker"

if Krita is not None:
    from .extension import SfumatoExtension

    _app = Krita.instance()
    _extension = SfumatoExtension(_app)
    _app.addExtension(_extension)
    _app.addDockWidgetFactory(
        DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, _extension.docker)
    )
