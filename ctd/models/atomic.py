"""Crash-safe writes: a folder or file appears complete under its name, or not at all.

Used by `export_pretrained` (folders) and by the trainers' checkpoint writer (files).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PARTIAL_SUFFIX = ".partial"
"""What is being written is named `.<name>.<pid>.partial` next to its final name."""


def partial_path(target: Path) -> Path:
    """The private name `target` is written under before it is moved into place."""
    return target.with_name(f".{target.name}.{os.getpid()}{PARTIAL_SUFFIX}")


def fsync_directory(folder: Path) -> None:
    """Make a rename inside `folder` durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def fsync_tree(folder: Path) -> None:
    """Flush every file under `folder`, then the folders themselves."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        fsync_directory(path)
    fsync_directory(folder)


def replace_directory(new: Path, target: Path) -> None:
    """Move the finished folder `new` onto `target` (a previous version is removed).

    An absent or empty `target` is replaced by one `os.replace`; a previous version is first
    renamed aside (`.<name>.<pid>.old`) and deleted after, so a crash leaves either version
    complete (between the two renames, the previous one under its `.old` name).

    Raises:
        FileExistsError: `target` is a file.
    """
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    previous = None
    if target.is_dir() and any(target.iterdir()):
        previous = target.with_name(f".{target.name}.{os.getpid()}.old")
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target, previous)
    os.replace(new, target)
    fsync_directory(target.parent)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
