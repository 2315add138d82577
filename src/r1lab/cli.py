"""The `r1lab` command.

Sub-commands live in `r1lab.commands.<area>` modules, each exposing `register(app)`; this file only
collects them and turns user errors (`R1labError`) into one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import r1lab.commands as commands_pkg
from r1lab.errors import Interrupted, R1labError

app = typer.Typer(
    name="r1lab",
    help="DeepSeek-V3 models and the DeepSeek-R1 reasoning-training recipe, end to end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """DeepSeek-V3 models and the DeepSeek-R1 reasoning-training recipe, end to end."""


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands_pkg.__name__}.{info.name}")
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    try:
        code = app(args=argv, standalone_mode=False)
        if code == 130:  # typer turned a KeyboardInterrupt outside any stage into this exit code
            print("interrupted", file=sys.stderr)
            return 130
    except Interrupted as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except R1labError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # raised outside typer's own handler: exit as shells expect
        print("interrupted", file=sys.stderr)
        return 130
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except Exception as e:  # click usage errors (typer vendors click) arrive here in non-standalone mode
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return e.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
