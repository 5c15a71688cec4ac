"""What a finished job does to the scene: ``apply`` puts its image where it belongs (all of it
or, when any step fails, none of it: ``rollback``), and the history's Apply Again and Restore
Previous show it again or put back what was there before.

Everything needed to restore is recorded on the history entry when the result is applied
(materials, UV maps, the world, the backdrop), as pointers or names, so it survives saving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bpy
import numpy as np

from sfumato.hostsession import HistoryRecord
from sfumato.protocol import Result

from . import geometry, projection, scene, texjob
from .pending import BackdropTarget, InpaintTarget, Pending, TextureTarget
from .rollback import Changes


def provenance(pending: Pending, result: Result) -> dict[str, Any]:
    """What made an image, kept on the image so the .blend says it (prompt, seed, model …):
    the session's history record, in ID-property form."""
    record = HistoryRecord.of(pending.job, result)
    return {
        "job_id": record.job_id,
        "kind": pending.label,
        "task": record.task,
        "prompt": record.prompt,
        "negative": record.negative,
        "seed": str(record.seeds[0]),  # decimal: ID properties hold 32-bit signed ints only
        "model": record.model,
        "loras": dict(record.loras),
        "steps": record.steps,
        "guidance": record.guidance,
        "tile": record.tile,
        "tiny": record.tiny,
        "finished": record.finished,
    }


def apply(target_scene: Any, pending: Pending, result: Result) -> str:
    """Put a finished job's image where it belongs and record it in the history; returns
    what was done, for the status line. Runs on the main thread (timer or wait). Whatever
    fails on the way, the file is left as it was and the exception goes to the caller."""
    if not result.images:
        raise ValueError(f"job {result.id} returned no image")
    changes = Changes()
    try:
        return _apply(target_scene, pending, result, changes)
    except BaseException:
        changes.undo()
        raise


def _apply(target_scene: Any, pending: Pending, result: Result, changes: Changes) -> str:
    settings, scene_name = target_scene.sfumato, target_scene.name
    label = pending.job.params.prompt[:40] or "untitled"
    name, pixels = f"Sfumato {pending.kind.title()} {label}", result.images[0].to_numpy()
    note = ""
    if pending.kind == "INPAINT":  # the source with the new pixels inside the mask only
        image = scene.inpainted_image(
            name, _inpaint_source(pending), pixels, _mask(pending), provenance(pending, result)
        )
    elif pending.kind == "OBJECT":  # the UV texture, texels no view saw filled
        done = texjob.fill(pending, result)
        note = f"; {done.line}"
        image = scene.new_image(
            name, done.pixels, {**provenance(pending, result), "coverage": done.line}
        )
    else:
        image = scene.new_image(name, pixels, provenance(pending, result))
    index_before = settings.history_index
    entry = settings.history.add()
    position = len(settings.history) - 1

    def drop_entry() -> None:
        history = bpy.data.scenes[scene_name].sfumato
        history.history.remove(position)
        history.history_index = index_before

    changes.on_undo("the history entry", drop_entry)
    entry.name, entry.kind, entry.image, entry.job_id = label, pending.kind, image, result.id
    entry.prompt, entry.model = pending.job.params.prompt, result.model
    entry.seed = str(result.seeds[0])
    settings.history_index = position
    APPLY[pending.kind](target_scene, pending, image, entry, changes)
    return f"{pending.kind.title().lower()} from job {result.id} applied (seed {result.seeds[0]}){note}"


def _detail(pending: Pending, kind: type[Any]) -> Any:
    """The job's typed target record (a job made without one is a bug in prepare_*)."""
    if not isinstance(pending.detail, kind):
        raise ValueError(f"job {pending.job.id} was sent without its {kind.__name__}")
    return pending.detail


def _inpaint_source(pending: Pending) -> Any:
    name = _detail(pending, InpaintTarget).source
    source = bpy.data.images.get(name)
    if source is None:
        raise LookupError(f"the texture {name!r} was deleted while the job ran")
    return source


