"""Review a batch in a browser: ``sfumato review OUT_DIR`` serves a local page (grid, filters,
A/B, pick / reject / star / comment), decisions live in ``OUT_DIR/review.sqlite``, ``--export``
copies the picks with their credentials, and ``sfumato batch --from-picks`` reruns them.

Standard library only (http.server, sqlite3) besides sfumato's own batch and protocol modules:
no torch, no web framework, no npm build; the page is plain HTML/CSS/JS shipped as package data.
"""

from .catalog import FACETS, Batch, load_batch
from .decisions import DB_NAME, Decision, Decisions, Review, ReviewError, parse_change
from .export import ExportReport, export_picks
from .rerun import Rerun, picks_rerun, variation_seed, write_lineage

__all__ = [
    "DB_NAME", "FACETS", "Batch", "Decision", "Decisions", "ExportReport", "Rerun", "Review",
    "ReviewError", "export_picks", "load_batch", "parse_change", "picks_rerun", "variation_seed",
    "write_lineage",
]  # fmt: skip
