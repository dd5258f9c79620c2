"""docs/interfaces.md names every field of the public data types it documents (no drift)."""

from __future__ import annotations

import dataclasses
import enum
import importlib
from pathlib import Path

import pytest

INTERFACES = (Path(__file__).resolve().parents[1] / "docs" / "interfaces.md").read_text()

DOCUMENTED = [
    "ctd.alignment:TokenizedText",
    "ctd.alignment:ChunkAlignment",
    "ctd.alignment:CrossTokenizerBatch",
    "ctd.losses:TokenLogprobs",
    "ctd.losses:DSKDSide",
    "ctd.trainers.wiring:Need",
    "ctd.trainers.wiring:LossWiring",
    "ctd.trainers.task:Task",
    "ctd.trainers.task:PreparedRun",
]


def _fields(cls: type) -> list[str]:
    if isinstance(cls, enum.EnumMeta):
        return [member.name for member in cls]  # type: ignore[var-annotated]
    if dataclasses.is_dataclass(cls):
        return [field.name for field in dataclasses.fields(cls)]
    return list(cls._fields)  # NamedTuple


def _section(class_name: str) -> str:
    """From `class NAME` (or `# NAME(`) to the next blank line."""
    for marker in (f"class {class_name}", f"# {class_name}("):
        start = INTERFACES.find(marker)
        if start >= 0:
            end = INTERFACES.find("\n\n", start)
            return INTERFACES[start : end if end >= 0 else None]
    raise AssertionError(f"docs/interfaces.md has no section for {class_name}")


@pytest.mark.parametrize("target", DOCUMENTED)
def test_every_field_is_documented(target: str) -> None:
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    section = _section(class_name)
    missing = [name for name in _fields(cls) if name not in section]
    assert not missing, f"docs/interfaces.md lacks {class_name} fields {missing}"