def _mask(pending: Pending) -> np.ndarray:
    if pending.job.mask is None:
        raise ValueError(f"job {pending.job.id} was sent without a mask")
    return pending.job.mask.to_numpy()


def _object(name: str) -> Any:
    obj = bpy.data.objects.get(name)
    if obj is None:
        raise LookupError(f"object {name!r} was deleted or renamed while the job ran")
    return obj


def _apply_texture(
    target_scene: Any, pending: Pending, image: Any, entry: Any, changes: Changes
) -> None:
    d: TextureTarget = _detail(pending, TextureTarget)
    uv_map = d.uv_map
    to_camera, camera_to_clip = np.array(d.world_to_camera), np.array(d.projection)
    objects = [_object(name) for name in pending.targets]
    entry.uv_map, entry.camera = uv_map, bpy.data.objects.get(d.camera)
    for obj in objects:
        target = entry.targets.add()
        layers = obj.data.uv_layers
        target.previous_uv = layers.active.name if layers.active is not None else ""
        target.previous_render_uv = next((x.name for x in layers if x.active_render), "")
        # where the object stood when the passes were rendered (it may move while the job runs)
        at = d.stood_at(obj.name)
        stood = np.array(at if at is not None else obj.matrix_world)
        rows = geometry.projection_rows(to_camera, camera_to_clip, stood)
        name, before = obj.name, projection.rows_of(obj, uv_map)  # None: no projection yet
        changes.on_undo(
            f"the projection of {name}",
            lambda name=name, before=before: projection.project(
                bpy.data.objects[name], uv_map, before
            ),
        )
        projection.project(obj, uv_map, rows)
        material = scene.texture_material(f"Sfumato {obj.name}", image, uv_map)
        projection.remember(material, uv_map, rows)  # for Apply Again / Restore (sync)
        _record(target, obj, material, changes)


def _apply_seamless(
    target_scene: Any, pending: Pending, image: Any, entry: Any, changes: Changes
) -> None:
    for name in pending.targets:
        obj = _object(name)
        uv = obj.data.uv_layers.active
        material = scene.texture_material(f"Sfumato {obj.name}", image, uv and uv.name)
        _record(entry.targets.add(), obj, material, changes)


def _record(target: Any, obj: Any, material: Any, changes: Changes) -> None:
    changes.keep_materials(obj)
    target.object, target.material = obj, material
    for material_before, link in scene.assign_material(obj, material):
        previous = target.previous.add()
        previous.material, previous.link = material_before, link


def _apply_world(
    target_scene: Any, pending: Pending, image: Any, entry: Any, changes: Changes
) -> None:
    _show_world(target_scene, image, entry, changes)


def _show_world(target_scene: Any, image: Any, entry: Any, changes: Changes | None) -> None:
    """The panorama goes into a copy of the scene's world (or a new one), never into the
    user's own: their world (a Sky Texture, its links) stays as it was, for Restore."""
    previous, scene_name = target_scene.world, target_scene.name
    if changes is not None:
        changes.on_undo(
            "the scene's world", lambda: setattr(bpy.data.scenes[scene_name], "world", previous)
        )
    if previous is not None:
        target_scene.world = previous.copy()
        target_scene.world.name = "Sfumato World"
    entry.previous_world = previous
    entry.world = scene.set_world_environment(target_scene, image)


