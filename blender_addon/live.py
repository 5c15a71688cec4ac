"""The live viewport: while Live is on, every change of the camera or the scene's objects
becomes a small live job, and its image replaces the last one in place.

Three parts, none of which ever waits on the network. A ``depsgraph_update_post`` handler
only counts changes that could alter the passes (an object moved or reshaped, a camera's
lens; never an image, a material or a render setting). A ``bpy.app.timers`` timer hands the
count to the host-neutral :class:`sfumato.hostlive.LiveLoop` (debounce, the newest job only)
and, when the loop says so, renders the passes at the preview size and sends one live job
(texture-from-view or backdrop, ``Scene.sfumato.live.mode``). The bridge's timer brings the
job's end here (:func:`ended`): the newest result is written into one image, "Sfumato Live",
which the targets show through one material and a projection modifier — no history entry,
no new image per frame. Our own changes (the pass render, placing a result) happen with the
handler muted and are evaluated before it listens again, so they never count as a change.

Live off cancels what runs and puts back what Live replaced (materials, projections, the
camera's background); a look worth keeping is made for real with Texture from View.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import bpy
import numpy as np

from sfumato.client import ConnectionFailed
from sfumato.hostlive import LiveLoop, Send, live_job
from sfumato.hostsession import HostError, JobRecord, JobState

from . import bridge, geometry, jobs, liveprops, prefs, projection, scene
from .pending import BackdropTarget, Pending, TextureTarget

log = logging.getLogger(__name__)
KIND = "LIVE"  # Pending.kind of a live job: the bridge hands its end to ended()
NAME = "Sfumato Live"  # the live image, its material and its projection (UV map)
INTERVAL = 0.05  # seconds between timer calls while Live is on


@dataclass
class Live:
    """What Live keeps while it runs (module state: it is this Blender session's, like the
    bridge; nothing here is saved)."""

    loop: LiveLoop = field(default_factory=LiveLoop)
    key: str = ""
    seed: int = 0
    changes: int = 0  # counted by the depsgraph handler
    seen: int = 0  # the count the loop was last told about
    muted: bool = False
    materials: dict[str, list[tuple[Any, str]]] = field(default_factory=dict)  # obj → slots
    background: tuple[str, bool] | None = None  # camera, show_background_images before


LIVE: Live | None = None


# ---------------------------------------------------------------------------------- on / off


def start(context: Any) -> str:
    """Live on: connect (a local server answers at once), then the timer sends the scene as
    it is. Raises ConnectionFailed or jobs.UserError with the fix."""
    global LIVE
    stop()
    link, preferences = bridge.get(), prefs.get(context)
    offer = link.ensure_connected(preferences.url, preferences.token)
    _require(offer, context.scene.sfumato.live.mode)
    settings = context.scene.sfumato
    seed = secrets.randbelow(2**32) if settings.random_seed else jobs.parse_seed(settings.seed)
    LIVE = Live(key=f"blender:{context.scene.name}"[:200], seed=seed)
    LIVE.loop.start(time.monotonic(), supersedes=offer.has("live"))
    if _on_change not in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.append(_on_change)
    if not bpy.app.timers.is_registered(tick):
        bpy.app.timers.register(tick, first_interval=0.0)
    st = liveprops.state()
    st.on, st.status, st.error, st.sent, st.shown = True, "starting", "", 0, 0
    return f"live {context.scene.sfumato.live.mode.lower()} on"


def stop(*, restore: bool = True) -> tuple[str, ...]:
    """Live off: cancel what runs, stop listening, put back what Live replaced (``restore``
    False: the file it changed is gone). Returns the jobs it cancelled."""
    global LIVE
    live, LIVE = LIVE, None
    if _on_change in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(_on_change)
    if bpy.app.timers.is_registered(tick):
        bpy.app.timers.unregister(tick)
    if live is None:
        return ()
    running = live.loop.stop()
    link = bridge.BRIDGE
    for job_id in running:
        with contextlib.suppress(ConnectionFailed):  # gone with the server: nothing runs
            if link is not None:
                link.cancel(job_id)
    if restore:
        with _muted(live):
            _restore(live)
    with contextlib.suppress(Exception):  # no window manager while a file is closing
        st = liveprops.state()
        st.on, st.status = False, "off"
    return running


def _require(offer: Any, mode: str) -> None:
    if "control" not in offer.capabilities:
        raise jobs.UserError(
            "this server takes no depth/normal controls (no 'control' capability), which Live "
            f"{mode.lower()} needs; update the Sfumato server"
        )


# ---------------------------------------------------------------------------------- changes


def _on_change(_scene: Any, depsgraph: Any) -> None:
    """depsgraph_update_post: count changes the passes could show; nothing else, so that
    dragging stays smooth. Muted while Live itself renders or places a result."""
    live = LIVE
    if live is None or live.muted:
        return
    for update in depsgraph.updates:
        obj = update.id
        if not isinstance(obj, bpy.types.Object) or obj.get(scene.BACKDROP_TAG):
            continue
        if update.is_updated_transform or update.is_updated_geometry:
            live.changes += 1
            return


@contextlib.contextmanager
def _muted(live: Live) -> Iterator[None]:
    """Our own changes, evaluated before the handler listens again: in the UI the depsgraph
    would otherwise run them later and count them as the user's."""
    live.muted = True
    try:
        yield
    finally:
        try:
            bpy.context.view_layer.update()
        finally:
            live.muted = False


