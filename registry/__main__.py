"""`python -m registry` and the `adapter-registry` console script."""

from __future__ import annotations


def _load_cli():
    try:  # installed wheel: cli/ is packaged as registry.cli
        from registry.cli import main
    except ModuleNotFoundError as e:
        if e.name not in ("registry.cli",):
            raise
        # source checkout: cli/ sits beside registry/
        import sys
        from pathlib import Path

        root = str(Path(__file__).resolve().parent.parent)
        if root not in sys.path:
            sys.path.insert(0, root)
        from cli import main
    return main


def main() -> None:
    _load_cli()()


if __name__ == "__main__":
    main()
