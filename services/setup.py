"""First run: a one-time link that creates the first staff account."""
from __future__ import annotations


def print_setup_link() -> None:
    """Not built yet (accounts issue)."""
