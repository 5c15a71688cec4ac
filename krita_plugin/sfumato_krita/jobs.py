"""From what the document holds to a protocol :class:`Job`, and from a :class:`Result` back
to layers: pure functions over plain data, no Krita and no Qt.

Kept apart from ``canvas`` (which alone touches Krita's pixels) so the decisions that matter
to a user — which region is sent, what is masked, where each layer lands and what it is
called — can be tested without starting Krita, and read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from sfumato.hostdirection import directed
from sfumato.hostsession import HistoryRecord
from sfumato.protocol import (
    MAX_REFERENCES,
    MAX_REGIONS,
    Array,
    Control,
    ControlKind,
    Job,
    JobParams,
    LoraRef,
    ProtocolError,
    Reference,
    Region,
    Result,
    Task,
)
from sfumato.protocol import DType as _DType
from sfumato.protocol.messages import SEED_MAX  # the protocol's seeds: uint32

MIN_SIDE = 64  # the smallest side the server generates; smaller regions grow to it
GROUP = "Sfumato"
BACKGROUND_GROUP = "Sfumato background"


class PluginError(Exception):
    """A request the plugin will not send; the message tells the user what to change."""


class Mode(str, Enum):
    """What the user asks for; each maps to one protocol task (``TASKS``)."""

    GENERATE = "generate"  # a new picture in the region
    INPAINT = "inpaint"  # repaint the selection, keep the rest
    BACKGROUND = "background"  # a new picture behind every layer
    REFINE = "refine"  # rework the region (img2img)
    EXPAND = "expand"  # grow the canvas and fill the new margins (outpaint)
    UPSCALE = "upscale"  # the whole image at twice the size, with detail added


TASKS = {
    Mode.GENERATE: Task.GENERATE,
    Mode.INPAINT: Task.INPAINT,
    Mode.BACKGROUND: Task.GENERATE,
    Mode.REFINE: Task.REFINE,
    Mode.EXPAND: Task.OUTPAINT,
    Mode.UPSCALE: Task.UPSCALE,
}
# The modes whose result depends on Strength (img2img-like: the image is noised to it and
# int(steps × strength) steps run). The others start from noise: they send 1.0, and the
# docker hides the box (issue 18 item 6).
USES_STRENGTH = frozenset({Mode.REFINE, Mode.INPAINT, Mode.UPSCALE})


@dataclass(frozen=True)
class Rect:
    x: int
    y: int
    width: int
    height: int

    def grown(self, pad: int, bound_w: int, bound_h: int) -> Rect:
        """This rect plus ``pad`` on each side, then at least MIN_SIDE a side where the
        bounds allow, kept inside (0, 0, bound_w, bound_h)."""
        x0, y0 = max(0, self.x - pad), max(0, self.y - pad)
        x1, y1 = min(bound_w, self.x + self.width + pad), min(bound_h, self.y + self.height + pad)
        x0, x1 = _widen(x0, x1, MIN_SIDE, bound_w)
        y0, y1 = _widen(y0, y1, MIN_SIDE, bound_h)
        return Rect(x0, y0, x1 - x0, y1 - y0)

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.width, self.height]


def _widen(lo: int, hi: int, want: int, bound: int) -> tuple[int, int]:
    missing = want - (hi - lo)
    if missing <= 0:
        return lo, hi
    lo = max(0, lo - missing // 2)
    hi = min(bound, lo + want)
    return max(0, hi - want), hi


@dataclass(frozen=True)
class ControlInput:
    """A control layer as read from the document: its settings and its pixels (RGB uint8,
    the region's size)."""

    kind: ControlKind
    image: Array
    strength: float = 1.0
    preprocess: bool = False


@dataclass(frozen=True)
class CanvasInput:
    """Everything ``canvas.read_input`` takes from a document for one job."""

    canvas_width: int
    canvas_height: int
    region: Rect
    image: Array | None  # RGBA uint8 of the region (the visible image); None for generate
    mask: Array | None  # uint8 ×1 of the region, 255 = selected; None: no selection
    controls: tuple[ControlInput, ...] = ()
    covered: bool = False  # Background: the layers already cover the region opaquely
    references: tuple[Reference, ...] = ()  # reference layers and files (directioncanvas)
    regions: tuple[Region, ...] = ()  # region layers with their prompts, at the job's size


@dataclass(frozen=True)
class Request:
    """The settings of one job, as the docker's model holds them."""

    mode: Mode
    prompt: str = ""
    negative: str = ""
    strength: float = 0.75
    seed: int | None = None
    variants: int = 1
    steps: int = 20
    guidance: float = 7.0
    model: str | None = None
    loras: tuple[LoraRef, ...] = ()
    expand: int = 64  # Expand: pixels added on each side
    scale: int = 2  # Upscale: factor
    preview_every: int = 0


def check_seed(seed: int) -> int:
    """A seed the protocol carries (0 … 2**32 − 1, docs/protocol.md), else PluginError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise PluginError(
            f"the seed {seed!r} is not a whole number from 0 to {SEED_MAX}: type one in that "
            "range, or set Seed to random"
        )
    return seed


def region_for(mode: Mode, width: int, height: int, selection: Rect | None, pad: int) -> Rect:
    """The part of the canvas a job works on: the selection's bounds plus ``pad`` pixels of
    context, or the whole canvas (always, for Expand and Upscale, which work on all of it)."""
    whole = Rect(0, 0, width, height)
    if selection is None or mode in (Mode.EXPAND, Mode.UPSCALE):
        return whole
    return selection.grown(pad, width, height)


def round_up8(n: int) -> int:
    return max(MIN_SIDE, -(-n // 8) * 8)


def check_size(mode: Mode, job: Job, inp: CanvasInput, max_side: int) -> None:
    """Refuse a job whose images would exceed the server's ``max_image_side``, in the
    artist's terms (the region, the expanded or upscaled image) and with what to do; the
    result's size is ``Job.output_size()``, the protocol's one rule for it."""
    region, canvas = inp.region, (inp.canvas_width, inp.canvas_height)
    limit = f"this server accepts at most {max_side} a side"
    w, h = job.output_size()
    if mode is Mode.EXPAND and max(w, h) > max_side:
        e = job.params.expand[0]
        raise PluginError(
            f"expanding the {canvas[0]}×{canvas[1]} image by {e} px a side makes it {w}×{h}; "
            f"{limit} — scale the image down (Image ▸ Scale Image) first"
        )
    if mode is Mode.UPSCALE and max(w, h) > max_side:
        s = job.params.scale
        raise PluginError(
            f"upscaling the {canvas[0]}×{canvas[1]} image ×{s} makes it {w}×{h}; {limit} — "
            f"upscale an image of at most {max_side // s} a side, or crop it first"
        )
    if max(job.params.width, job.params.height, w, h) > max_side:
        raise PluginError(
            f"the region is {region.width}×{region.height}; {limit} — select a smaller "
            "region or scale the image down (Image ▸ Scale Image), then Upscale"
        )


def build_job(
    request: Request,
    inp: CanvasInput,
    capabilities: tuple[str, ...],
    job_id: str,
    max_side: int | None = None,
) -> Job:
    """The protocol job for ``request`` on ``inp``; raises PluginError for images over the
    server's ``max_side`` (``limits``). Previews are asked for only where the server offers
    them; every other capability is checked by the host session (``Offer.check``), which
    refuses what the server did not announce."""
    if request.seed is not None:
        check_seed(request.seed)
    task = TASKS[request.mode]
    params = JobParams(
        prompt=request.prompt,
        negative=request.negative,
        width=round_up8(inp.region.width),
        height=round_up8(inp.region.height),
        steps=request.steps,
        guidance=request.guidance,
        seed=request.seed,
        strength=request.strength,
        variants=request.variants,
        model=request.model,
        loras=request.loras,
        preview_every=request.preview_every if "preview" in capabilities else 0,
        expand=(request.expand,) * 4 if task is Task.OUTPAINT else (0, 0, 0, 0),
        scale=request.scale if task is Task.UPSCALE else 2,
    )
    controls = tuple(
        Control(c.kind, c.image, strength=c.strength, preprocess=c.preprocess) for c in inp.controls
    )
    image = mask = None
    if task is not Task.GENERATE:
        if inp.image is None:
            raise PluginError(f"{request.mode.value} needs the image; nothing was read")
        image = inp.image
    if task is Task.INPAINT:
        mask = inp.mask if inp.mask is not None else full_mask(inp.region)
    job = Job(job_id, task, params, image, mask, controls)
    if len(inp.references) > MAX_REFERENCES:
        raise PluginError(
            f"inputs.references: {len(inp.references)} references; the server takes at most "
            f"{MAX_REFERENCES} a job — remove some from the control list"
        )
    if len(inp.regions) > MAX_REGIONS:
        raise PluginError(
            f"inputs.regions: {len(inp.regions)} region layers show in this area; the server "
            f"takes at most {MAX_REGIONS} a job — clear the prompt of some in the docker"
        )
    if inp.references or inp.regions:
        try:  # checked as the server will: too many, a mask off the job's size, no prompt
            job = directed(job, inp.references, inp.regions)
        except ProtocolError as exc:
            raise PluginError(str(exc)) from None
    if max_side is not None:
        check_size(request.mode, job, inp, max_side)
    return job


def full_mask(region: Rect) -> Array:
    return Array(
        _DType.UINT8, (region.height, region.width, 1), b"\xff" * (region.width * region.height)
    )


# --------------------------------------------------------------------------- results → layers


@dataclass(frozen=True)
class LayerPlan:
    """One paint layer to add: RGB pixels, optional alpha (the selection), where, and name."""

    name: str
    x: int
    y: int
    image: Array  # uint8 H × W × 3, already cropped to the region
    alpha: Array | None  # uint8 H × W × 1; None: opaque
    visible: bool


@dataclass(frozen=True)
class Placement:
    """What a result does to the document, decided before anything is touched."""

    group: str
    at_bottom: bool  # the group goes below every other layer (Background)
    layers: tuple[LayerPlan, ...]
    grow: tuple[int, int, int, int] | None = None  # Expand: resize to (x, y, w, h), may be < 0
    scale_to: tuple[int, int] | None = None  # Upscale: scale the image to (w, h) first


def layer_name(prompt: str, seed: int, mode: Mode) -> str:
    text = " ".join(prompt.split()) or mode.value
    if len(text) > 48:
        text = text[:47] + "…"
    return f"{text} · seed {seed}"


def placement_for(job: Job, request: Request, inp: CanvasInput, result: Result) -> Placement:
    """Where each image of ``result`` goes: the first visible, the variants hidden beside it;
    clipped to the selection (its alpha), offset to the region. Expand and Upscale resize
    the document to ``job.output_size()`` first."""
    mode = request.mode
    region, mask = inp.region, inp.mask
    grow = scale_to = None
    if mode is Mode.EXPAND:
        left, top = job.params.expand[:2]
        grow = (-left, -top, *job.output_size())
        region = Rect(0, 0, grow[2], grow[3])
        mask = margins_mask(region, Rect(left, top, inp.canvas_width, inp.canvas_height))
    elif mode is Mode.UPSCALE:
        scale_to = job.output_size()
        region, mask = Rect(0, 0, *scale_to), None
    layers = []
    for n, (image, seed) in enumerate(zip(result.images, result.seeds, strict=False)):
        layers.append(
            LayerPlan(
                name=layer_name(request.prompt, seed, mode),
                x=region.x,
                y=region.y,
                image=crop(image, region.width, region.height),
                alpha=mask,
                visible=n == 0,
            )
        )
    group = BACKGROUND_GROUP if mode is Mode.BACKGROUND else GROUP
    return Placement(group, mode is Mode.BACKGROUND, tuple(layers), grow, scale_to)


def margins_mask(outer: Rect, inner: Rect) -> Array:
    """255 in ``outer`` around ``inner``, 0 over it: Expand's layer paints only the new
    margins, so the original picture stays exactly as it was (the engine's blend band reaches
    into it; the layer must not)."""
    w = outer.width
    full = b"\xff" * w
    hole = b"\xff" * inner.x + b"\x00" * inner.width + b"\xff" * (w - inner.x - inner.width)
    rows = (hole if inner.y <= y < inner.y + inner.height else full for y in range(outer.height))
    return Array(_DType.UINT8, (outer.height, w, 1), b"".join(rows))


def crop(image: Array, width: int, height: int) -> Array:
    """The top-left ``width × height`` of ``image`` (a generated image is rounded up to
    multiples of 8; the region need not be). A smaller image is an error, not a stretch."""
    h, w, c = image.shape
    if (h, w) == (height, width):
        return image
    if h < height or w < width:
        raise PluginError(
            f"the server sent {w}×{h} for a {width}×{height} region; update the plugin or server"
        )
    data = memoryview(image.data).cast("B")
    rows = b"".join(data[(y * w) * c : (y * w + width) * c] for y in range(height))
    return Array(image.dtype, (height, width, c), rows)


def history_entry(
    job: Job, request: Request, inp: CanvasInput, result: Result, names: list[str]
) -> dict[str, Any]:
    """What the document remembers of a finished job: the host session's history record
    (the same in Blender) plus what only Krita knows — the mode, the controls, the region,
    whether a selection masked it, and the layers it became."""
    return {
        **HistoryRecord.of(job, result).to_dict(),
        "mode": request.mode.value,
        "controls": [[c.kind.value, c.strength, c.preprocess] for c in inp.controls],
        "region": inp.region.to_list(),
        "selection": inp.mask is not None,
        # weight, start, end, kind ("style", "content"; null: the whole picture steers)
        "references": [
            [r.weight, r.start, r.end, r.kind.value if r.kind else None] for r in inp.references
        ],
        "regions": [[r.prompt, r.negative] for r in inp.regions],
        "layers": names,
    }
