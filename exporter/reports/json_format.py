"""JSON: the whole report tree, field for field (dataclasses as objects)."""

import dataclasses
import json
import math
from typing import Any

from .model import Report


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_dict(report: Report) -> dict[str, Any]:
    plain: dict[str, Any] = _plain(report)
    return plain


def render_json(report: Report) -> bytes:
    return json.dumps(to_dict(report), separators=(",", ":"), allow_nan=False).encode()
