"""What the `ctd` subcommands share: bad input reported in one line, exit status 2."""

from __future__ import annotations

import sys
import traceback

__all__ = ["USER_ERROR_EXIT", "report_user_error"]

USER_ERROR_EXIT = 2
"""Exit status of a command-line user error."""


def report_user_error(prog: str, error: BaseException, *, debug: bool) -> int:
    """Print `prog: error: message` (one line; with `debug`, the traceback first); return 2."""
    if debug:
        traceback.print_exc()
    message = " ".join(str(error).split()) or repr(error)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return USER_ERROR_EXIT
