"""Camera-projection UVs as a geometry-nodes modifier at the end of each object's stack.

Why a modifier and not UVs written into the mesh: the camera renders the *evaluated* mesh —
after shape keys, Armature, Mirror, Array, Subdivision … — and a generative modifier makes
corners that have no counterpart in the mesh's own UV map (Mirror's copy shares the original
corners' UVs, Subdivision interpolates them), so no UVs written into the base mesh can match
the projection of what renders. A modifier placed last projects exactly the positions the
renderer sees and stores them as a 2D face-corner attribute, which is a UV map of the
evaluated mesh that a material's UV Map node reads by name. It also belongs to the object, not
to the mesh, so linked duplicates (one mesh, several objects) each get their own projection;
it needs no access to mesh data, so it works in Edit Mode; and it adds no UV layer to the
mesh, so Blender's limit of 8 UV maps is never reached.

The projection is frozen: the rows (camera and object matrices as they were when the passes
were rendered) are numbers in the modifier's inputs, so moving the camera later changes
nothing, and the texture moves with the object. A mesh that deforms later (animation) is
projected again as it deforms; applying the modifier bakes the UVs.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np

GROUP = "Sfumato Camera Projection"
VERSION = 1  # bump when the node group's layout changes: older groups are rebuilt
_ROWS = ("U", "V", "W")


def group() -> Any:
    """The shared node group (made once per file, rebuilt when it is not ours or outdated):
    ``uv = (U·p + U₀, V·p + V₀) / (W·p + W₀)`` for each corner's position p, stored as the
    2D corner attribute named by the ``UV Map`` input."""
    tree = bpy.data.node_groups.get(GROUP)
    if tree is not None and tree.bl_idname == "GeometryNodeTree" and tree.get("sfumato") == VERSION:
        return tree
    if tree is not None:
        tree.name = f"{GROUP} (old)"  # keep whatever used it; ours gets the name
    tree = bpy.data.node_groups.new(GROUP, "GeometryNodeTree")
    tree["sfumato"] = VERSION
    face = tree.interface
    face.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    face.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    face.new_socket("UV Map", in_out="INPUT", socket_type="NodeSocketString")
    for row in _ROWS:
        face.new_socket(f"{row} Row", in_out="INPUT", socket_type="NodeSocketVector")
        face.new_socket(f"{row} Offset", in_out="INPUT", socket_type="NodeSocketFloat")
    nodes, links = tree.nodes, tree.links
    given, output = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    position = nodes.new("GeometryNodeInputPosition")
    sums = {}
    for i, row in enumerate(_ROWS):
        dot = nodes.new("ShaderNodeVectorMath")
        dot.operation = "DOT_PRODUCT"
        links.new(position.outputs["Position"], dot.inputs[0])
        links.new(given.outputs[f"{row} Row"], dot.inputs[1])
        add = nodes.new("ShaderNodeMath")
        add.operation = "ADD"
        links.new(dot.outputs["Value"], add.inputs[0])
        links.new(given.outputs[f"{row} Offset"], add.inputs[1])
        dot.location, add.location = (-600, 300 - 200 * i), (-400, 300 - 200 * i)
        sums[row] = add
    combine = nodes.new("ShaderNodeCombineXYZ")
    for i, row in enumerate(_ROWS[:2]):
        divide = nodes.new("ShaderNodeMath")
        divide.operation = "DIVIDE"  # a point on the camera plane (w = 0) gets 0, not inf
        links.new(sums[row].outputs["Value"], divide.inputs[0])
        links.new(sums["W"].outputs["Value"], divide.inputs[1])
        links.new(divide.outputs["Value"], combine.inputs[i])
        divide.location = (-200, 200 - 200 * i)
    store = nodes.new("GeometryNodeStoreNamedAttribute")
    store.data_type, store.domain = "FLOAT2", "CORNER"
    links.new(given.outputs["Geometry"], store.inputs["Geometry"])
    links.new(given.outputs["UV Map"], store.inputs["Name"])
    links.new(combine.outputs["Vector"], store.inputs["Value"])
    links.new(store.outputs["Geometry"], output.inputs["Geometry"])
    given.location, combine.location, store.location, output.location = (
        (-900, 0),
        (0, 100),
        (200, 0),
        (400, 0),
    )
    return tree


def _inputs(tree: Any) -> dict[str, str]:
    """Input name → the identifier a modifier keys its values by (``Socket_3`` …)."""
    return {
        item.name: item.identifier
        for item in tree.interface.items_tree
        if item.item_type == "SOCKET" and item.in_out == "INPUT"
    }


def modifier(obj: Any, name: str) -> Any:
    """The object's projection modifier for the UV map ``name``, or None."""
    mod = obj.modifiers.get(name)
    ours = mod is not None and mod.type == "NODES" and mod.node_group is not None
    return mod if ours and mod.node_group.name.startswith(GROUP) else None


