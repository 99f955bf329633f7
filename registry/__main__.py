"""`python -m registry` and the `adapter-registry` console script."""

from __future__ import annotations

import gc
import importlib
from types import ModuleType


def _load_cli() -> ModuleType:
    """The cli package: registry.cli in an installed wheel, cli/ beside registry/ in a checkout."""
    try:
        return importlib.import_module("registry.cli")
    except ModuleNotFoundError as e:
        if e.name != "registry.cli":
            raise
        # source checkout: cli/ sits beside registry/
        import sys
        from pathlib import Path

        root = str(Path(__file__).resolve().parent.parent)
        if root not in sys.path:
            sys.path.insert(0, root)
        return importlib.import_module("cli")


def main() -> None:
    """Run the command in this process, which ends when it does (see cli.common on the GC)."""
    cli = _load_cli()
    cli.common.pause_gc_for_startup()
    try:
        cli.main()
    finally:
        # Exit without a last collection over every object start-up built: the process is ending
        # and the OS takes the memory back (atexit handlers and stream flushes still run).
        gc.freeze()


if __name__ == "__main__":
    main()