# ---------------------------------------------------------------------------------- the timer


def tick(now: float | None = None) -> float | None:
    """The live timer (tests call it with their own ``now``: the bpy module fires no timers).
    Never raises: Blender drops a timer that raises."""
    live = LIVE
    if live is None:
        return None
    now = time.monotonic() if now is None else now
    try:
        if live.changes != live.seen:
            live.seen = live.changes
            live.loop.changed(now)
        send = live.loop.due(now)
        if send is not None:
            _send(live, send)
    except Exception as exc:  # a bug: say it, keep the timer
        log.exception("Sfumato Live hit an unexpected error")
        live.loop.skipped()
        _say(error=f"unexpected error in Sfumato Live: {exc!r}; please report it")
    return INTERVAL


def _send(live: Live, send: Send) -> None:
    context = bpy.context
    link = bridge.get()
    for job_id in send.cancel:  # a server without 'live' does not supersede
        link.cancel(job_id)
    offer = link.offer
    settings = context.scene.sfumato
    prepare = jobs.prepare_texture if settings.live.mode == "TEXTURE" else jobs.prepare_backdrop
    try:
        with _muted(live):
            pending = prepare(context, _Overrides(settings, live.seed), offer)
        job = live_job(
            replace(pending.job, id=f"blender-live-{secrets.token_hex(6)}"), live.key, offer
        )
        pending = replace(pending, job=job, kind=KIND)
        link.link.submit(job, pending, "live")
    except (jobs.UserError, HostError, ConnectionFailed, RuntimeError, OSError) as exc:
        live.loop.skipped()  # the next change tries again
        _say(error=str(exc), status="waiting for a fix")
        return
    live.loop.sent(job.id)
    st = liveprops.state()
    st.sent, st.status, st.error = st.sent + 1, "rendering", ""


class _Overrides:
    """The Generate panel's settings with Live's size, steps and one seed for the whole
    session (a new seed per frame would make every frame a different picture)."""

    def __init__(self, settings: Any, seed: int) -> None:
        self._settings = settings
        live = settings.live
        self._own = {"resolution": live.resolution, "steps": live.steps,
                     "random_seed": False, "seed": str(seed)}  # fmt: skip

    def __getattr__(self, name: str) -> Any:
        own = self.__dict__["_own"]
        return own[name] if name in own else getattr(self.__dict__["_settings"], name)


# ---------------------------------------------------------------------------------- results


