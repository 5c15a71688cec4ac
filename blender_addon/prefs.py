"""Add-on preferences: where the server is and the token it wants. Kept in Blender's user
preferences (not the .blend): a file shared with a colleague must not carry a token."""

import bpy
from bpy.props import StringProperty

from sfumato.client import default_url


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

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "url")
        layout.prop(self, "token")
        layout.label(text="Start a local server with:  sfumato serve", icon="INFO")


def get(context: bpy.types.Context) -> SfumatoPreferences:
    return context.preferences.addons[__package__].preferences


CLASSES = (SfumatoPreferences,)
