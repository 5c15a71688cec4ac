"""Sfumato's wire protocol, sans I/O: bytes ↔ typed messages (docs/protocol.md).

Standard library and msgpack only (numpy optional, imported lazily); copied as-is into the
Krita plugin and bundled into the Blender extension, so it must stay free of I/O and of any
host or ML import.
"""

from .arrays import Array, DType
from .codec import (
    ClientMessage,
    Message,
    ServerMessage,
    decode_client_message,
    decode_server_message,
    encode,
    encode_bytes,
    fragments,
)
from .conditioning import Control, ControlKind, LoraRef, Tile
from .direction import MAX_REFERENCES, MAX_REGIONS, Reference, ReferenceKind, Region
from .errors import ErrorCode, JobRejected, ProtocolError, SfumatoError
from .events import (
    SUPERSEDED,
    Accepted,
    Cancelled,
    Error,
    ModelInfo,
    Models,
    Progress,
    Result,
    ShmProbe,
    Welcome,
)
from .limits import Limits
from .messages import Cancel, Fetch, Hello, Job, JobParams, ListModels, Task
from .multiview import MAX_VIEWS, Coverage, MultiviewInputs, Paint, View
from .refs import HashRef, Placed, Resolver, ShmRef
from .session import ServerSession, State
from .system import SystemInfo
from .training import Trained, TrainParams
from .version import PROTOCOL_VERSION

__all__ = [
    "MAX_REFERENCES",
    "MAX_REGIONS",
    "MAX_VIEWS",
    "PROTOCOL_VERSION",
    "SUPERSEDED",
    "Accepted",
    "Array",
    "Cancel",
    "Cancelled",
    "ClientMessage",
    "Control",
    "ControlKind",
    "Coverage",
    "DType",
    "Error",
    "ErrorCode",
    "Fetch",
    "HashRef",
    "Hello",
    "Job",
    "JobParams",
    "JobRejected",
    "Limits",
    "ListModels",
    "LoraRef",
    "Message",
    "ModelInfo",
    "Models",
    "MultiviewInputs",
    "Paint",
    "Placed",
    "Progress",
    "ProtocolError",
    "Reference",
    "ReferenceKind",
    "Region",
    "Resolver",
    "Result",
    "ServerMessage",
    "ServerSession",
    "SfumatoError",
    "ShmProbe",
    "ShmRef",
    "State",
    "SystemInfo",
    "Task",
    "Tile",
    "TrainParams",
    "Trained",
    "View",
    "Welcome",
    "decode_client_message",
    "decode_server_message",
    "encode",
    "encode_bytes",
    "fragments",
]  # fmt: skip
