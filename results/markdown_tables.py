"""The marked tables of a results page, shared by results/summarize_*.py.

A page marks each generated table with `<!-- table: NAME -->` ... `<!-- end table -->`; the
script's table NAME (a function returning markdown) replaces what stands between them. A script
whose names are open-ended (e.g. a directory per table) passes one function of NAME instead.
`write` regenerates the page, `write --check` exits 1 when it is out of date.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Mapping
from pathlib import Path

MARKER = re.compile(
    r"^<!-- table: (?P<name>\S+) -->\n.*?^<!-- end table -->$", re.DOTALL | re.MULTILINE
)


Tables = Mapping[str, Callable[[], str]] | Callable[[str], str]
"""Table NAME's markdown: `tables[NAME]()` for a mapping, `tables(NAME)` for a function."""


def render(markdown: str, tables: Tables) -> str:
    """`markdown` with every marked table regenerated."""

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        text = tables(name) if callable(tables) else tables[name]()
        return f"<!-- table: {name} -->\n{text}\n<!-- end table -->"

    return MARKER.sub(replace, markdown)


def write(page: Path, tables: Tables, *, check: bool = False) -> int:
    """Regenerate the tables of `page`; with `check`, only compare: 1 when it is out of date."""
    old = page.read_text()
    new = render(old, tables)
    if check:
        if new != old:
            print(f"{page} is out of date: run its summarize script's `write`")
            return 1
        return 0
    page.write_text(new)
    return 0


def main(page: Path, tables: Tables, argv: list[str]) -> int:
    """Command line `write [--check]` for one page."""
    parser = argparse.ArgumentParser(description=f"regenerate the tables of {page.name}")
    commands = parser.add_subparsers(dest="command", required=True)
    write_command = commands.add_parser("write", help=f"regenerate the tables of {page.name}")
    write_command.add_argument(
        "--check", action="store_true", help="only check that it is up to date"
    )
    args = parser.parse_args(argv)
    return write(page, tables, check=args.check)
