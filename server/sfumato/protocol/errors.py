"""The one exception hierarchy of Sfumato, and the stable error codes.

Error codes are part of the wire format (docs/protocol.md, "Errors"): clients switch on them,
so a code is never renamed; new ones may be added.

Every error raised on purpose is a :class:`SfumatoError` whose message names the input and the
fix. One that can end a job or answer a message carries its wire ``code`` (and ``field``, the
dotted path of the input it is about), so the service sends it 1:1 as an ``error`` event; the
rest stop a command or a start, and say so. Anything that is not a SfumatoError is a bug: the
service logs its traceback and answers ``job_failed`` (or ``internal``), never a friendlier
code. docs/architecture.md, "Errors", has the whole tree::

    SfumatoError
      ProtocolError (ValueError)   a frame or message breaks the wire rules     code, field, id
      JobRejected                  a well-formed job this server will not run   code, field
        service.admission.Refusal    registry names: unknown, wrong kind/family, unapproved
        engine.ModelUnavailable      registered, weights missing or not the pinned ones
      engine.JobCancelled          the job's cancel flag was seen         → cancelled
      registry: UnknownModel (LookupError, unknown_model), NoControlNet, LoraMismatch
                (ValueError, unsupported), RegistryError (ValueError: a registry file, at start)
      service: ConfigError (ValueError: a config file, when it is read), StoreError
               (store_failed), EngineUnavailable (engine_unavailable)
      client: ConnectionFailed (ConnectionError), JobFailed (carries the error event),
              JobWasCancelled; hostsession.HostError (ValueError, field: a job the host
              session will not send — a capability, limit, model or LoRA the server lacks)
      imageio.ImageFileError, batch.PlanError, batch.reproduce.ReproduceError,
      review.ReviewError (ValueError, field: a review change or command the page refuses),
      provenance: CredentialsError, SigningSetupError; cli.conditioning.FlagError
               (argparse.ArgumentTypeError: argparse shows it as a usage error, exit 2)

The plugins' own errors (blender_addon/jobs.py ``UserError``, krita_plugin's jobs.py
``PluginError``) sit beside the tree, not in it: they are raised and shown inside the host
(a panel or docker message naming the setting and the fix) and never cross the wire; a
server's refusal reaches a plugin as an ``error`` event, not as an exception.
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
    STORE_FAILED = "store_failed"  # the store could not write/read (full, read-only, damaged)
    ENGINE_UNAVAILABLE = "engine_unavailable"  # the engine cannot load (e.g. torch fails to import)
    TOO_MANY_CONNECTIONS = "too_many_connections"  # at max_connections; the server closes (1013)
    SERVER_BUSY = "server_busy"  # no room in the memory budget for it; resend soon
    HELLO_TIMEOUT = "hello_timeout"  # no hello within the server's hello_timeout; it closes (1008)
    RESULT_TOO_LARGE = "result_too_large"  # the result would exceed max_message_bytes; ask for less
    REPLICA_LOST = "replica_lost"  # its cluster engine replica died, twice or with none left
    UNKNOWN_INPUT = "unknown_input"  # an input by sha256 the server does not keep; send bytes


class SfumatoError(Exception):
    """Base of every error Sfumato raises on purpose.

    ``code`` is the wire code an error of this kind becomes when it ends a job or answers a
    message (None: it never crosses the wire); ``field`` the input it is about, if known."""

    code: ErrorCode | None = None
    field: str | None = None


class JobRejected(SfumatoError):
    """A well-formed job that this server will not run as asked: a registry name it cannot
    use, inputs the task cannot take, a result too large to send. Raised by admission
    (before the job is queued) and by the engine (while it runs); either way the client gets
    an ``error`` with exactly this code, message and field, and nothing else changes."""

    code: ErrorCode

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value!r}, {self.message!r}, field={self.field!r})"


class ProtocolError(SfumatoError, ValueError):
    """A frame or message that breaks the protocol. Carries what goes into an ``error`` message.

    ``field`` names the offending field with a dotted path (``params.width``,
    ``inputs.mask``) so that a client can point at the widget that produced it.
    """

    code: ErrorCode

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
