"""Add-on preferences: where the server is, the token it wants, and the environment a
local server is started from ("Start a local server": ``localserver``). Kept in Blender's user
preferences (not the .blend): a file shared with a colleague must not carry a token."""

import bpy
from bpy.props import StringProperty

from sfumato.client import default_url

from . import localserver


class SfumatoPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    url: StringProperty(
        name="Server URL",
        default=default_url(),
        description="Websocket address of the Sfumato server ($SFUMATO_URL when set)",
    )
    token: StringProperty(
        name="Token",
        subtype="PASSWORD",
        description="Shared secret, when the server was started with --token",
    )
    server_env: StringProperty(
        name="Sfumato environment",
        subtype="DIR_PATH",
        description=(
            "Folder of the Python environment the server is installed in (or its sfumato "
            "program). Empty: a sfumato-env folder beside the add-on, $SFUMATO_ENV, the user "
            "data folder's sfumato-env, or sfumato on PATH"
        ),
    )
    server_args: StringProperty(
        name="Server arguments",
        description="Extra arguments for sfumato serve, e.g. --model sd15 --device cuda",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "url")
        layout.prop(self, "token")
        localserver.draw(layout, self)


def get(context: bpy.types.Context) -> SfumatoPreferences:
    return context.preferences.addons[__package__].preferences


CLASSES = (SfumatoPreferences,)
