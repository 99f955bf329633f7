"""Package discovery: cli/ and migrations/ live at the top of the checkout (as the project's
owner asked) but install as registry.cli and registry.migrations."""

from pathlib import Path

from setuptools import setup

ROOTS = {"registry": "registry", "cli": "registry.cli", "migrations": "registry.migrations"}


def packages():
    found = {}
    for folder, name in ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder).parts
            found[".".join((name, *rel))] = str(init.parent)
    return found


PKGS = packages()
setup(
    packages=sorted(PKGS),
    package_dir={"registry.cli": "cli", "registry.migrations": "migrations"},
)