def rows_of(obj: Any, name: str) -> np.ndarray | None:
    """The rows a projection modifier holds (3×4), or None when there is none."""
    mod = modifier(obj, name)
    if mod is None:
        return None
    ids = _inputs(mod.node_group)
    return np.array(
        [[*_get(mod, ids[f"{r} Row"]), _get(mod, ids[f"{r} Offset"])] for r in _ROWS],
        dtype=np.float64,
    )


def _get(mod: Any, identifier: str) -> Any:
    """A modifier input's value: ``mod.properties.inputs`` from Blender 5.2 on, before that
    an ID property of the modifier keyed by the socket's identifier."""
    inputs = getattr(getattr(mod, "properties", None), "inputs", None)
    return getattr(inputs, identifier).value if inputs is not None else mod[identifier]


def _set(mod: Any, identifier: str, value: Any) -> None:
    inputs = getattr(getattr(mod, "properties", None), "inputs", None)
    if inputs is not None:
        getattr(inputs, identifier).value = value
    else:
        mod[identifier] = value


def project(obj: Any, name: str, rows: np.ndarray | None) -> np.ndarray | None:
    """Make the UV map ``name`` of ``obj``'s evaluated mesh the projection ``rows`` (3×4,
    ``geometry.projection_rows``), through a modifier last in its stack; None removes it.
    Returns the rows it held before (None if it had none), so that a caller can take the
    change back by calling this again with them."""
    previous = rows_of(obj, name)
    mod = modifier(obj, name)
    if rows is None:
        if mod is not None:
            obj.modifiers.remove(mod)
        return previous
    if mod is not None and not _last(obj, mod):
        obj.modifiers.remove(mod)  # modifiers added since: re-add ours after them
        mod = None
    if mod is None:
        if obj.modifiers.get(name) is not None:
            raise ValueError(
                f"{obj.name} has a modifier named {name!r} that Sfumato did not make; rename it"
            )
        mod = obj.modifiers.new(name, "NODES")
        mod.node_group = group()
        mod.show_in_editmode = True
        mod.show_expanded = False
    ids = _inputs(mod.node_group)
    _set(mod, ids["UV Map"], name)
    for row, values in zip(_ROWS, np.asarray(rows, dtype=np.float64), strict=True):
        _set(mod, ids[f"{row} Row"], [float(v) for v in values[:3]])
        _set(mod, ids[f"{row} Offset"], float(values[3]))
    obj.update_tag()
    return previous


def remember(material: Any, name: str, rows: np.ndarray) -> None:
    """Keep the projection a texture material was made for on the material itself, so that
    whichever of an object's Sfumato materials is shown (Apply Again, Restore Previous), its
    own projection can be put back with ``sync``."""
    material[_KEY] = {"uv_map": name, "rows": [float(v) for v in np.ravel(rows)]}


def sync(obj: Any) -> None:
    """Make the object's projection modifiers those its materials were made for: each
    Sfumato texture material in its slots gets its projection back, and a projection that no
    material shows any more is removed (what was there before a texture is there again)."""
    wanted: dict[str, np.ndarray] = {}
    for slot in obj.material_slots:
        info = slot.material.get(_KEY) if slot.material is not None else None
        if info is not None and len(info["rows"]) == 12:
            wanted[str(info["uv_map"])] = np.reshape(np.array(info["rows"]), (3, 4))
    for mod in list(obj.modifiers):
        if modifier(obj, mod.name) is not None and mod.name not in wanted:
            obj.modifiers.remove(mod)
    for name, rows in wanted.items():
        mod, current = modifier(obj, name), rows_of(obj, name)
        same = current is not None and np.allclose(current, rows, rtol=1e-5, atol=1e-7)
        if mod is None or not same or not _last(obj, mod):
            project(obj, name, rows)


def _last(obj: Any, mod: Any) -> bool:
    """Whether only projection modifiers follow ``mod``: it sees the final shape."""
    names = [m.name for m in obj.modifiers]
    after = names[names.index(mod.name) + 1 :]
    return all(modifier(obj, name) is not None for name in after)


_KEY = "sfumato_projection"
