"""Documentation that cannot silently fall behind the code (datasette's test_docs habit)."""

import dataclasses
import re
from pathlib import Path

from registry import types as T
from registry.release import types as RT
from registry.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for name, env, _default, _help in Settings.documented():
        assert f"`{env}`" in readme, f"{env} is not in README.md's configuration table"
        assert f"`{name}`" in readme


def test_every_json_field_is_documented():
    doc = (ROOT / "docs" / "JSON.md").read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", doc, flags=re.S | re.M))
    # every result type of registry.types and registry.release.types, so a new one cannot slip by
    result_types = [cls for mod in (T, RT) for cls in vars(mod).values()
                    if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == mod.__name__]
    assert len(result_types) > 30
    for cls in result_types:
        assert cls.__name__ in sections, f"docs/JSON.md has no section for {cls.__name__}"
        for f in dataclasses.fields(cls):
            assert re.search(rf"\| `{f.name}` \|[^|]*\| \S", sections[cls.__name__]), \
                f"{cls.__name__}.{f.name} is not documented (with a meaning) in docs/JSON.md"


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
