"""Every field of the release result types is documented (docs/JSON.md)."""

import dataclasses
import re
from pathlib import Path

from registry.release import types as RT

DOC = Path(__file__).resolve().parents[2] / "docs" / "JSON.md"
TYPES = [RT.Gate, RT.PolicyResult, RT.AliasPolicy, RT.AliasInfo, RT.AliasMove, RT.AliasChange, RT.DeleteResult,
         RT.ImpactedVersion, RT.ImpactedMerge, RT.ImpactReport, RT.BulkItem, RT.BulkResult, RT.ServedAdapter,
         RT.ServingProfile, RT.GcReport, RT.WebhookInfo, RT.Delivery]


def test_every_release_result_type_is_covered_here():
    public = {n for n, v in vars(RT).items() if isinstance(v, type) and dataclasses.is_dataclass(v)
              and v.__module__ == RT.__name__}
    assert public == {t.__name__ for t in TYPES}


def test_every_release_json_field_is_documented():
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", DOC.read_text(), flags=re.S | re.M))
    for cls in TYPES:
        assert cls.__name__ in sections, f"{DOC.name} has no section for {cls.__name__}"
        for f in dataclasses.fields(cls):
            assert re.search(rf"\| `{f.name}` \|[^|]*\| \S", sections[cls.__name__]), \
                f"{cls.__name__}.{f.name} is not documented in {DOC.name}"


def test_to_dict_gives_plain_json():
    import datetime as dt
    import json

    move = RT.AliasMove("bot", "production", 1, 2, "me", None, True, dt.datetime(2026, 1, 1), id=3,
                        violations=("x",))
    d = move.to_dict()
    assert d["violations"] == ["x"] and d["at"].startswith("2026-01-01") and json.dumps(d)
    pr = RT.PolicyResult("bot@2", "production", True, False, (RT.Gate("metric", "acc>=1", False, "acc low"),))
    assert RT.AliasPolicy("bot", "production", False, (), dt.datetime(2026, 1, 1), "me", pr).to_dict()[
        "current"]["violations"] == ["acc low"]
