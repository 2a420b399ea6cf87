"""A log handler that keeps what it is given, for tests that read crane's log lines."""

from __future__ import annotations

import logging

__all__ = ["RecordingHandler"]


class RecordingHandler(logging.Handler):
    """Keeps every record it handles in `records`, at every level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
