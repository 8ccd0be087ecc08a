"""Errors caused by user input: the CLI prints them on one line, without a traceback."""

from __future__ import annotations


class EcgcnnError(Exception):
    """Something the user can fix: a missing file, a bad column, an unknown name."""


class RecordError(EcgcnnError):
    """One ECG record could not be read or failed validation."""

    def __init__(self, record: str, problem: str) -> None:
        super().__init__(f"{record}: {problem}")
        self.record = record
        self.problem = problem


class BootstrapError(EcgcnnError):
    """The bootstrap could not draw enough resamples holding every class (its draw cap)."""
