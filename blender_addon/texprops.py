"""The settings of whole-object texturing (``Scene.sfumato.texturing``): how texture
cameras are placed, their order, and the texture's size. Saved with the file."""

import bpy
from bpy.props import (
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

STRATEGIES = (
    ("GREEDY", "Greedy Coverage", "From 256 directions, add the view that paints the most "
     "surface not painted yet (by the server's rules), until the coverage or the budget is "
     "reached"),
    ("ORBIT", "Orbit Ring", "Cameras on a ring around the objects at one elevation"),
    ("SPHERE", "Sphere", "Cameras spread evenly over the whole sphere"),
    ("HEMISPHERE", "Hemisphere", "Cameras spread evenly over the upper half"),
)  # fmt: skip


def _is_camera(_self: object, obj: bpy.types.Object) -> bool:
    return obj.type == "CAMERA"


class SfumatoTextureCamera(bpy.types.PropertyGroup):
    """One entry of the view order: a camera the texture is painted from."""

    camera: PointerProperty(name="Camera", type=bpy.types.Object, poll=_is_camera)


class SfumatoTexturing(bpy.types.PropertyGroup):
    strategy: EnumProperty(name="Placement", items=STRATEGIES, default="GREEDY")
    count: IntProperty(name="Cameras", default=8, min=1, max=16,
                       description="Orbit, sphere, hemisphere: how many cameras")  # fmt: skip
    elevation: FloatProperty(name="Elevation", default=20.0, min=-89.0, max=89.0,
                             description="Orbit: degrees above the horizon")  # fmt: skip
    coverage: FloatProperty(
        name="Coverage", default=0.995, min=0.5, max=1.0, subtype="FACTOR",
        description="Greedy: stop once this share of the surface is seen",
    )  # fmt: skip
    budget: IntProperty(name="Most Views", default=12, min=1, max=16,
                        description="Greedy: at most this many cameras")  # fmt: skip
    texture_size: IntProperty(
        name="Texture", default=1024, min=64, max=8192, step=64,
        description="Side of the square UV texture in pixels",
    )  # fmt: skip
    cameras: CollectionProperty(type=SfumatoTextureCamera)
    camera_index: IntProperty(name="View", default=0)
    report: StringProperty(name="Coverage Report")  # the last result's "… covered; … filled"


CLASSES = (SfumatoTextureCamera, SfumatoTexturing)