def ended(record: JobRecord[Pending]) -> None:
    """A live job's end (called by the bridge's timer): the newest result goes into the live
    image; a superseded or cancelled one is simply dropped; a failure is shown."""
    live = LIVE
    if live is None or not live.loop.ours(record.id):
        return
    live.loop.ended(record.id)
    if record.state is JobState.DONE and record.result is not None:
        if not live.loop.show(record.id):
            return  # older than what is shown, or Live went off meanwhile
        try:
            with _muted(live):
                _place(live, record.purpose, record.result.images[0].to_numpy())
        except (LookupError, ValueError, RuntimeError, ReferenceError) as exc:
            _say(error=f"could not show live image {record.id}: {exc}", status="")
            return
        st = liveprops.state()
        st.shown, st.status, st.error = st.shown + 1, "live", ""
    elif record.state in (JobState.FAILED, JobState.LOST):
        _say(error=record.message, status="failed")


def _place(live: Live, pending: Pending, pixels: np.ndarray) -> None:
    image = bpy.data.images.get(NAME)
    if image is None:
        height, width = pixels.shape[:2]
        image = bpy.data.images.new(NAME, width, height, alpha=pixels.shape[2] == 4)
    scene.write_pixels(image, pixels)
    if isinstance(pending.detail, TextureTarget):
        _place_texture(live, pending, pending.detail, image)
    elif isinstance(pending.detail, BackdropTarget):
        _place_backdrop(live, pending.detail, image)


def _place_texture(live: Live, pending: Pending, d: TextureTarget, image: Any) -> None:
    material = bpy.data.materials.get(NAME)
    if material is None:
        material = scene.texture_material(NAME, image, NAME)
    to_camera, camera_to_clip = np.array(d.world_to_camera), np.array(d.projection)
    for name in pending.targets:
        obj = bpy.data.objects.get(name)
        if obj is None:
            continue  # deleted since: the next frame has the new selection
        stood = d.stood_at(name)
        rows = geometry.projection_rows(
            to_camera, camera_to_clip, np.array(stood or obj.matrix_world)
        )
        projection.project(obj, NAME, rows)
        if name not in live.materials:
            live.materials[name] = scene.slot_state(obj)
        if any(slot.material != material for slot in obj.material_slots) or not obj.material_slots:
            scene.assign_material(obj, material)


def _place_backdrop(live: Live, d: BackdropTarget, image: Any) -> None:
    camera = bpy.data.objects.get(d.camera)
    if camera is None:
        raise LookupError(f"camera {d.camera!r} was deleted while the live job ran")
    data = camera.data
    if live.background is None or live.background[0] != camera.name:
        live.background = (camera.name, data.show_background_images)
    slot = next((b for b in data.background_images if b.image == image), None)
    if slot is None:
        slot = data.background_images.new()
        slot.image, slot.display_depth, slot.frame_method = image, "BACK", "FIT"
    data.show_background_images = True


def _restore(live: Live) -> None:
    """Put back what Live replaced; what was deleted meanwhile is skipped."""
    for name, slots in live.materials.items():
        obj = bpy.data.objects.get(name)
        if obj is not None:
            scene.restore_materials(obj, slots)
            projection.project(obj, NAME, None)
    live.materials.clear()
    if live.background is not None:
        camera = bpy.data.objects.get(live.background[0])
        if camera is not None and camera.data is not None:
            for b in [b for b in camera.data.background_images if b.image and b.image.name == NAME]:
                camera.data.background_images.remove(b)
            camera.data.show_background_images = live.background[1]
        live.background = None
    material = bpy.data.materials.get(NAME)
    if material is not None and material.users == 0:
        bpy.data.materials.remove(material)


def _say(*, error: str = "", status: str | None = None) -> None:
    st = liveprops.state()
    st.error = error
    if status is not None:
        st.status = status


# ---------------------------------------------------------------------------------- files


@bpy.app.handlers.persistent
def _file_closing(*_args: Any) -> None:
    """A file is opened: what Live changed goes with the old file, and nothing runs on."""
    stop(restore=False)


def register() -> None:
    bridge.get().enders[KIND] = ended  # a live job's end comes here, never to apply
    if _file_closing not in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.append(_file_closing)


def unregister() -> None:
    stop()
    if _file_closing in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_file_closing)
