"""The ``finetec`` command.

Each subcommand is a module in :mod:`finetec.commands` that defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy libraries (torch,
matplotlib) inside ``run`` so that ``finetec --help`` stays fast. Errors in the user's input are
raised as :class:`finetec.errors.FinetecError` and printed here as one line.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from finetec.version import __version__
from finetec.errors import FinetecError

# Order in which subcommands are listed in --help; modules not named here follow alphabetically.
ORDER = ["info", "inspect", "convert", "corrupt", "train", "eval", "ensemble", "benchmark",
         "models", "predict", "complete", "render", "plot", "stream", "export"]


def _command_modules() -> list[str]:
    import finetec.commands as pkg

    found = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    return [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or, with ``only``, of that one alone (start-up: a command
    imports only its own module; ``--help`` without a command lists them all)."""
    parser = argparse.ArgumentParser(
        prog="finetec",
        description="Skeleton-based action recognition that stays accurate when frames are missing.",
    )
    parser.add_argument("--version", action="version", version=f"finetec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = _command_modules()
    for name in ([only] if only in names else names):
        mod = importlib.import_module(f"finetec.commands.{name}")
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and not argv[0].startswith("-") else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except FinetecError as e:
        print(f"finetec {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"finetec {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - last line of defence: no traceback for users
        if os.environ.get("FINETEC_DEBUG"):
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"finetec {args.command}: internal error: {type(e).__name__}: {first} "
              f"(set FINETEC_DEBUG=1 for a traceback and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