def _apply_backdrop(
    target_scene: Any, pending: Pending, image: Any, entry: Any, changes: Changes
) -> None:
    d: BackdropTarget = _detail(pending, BackdropTarget)
    camera = _object(d.camera)
    data, camera_name = camera.data, camera.name
    entry.camera, entry.distance = camera, d.distance
    slots_before = len(data.background_images)
    slot = _our_background(data)
    entry.show_background = data.show_background_images
    entry.had_background_slot = slot is not None
    entry.previous_image = slot.image if slot is not None else None
    previous_image = entry.previous_image
    plane_name = f"Sfumato Backdrop {camera_name}"
    old = bpy.data.objects.get(plane_name)
    if old is not None:  # kept aside (scene.camera_backdrop would delete it) until done
        entry.previous_distance = scene.backdrop_distance(old)
        old.name = f"{plane_name} (replaced)"
        kept_name = old.name

        def put_old_back() -> None:
            new = bpy.data.objects.get(plane_name)
            if new is not None:
                bpy.data.objects.remove(new)
            bpy.data.objects[kept_name].name = plane_name

        changes.on_undo("the previous backdrop plane", put_old_back)

    show, had_slot = entry.show_background, entry.had_background_slot

    def put_background_back() -> None:
        cam = bpy.data.objects[camera_name].data
        cam.show_background_images = show
        if had_slot:
            ours = _our_background(cam, also=image)
            if ours is not None:
                ours.image = previous_image
        while len(cam.background_images) > slots_before:
            cam.background_images.remove(cam.background_images[-1])

    changes.on_undo("the camera's background images", put_background_back)
    scene.camera_backdrop(target_scene, camera, image, d.distance)
    if old is not None:  # the last step: from here on nothing can fail
        _remove_object(old)


def _our_background(camera_data: Any, also: Any = None) -> Any:
    """The camera's background image slot Sfumato uses (as scene.camera_backdrop finds it)."""
    for b in camera_data.background_images:
        if b.image is None or b.image == also or scene.PROVENANCE in b.image:
            return b
    return None


def _remove_object(obj: Any) -> None:
    mesh = obj.data
    bpy.data.objects.remove(obj)
    if mesh is not None and mesh.users == 0:
        bpy.data.meshes.remove(mesh)


def _apply_inpaint(
    target_scene: Any, pending: Pending, image: Any, entry: Any, changes: Changes
) -> None:
    d: InpaintTarget = _detail(pending, InpaintTarget)
    obj = _object(pending.targets[0])
    material = bpy.data.materials.get(d.material)
    node = material.node_tree.nodes.get(d.node) if material else None
    if node is None:
        raise LookupError(f"the texture node of {obj.name} was removed while the job ran")
    previous = node.image
    image[scene.PROVENANCE]["source_image"] = d.source
    changes.on_undo("the inpainted texture", lambda: setattr(node, "image", previous))
    entry.previous_image = previous
    target = entry.targets.add()
    target.object, target.material, target.node = obj, material, node.name
    node.image = image


APPLY: dict[str, Callable[[Any, Pending, Any, Any, Changes], None]] = {
    "TEXTURE": _apply_texture,
    "WORLD": _apply_world,
    "BACKDROP": _apply_backdrop,
    "INPAINT": _apply_inpaint,
    "SEAMLESS": _apply_seamless,
    "OBJECT": texjob.apply_object,
}


# ---------------------------------------------------------------------------------- history


def reapply(target_scene: Any, entry: Any) -> str:
    """Show a past result again where it was first applied; returns what was done."""
    if entry.image is None:
        raise LookupError("this result's image was deleted")
    if entry.kind == "WORLD":
        if entry.world is not None:
            target_scene.world = entry.world
        else:  # an entry from an add-on that kept no world of its own
            _show_world(target_scene, entry.image, entry, None)
        return f"the world shows {entry.image.name} again"
    if entry.kind == "BACKDROP":
        if entry.camera is None:
            raise LookupError("the camera of this backdrop was deleted")
        scene.camera_backdrop(target_scene, entry.camera, entry.image, entry.distance)
        return f"the backdrop of {entry.camera.name} shows {entry.image.name} again"
    done = []
    for target in entry.targets:
        obj = target.object
        if obj is None:
            continue
        if entry.kind == "INPAINT":
            _inpaint_node(target).image = entry.image
            shown = {slot.material for slot in obj.material_slots}
            if target.material is not None and target.material not in shown:
                scene.assign_material(obj, target.material)  # its material was replaced since
        elif target.material is not None:
            scene.assign_material(obj, target.material)
            projection.sync(obj)  # the projection this material was made for
        done.append(obj.name)
    if not done:
        raise LookupError("the objects this result was applied to were deleted")
    return f"{entry.image.name} applied again to {', '.join(done)}"


