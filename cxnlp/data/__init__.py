"""The files cxnlp ships (taxonomy, aspect cues, urgency cues, case rules, language-id word lists)
and the one way to read a rules file: the shipped one, or a user's file in its format."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml


def read_yaml(resource: str, path: str | Path | None = None) -> Any:
    """The YAML of the file `path`, or of the shipped `cxnlp/data/<resource>` when `path` is
    None; an empty file reads as `{}`."""
    if path is None:
        text = resources.files(__name__).joinpath(resource).read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}
