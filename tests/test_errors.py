"""Errors from one place: every exception class lives in registry/errors.py, carries an HTTP status
and an exit code, and each exit code has one meaning, documented in the README."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from registry import errors as E

ROOT = Path(__file__).resolve().parents[1]


def _exception_classes_outside_errors() -> list[str]:
    """Classes in registry/ and cli/ that derive from an exception (by base name), outside errors.py."""
    found = []
    names = {c.__name__ for c in E.classes()} | {"Exception", "BaseException", "StopTask", "Rollback"}
    for path in [*(ROOT / "registry").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]:
        if path == ROOT / "registry" / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
                if bases & names or any(b.endswith(("Error", "Exception")) for b in bases):
                    found.append(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def test_every_exception_class_lives_in_errors_py():
    assert _exception_classes_outside_errors() == []


def test_every_error_has_a_status_an_exit_code_with_a_meaning_and_a_unique_code():
    codes = [c.code for c in E.classes()]
    assert len(codes) == len(set(codes)), "two classes share an error code"
    for c in E.classes():
        assert 400 <= c.status <= 599, c
        assert c.exit_code in E.EXIT_CODES and c.exit_code not in (0, 130), c
        assert c.__doc__, f"{c.__name__} has no docstring (its default message)"


def test_each_exit_code_has_one_meaning_and_the_readme_lists_them_all():
    meanings = list(E.EXIT_CODES.values())
    assert len(meanings) == len(set(meanings))
    readme = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", readme, flags=re.M))
    assert {int(k): v for k, v in table.items()} == E.EXIT_CODES


def test_exit_codes_follow_the_kind_of_failure():
    assert E.InvalidInput.exit_code == E.Incompatible.exit_code == E.Unsupported.exit_code == 2
    assert E.MergeError.exit_code == 8 and E.MergeError.status == 500  # a runtime failure, not bad input
    assert not issubclass(E.MergeError, E.InvalidInput)
    assert E.AdapterNotFound.exit_code == 3 and E.PolicyViolation.exit_code == 4
    assert E.Forbidden.exit_code == E.Unauthorized.exit_code == 5 and E.DiskFull.exit_code == 6
    assert E.JobTimeout.exit_code == 10 and E.IntegrityFailure.exit_code == 9


def test_the_tables_of_the_api_and_the_client_come_from_the_classes():
    from registry.api.errors import code_for, describe

    assert E.for_status(404) is E.NotFound and E.for_status(422) is E.InvalidRequest
    assert code_for(409) == "conflict" and code_for(422) == "invalid_request" and code_for(418) == "error"
    assert describe(404) == "Not found" and describe(507) == "No space left on the device"
    assert E.by_code()["policy_violation"] is E.PolicyViolation
