"""The one exception hierarchy of the protocol, and the stable error codes.

Error codes are part of the wire format (docs/protocol.md, "Errors"): clients switch on them,
so a code is never renamed; new ones may be added.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Stable codes carried by ``error`` messages."""

    BAD_FRAME = "bad_frame"  # not a msgpack map, truncated, or blobs out of range
    BAD_VERSION = "bad_version"  # the frame's `v` is not a version this peer speaks
    UNKNOWN_TYPE = "unknown_type"  # a `type` this peer does not know
    BAD_FIELD = "bad_field"  # a field is missing, of the wrong type or out of range
    BAD_ARRAY = "bad_array"  # wrong dtype, shape or byte length of an array
    FRAME_TOO_LARGE = "frame_too_large"
    IMAGE_TOO_LARGE = "image_too_large"
    QUEUE_FULL = "queue_full"
    DUPLICATE_ID = "duplicate_id"  # a job id that this client already has queued or running
    HELLO_REQUIRED = "hello_required"  # a message other than `hello` came first
    UNAUTHORIZED = "unauthorized"  # missing or wrong token
    UNKNOWN_MODEL = "unknown_model"
    MODEL_UNAVAILABLE = "model_unavailable"  # registered, but its weights are missing
    NOT_APPROVED = "not_approved"  # the registry marks the model, LoRA or ControlNet unapproved
    UNSUPPORTED = "unsupported"  # a task or option this model or server cannot do
    NOT_FOUND = "not_found"  # fetch/cancel of a job id this client does not own
    JOB_FAILED = "job_failed"  # the engine failed while running the job
    INTERNAL = "internal"  # a bug in the server; the message says where to report it
    INTERRUPTED = "interrupted"  # lost to a server restart and could not run again; resubmit
    STORE_FAILED = "store_failed"  # the result store could not write or read (full, read-only, damaged)
    ENGINE_UNAVAILABLE = "engine_unavailable"  # the ML engine cannot load (e.g. torch fails to import)
    TOO_MANY_CONNECTIONS = "too_many_connections"  # the server is at max_connections; it closes (1013)
    SERVER_BUSY = "server_busy"  # no room in the server's memory budget for this message; resend soon
    HELLO_TIMEOUT = "hello_timeout"  # no hello within the server's hello_timeout; it closes (1008)


class SfumatoError(Exception):
    """Base of every error Sfumato raises on purpose."""


class ProtocolError(SfumatoError, ValueError):
    """A frame or message that breaks the protocol. Carries what goes into an ``error`` message.

    ``field`` names the offending field with a dotted path (``params.width``,
    ``inputs.mask``) so that a client can point at the widget that produced it.
    """

    def __init__(
        self, code: ErrorCode, message: str, *, field: str | None = None, id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.id = id  # the job id, when the broken message named one

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value!r}, {self.message!r}, field={self.field!r})"
