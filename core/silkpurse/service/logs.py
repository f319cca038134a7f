"""Structured logs of the services: one JSON object (or key=value line) per event on stderr,
carrying the job id, step, stage, method, status and seconds where known.

Log with ``extra``: ``log.info("upscaled", extra={"job": job, "step": step, "seconds": 0.4})``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

#: Attributes of a LogRecord that are not ``extra`` fields.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    data.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")})
    if record.exc_info:
        data["traceback"] = logging.Formatter().formatException(record.exc_info)
    return data


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = _fields(record)
        trace = data.pop("traceback", None)
        line = " ".join(
            f"{k}={json.dumps(v, default=str) if isinstance(v, str) and ' ' in v else v}" for k, v in data.items()
        )
        return f"{line}\n{trace}" if trace else line


def configure(stage: str, fmt: str = "json", level: int = logging.INFO) -> None:
    """Send the process's logs to stderr, structured, each record tagged with ``service``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(_ServiceTag(stage))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _ServiceTag(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True
