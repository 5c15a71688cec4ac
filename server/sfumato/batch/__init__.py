"""Batch variations for review: a plan expanded into a matrix, run through the server's queue,
resumable, with a manifest and contact sheets."""

from .plan import Item, Plan, PlanError, Style, load_plan, parse_plan
from .runner import BatchReport, progress_bar, run_plan
from .sheet import write_contact_sheets

__all__ = [
    "BatchReport", "Item", "Plan", "PlanError", "Style", "load_plan", "parse_plan",
    "progress_bar", "run_plan", "write_contact_sheets",
]  # fmt: skip
