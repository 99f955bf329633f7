"""Name-like inputs are matched whole (fullmatch): `^...$` with re.match admits a trailing newline,
which created names such as 'production\\n' that nothing could resolve afterwards."""

from __future__ import annotations

import pytest

from registry.adapters.inspect import check_name
from registry.errors import InvalidInput
from registry.refs import check_alias, check_metric_name, parse_metric_filter, parse_metric_value, parse_ref, parse_tag


@pytest.mark.parametrize("check, value", [
    (check_name, "team-a/bot\n"),
    (check_alias, "production\n"),
    (check_metric_name, "acc\n"),
    (parse_ref, "team-a/bot@production\n"),
    (parse_metric_filter, "acc>=0.5\n"),
    (parse_tag, "team\n=x"),
])
def test_a_trailing_newline_is_not_part_of_a_valid_name(check, value):
    with pytest.raises(InvalidInput):
        check(value)


def test_the_same_names_without_the_newline_are_accepted():
    assert check_name("team-a/bot") == "team-a/bot"
    assert check_alias("production") == "production"
    assert parse_metric_filter(" acc >= 0.5 ").metric == "acc"
    assert parse_metric_value("acc=0.5") == ("acc", 0.5)


def test_token_names_and_namespaces_refuse_a_trailing_newline(registry):
    with pytest.raises(InvalidInput, match="token name"):
        registry.tokens.create("ci\n", scope="read")
    with pytest.raises(InvalidInput, match="namespace"):
        registry.tokens.create("ci", scope="read", namespace="team-a\n")
    assert registry.tokens.create("ci", scope="read", namespace="team-a").info.namespace == "team-a"


@pytest.mark.parametrize("ref", ["team-a/bot@99999999999999999999", "team-a/bot@v99999999999999999999"])
def test_a_version_number_too_large_for_the_catalog_is_refused_not_a_500(ref, registry):
    with pytest.raises(InvalidInput, match="at most 12 digits"):
        parse_ref(ref)
    with pytest.raises(InvalidInput):
        registry.show(ref)


def test_the_audit_target_prefix_is_literal_not_a_like_pattern(registry):
    registry.tokens.create("team-b-ci", scope="read")
    assert [a.target for a in registry.audit(target="token:team-b")] == ["token:team-b-ci"]
    assert registry.audit(target="token:team_b") == []