def restore(target_scene: Any, entry: Any) -> str:
    """Undo a result: put back what was there before it (materials and the active UV maps,
    the texture of an inpaint, the world, the backdrop); returns what was done."""
    if entry.kind == "WORLD":
        return _restore_world(target_scene, entry)
    if entry.kind == "BACKDROP":
        return _restore_backdrop(target_scene, entry)
    done = []
    for target in entry.targets:
        obj = target.object
        if obj is None:
            continue
        if entry.kind == "INPAINT":
            if entry.previous_image is None:
                raise LookupError("the texture this inpaint replaced was deleted")
            _inpaint_node(target).image = entry.previous_image
        else:
            scene.restore_materials(obj, _previous_slots(target))
            projection.sync(obj)  # the projections of the materials it shows again, no other
            _activate_uv(obj, target.previous_uv, target.previous_render_uv)
        done.append(obj.name)
    if not done:
        raise LookupError("the objects this result was applied to were deleted")
    return f"{', '.join(done)}: back to before {entry.name!r}"


def _previous_slots(target: Any) -> list[tuple[Any, str]]:
    """What the target's slots held before, as ``scene.restore_materials`` takes it. Entries
    from before links were recorded: one empty entry meant no slot, others were the mesh's."""
    previous = [(p.material, p.link) for p in target.previous]
    if any(link == "" for _, link in previous):
        if len(previous) == 1 and previous[0][0] is None:
            return []
        return [(material, "OBJECT") for material, _ in previous]
    return previous


def _restore_world(target_scene: Any, entry: Any) -> str:
    if entry.world is None:
        raise LookupError(
            "this World result was applied by an older Sfumato add-on, which kept no copy of "
            "the world it changed, so there is nothing to restore; pick the world in "
            "Properties ▸ World"
        )
    target_scene.world = entry.previous_world
    if entry.previous_world is None:
        return "the scene has no world again, as before"
    return f"the scene's world is {entry.previous_world.name} again"


def _restore_backdrop(target_scene: Any, entry: Any) -> str:
    camera = entry.camera
    if camera is None:
        raise LookupError("the camera of this backdrop was deleted")
    if entry.previous_image is not None:  # an earlier Sfumato backdrop: show it again
        scene.camera_backdrop(target_scene, camera, entry.previous_image, entry.previous_distance)
        return f"the backdrop of {camera.name} shows {entry.previous_image.name} again"
    plane = bpy.data.objects.get(f"Sfumato Backdrop {camera.name}")
    if plane is not None:
        _remove_object(plane)
    slot = _our_background(camera.data, also=entry.image)
    if slot is not None:
        if entry.had_background_slot:
            slot.image = None
        else:
            camera.data.background_images.remove(slot)
    camera.data.show_background_images = entry.show_background
    return f"{camera.name} has no backdrop again, as before"


def _inpaint_node(target: Any) -> Any:
    """The texture node an inpaint replaced the image of: the one it recorded, else (entries
    from before nodes were recorded) the object's texture node."""
    material = target.material
    node = material.node_tree.nodes.get(target.node) if material and target.node else None
    if node is not None:
        return node
    if target.object is None:
        raise LookupError("the object of this inpaint was deleted")
    return scene.texture_node(target.object)[1]


def _activate_uv(obj: Any, active: str, render: str) -> None:
    """Make these UV maps the active and the render one again (those that still exist)."""
    layers = obj.data.uv_layers
    if active and active in layers:
        layers.active = layers[active]
    if render and render in layers:
        layers[render].active_render = True
