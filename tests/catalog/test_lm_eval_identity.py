"""lm-eval results as lm_eval 0.4.13 writes them (tests/data/lm_eval, made by a real run: README there).

A metric's identity is (task, metric, filter, n-shot); the names are docs/EVALS.md's scheme.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from registry.errors import PolicyViolation

DATA = Path(__file__).resolve().parents[1] / "data" / "lm_eval"
FIVE, ZERO, PPL = DATA / "results_5shot.json", DATA / "results_0shot.json", DATA / "results_ppl.json"


def raw(path: Path, task: str, key: str) -> float:
    return json.loads(path.read_text())["results"][task][key]


@pytest.fixture
def bot(registry, tiny_llama, tiny_adapter, tmp_path):
    registry.add_base(tiny_llama, name="tiny-llama")
    registry.push(tiny_adapter, name="bot", base="tiny-llama")
    d = shutil.copytree(tiny_adapter, tmp_path / "v2")
    (d / "README.md").write_text("v2")
    registry.push(d, name="bot", base="tiny-llama")
    return registry


def current(reg, ref: str) -> dict[str, float]:
    return dict(reg.show(ref).metrics)


def test_a_0shot_import_after_a_5shot_one_keeps_both(bot):
    """Before: n-shot was no part of the name, so the 0-shot import overwrote `tiny_mc/acc_norm`."""
    five, zero = raw(FIVE, "tiny_mc", "acc_norm,none"), raw(ZERO, "tiny_mc", "acc_norm,none")
    assert five != zero  # the real runs differ, so the test can tell them apart
    bot.add_lm_eval("bot@1", FIVE)
    bot.add_lm_eval("bot@1", ZERO)
    m = current(bot, "bot@1")
    # the plain name stays on the default n-shot (the highest), whatever the import order
    assert m["tiny_mc/acc_norm"] == five
    assert m["tiny_mc/acc_norm,none"] == five
    assert m["tiny_mc/acc_norm,none@5shot"] == m["tiny_mc/acc_norm@5shot"] == five
    assert m["tiny_mc/acc_norm,none@0shot"] == m["tiny_mc/acc_norm@0shot"] == zero
    bot.add_lm_eval("bot@2", ZERO)
    bot.add_lm_eval("bot@2", FIVE)
    assert current(bot, "bot@2") == m
    evs = [e for e in bot.evals("bot@1") if e.metric.startswith("tiny_mc/acc_norm")]
    assert sorted((e.n_shot, e.value) for e in evs) == [(0, zero), (5, five)]
    # `ls --metric` and `--sort metric:` read the same names
    assert [v.ref for v in bot.search(metrics=[f"tiny_mc/acc_norm@0shot=={zero}"]).items] == ["bot@2", "bot@1"]
    assert [v.ref for v in bot.search(metrics=[f"tiny_mc/acc_norm=={five}"]).items] == ["bot@2", "bot@1"]


def test_sample_len_alias_and_name_are_not_metrics(bot):
    """Before: `tiny_mc/sample_len` was stored as a metric."""
    evs = bot.add_lm_eval("bot@1", FIVE)
    assert not [e for e in evs if e.base_metric in ("sample_len", "alias", "name") or "sample_len" in e.metric]
    assert not [k for k in current(bot, "bot@1") if "sample_len" in k]
    # ... but the sample counts are kept beside the value
    acc = next(e for e in evs if e.metric == "tiny_mc/acc,none@5shot")
    assert acc.details["n_samples"] == {"original": 20, "effective": 20} and acc.details["sample_len"] == 20


def test_stderr_version_direction_and_run_details_are_kept(bot):
    """Before: stderr, the task version and higher_is_better were dropped."""
    evs = {e.metric: e for e in bot.add_lm_eval("bot@1", FIVE)}
    e = evs["tiny_mc/acc,none@5shot"]
    assert (e.task, e.base_metric, e.filter_name, e.n_shot) == ("tiny_mc", "acc", "none", 5)
    assert e.stderr == raw(FIVE, "tiny_mc", "acc_stderr,none") and e.higher_is_better is True
    assert e.details["task_version"] == 1.0 and evs["tiny_mc_b/acc,none@5shot"].details["task_version"] == 2.0
    assert e.details["lm_eval_version"] == "0.4.13" and e.details["file"] == "results_5shot.json"
    assert e.details["model_args"] == {"pretrained": "/tmp/tiny-llama", "dtype": "float32"}
    assert e.details["groups"] == ["tiny_group"] and e.details["task_config"]["output_type"] == "multiple_choice"
    assert e.source == "lm-eval" and e.split == "test" and e.dataset == "json"
    ppl = {e.metric: e for e in bot.add_lm_eval("bot@1", PPL)}["tiny_ppl/word_perplexity,none@0shot"]
    assert ppl.higher_is_better is False and ppl.stderr is None  # lm-eval wrote "N/A"


def test_a_filtered_task_has_plain_names(bot):
    """Before: gsm8k-style `exact_match,strict-match` could only be named with its filter."""
    bot.add_lm_eval("bot@1", FIVE)
    m = current(bot, "bot@1")
    strict = raw(FIVE, "tiny_gen", "exact_match,strict-match")
    assert m["tiny_gen/exact_match,strict-match@5shot"] == m["tiny_gen/exact_match,flexible-extract@5shot"] == strict
    assert m["tiny_gen/exact_match"] == m["tiny_gen"] == m["tiny_gen/exact_match@5shot"] == strict
    assert [v.ref for v in bot.search(metrics=["tiny_gen/exact_match>=0"]).items] == ["bot@1"]
    assert [v.ref for v in bot.search(metrics=["tiny_gen>=0"]).items] == ["bot@1"]


def test_a_parsed_document_imports_like_its_file(bot):
    """What the HTTP route receives: the document itself, its file name kept in the details."""
    evs = bot.add_lm_eval("bot@1", json.loads(PPL.read_text()), file_name="results_ppl.json")
    assert {e.details["file"] for e in evs} == {"results_ppl.json"}
    assert {e.metric for e in evs} == {e.metric for e in bot.add_lm_eval("bot@2", PPL)}


def test_groups_are_kept(bot):
    evs = {e.metric: e for e in bot.add_lm_eval("bot@1", FIVE)}
    g = evs["tiny_group/acc_norm,none@5shot"]
    assert g.value == json.loads(FIVE.read_text())["groups"]["tiny_group"]["acc_norm,none"]
    assert g.details["group"] is True and g.details["subtasks"] == ["tiny_mc", "tiny_mc_b"]
    assert current(bot, "bot@1")["tiny_group"] == evs["tiny_group/acc,none@5shot"].value


def test_a_gate_on_a_lower_is_better_metric(bot):
    """A perplexity gate passes the lower value and says which way it compares."""
    bot.add_lm_eval("bot@1", PPL)
    bpb = raw(PPL, "tiny_ppl", "bits_per_byte,none")
    bot.release.protect_alias("bot", "production", require_metrics=[f"tiny_ppl/bits_per_byte<={bpb + 1:g}"])
    r = bot.release.check_promotion("bot", "production", 1)
    gate = next(g for g in r.gates if g.kind == "metric")
    assert gate.passed and "lower is better" in gate.detail
    bot.release.protect_alias("bot", "production", require_metrics=[f"tiny_ppl/bits_per_byte<={bpb - 1:g}"])
    with pytest.raises(PolicyViolation) as e:
        bot.release.set_alias("bot", "production", 1)
    assert "lower is better" in e.value.violations[0]
    bot.release.protect_alias("bot", "production", require_metrics=[f"tiny_ppl/bits_per_byte>={bpb - 1:g}"])
    r = bot.release.check_promotion("bot", "production", 1)
    assert "admits higher, worse values" in next(g for g in r.gates if g.kind == "metric").detail


def test_sorting_on_a_lower_is_better_metric_puts_the_lowest_first(bot, tmp_path):
    worse = json.loads(PPL.read_text())
    worse["results"]["tiny_ppl"]["bits_per_byte,none"] += 1.0  # the same run's file, a second version worse
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    bot.add_lm_eval("bot@1", PPL)
    bot.add_lm_eval("bot@2", tmp_path / "worse.json")
    assert [v.ref for v in bot.search(sort="metric:tiny_ppl/bits_per_byte").items] == ["bot@1", "bot@2"]
    assert [v.ref for v in bot.search(sort="metric:tiny_ppl/bits_per_byte:desc").items] == ["bot@2", "bot@1"]
    bot.add_lm_eval("bot@1", ZERO)  # tiny_group/acc_norm 0.2 at 0-shot
    bot.add_lm_eval("bot@2", FIVE)  # 0.225 at 5-shot: higher is better, so first
    assert raw(FIVE, "tiny_group", "acc_norm,none") > raw(ZERO, "tiny_group", "acc_norm,none")
    assert [v.ref for v in bot.search(sort="metric:tiny_group/acc_norm").items] == ["bot@2", "bot@1"]


def test_the_names_do_not_depend_on_the_order():
    from registry.evals import names

    ids = [("t", "acc", "none", 0), ("t", "acc", "none", 5), ("g", "exact_match", "strict-match", 5),
           ("g", "exact_match", "flexible-extract", 5), ("g", "exact_match", "flexible-extract", 8)]
    a, b = names(ids), names(reversed(ids))
    assert a == b
    assert a["t/acc"] == a["t"] == ("t", "acc", "none", 5)
    assert a["g/exact_match"] == ("g", "exact_match", "strict-match", 5)  # the default filter, then its n-shot
    assert a["g/exact_match@8shot"] == ("g", "exact_match", "flexible-extract", 8)
    assert a["g/exact_match,flexible-extract"] == ("g", "exact_match", "flexible-extract", 8)


def test_every_real_file_parses_to_its_table():
    """The numbers lm-eval printed for these runs (tests/data/lm_eval/README.md), metric by metric."""
    from registry.evals import parse_lm_eval

    for f in (FIVE, ZERO, PPL):
        doc = json.loads(f.read_text())
        got = {(m.task, f"{m.metric},{m.filter}"): m.value for m in parse_lm_eval(f)}
        want = {(t, k): v for t, vals in {**doc["results"], **doc.get("groups", {})}.items() for k, v in vals.items()
                if "," in k and "_stderr" not in k and isinstance(v, float)}
        assert got == want


def test_the_cli_imports_lists_sorts_and_gates_by_the_same_names(tiny_llama, tiny_adapter, tmp_path):
    """`eval add --from-lm-eval`, `eval ls`, `ls --metric/--sort` and `alias protect --require-metric`."""
    from tests.factories import run_cli

    env = {"ADAPTER_REGISTRY_HOME": str(tmp_path / "home"), "ADAPTER_REGISTRY_ACTOR": "alice"}

    def run(*args, ok=True):
        p = run_cli(*args, env=env)
        assert (p.returncode == 0) == ok, p.stderr
        return p

    run("base", "add", tiny_llama, "--name", "tiny-llama")
    run("push", tiny_adapter, "--name", "bot", "--base", "tiny-llama")
    run("eval", "add", "bot@1", "--from-lm-eval", FIVE)
    out = run("eval", "add", "bot@1", "--from-lm-eval", ZERO).stdout
    stderr = raw(ZERO, "tiny_mc", "acc_norm_stderr,none")
    assert f"bot@1 tiny_mc/acc_norm,none@0shot={raw(ZERO, 'tiny_mc', 'acc_norm,none'):g} ± {stderr:.2g}" in out
    out = run("eval", "add", "bot@1", "--from-lm-eval", PPL).stdout
    assert "tiny_ppl/bits_per_byte,none@0shot=" in out and "(lower is better)" in out
    assert "tiny_gen/exact_match,strict-match@5shot" in run("eval", "ls", "bot@1").stdout
    five = raw(FIVE, "tiny_mc", "acc_norm,none")
    ls = json.loads(run("ls", "--metric", f"tiny_mc/acc_norm>={five}", "--sort", "metric:tiny_mc/acc_norm",
                        "--json").stdout)
    assert [i["version"] for i in ls["items"]] == [1] and ls["items"][0]["metrics"]["tiny_mc/acc_norm"] == five
    run("alias", "protect", "bot", "production", "--require-metric", "tiny_ppl/bits_per_byte<=1")
    err = run("alias", "set", "bot", "production", "1", ok=False).stderr
    assert "tiny_ppl/bits_per_byte is" in err and "lower is better" in err


@pytest.mark.parametrize("doc,needle", [
    ({"results": {}}, "no 'results' object"),
    ({"results": {"t": {"alias": "t", "sample_len": 3, "acc,none": "N/A"}}}, "no numeric metrics"),
    ({"results": {"t x": {"acc,none": 0.5}}}, "cannot be named"),
])
def test_what_is_not_an_lm_eval_result_is_refused_in_one_line(bot, doc, needle):
    from registry.errors import InvalidInput

    with pytest.raises(InvalidInput, match=needle):
        bot.add_lm_eval("bot@1", doc, file_name="bad.json")
    assert bot.evals("bot@1") == []


def test_odd_values_in_a_document_are_kept_as_json_can_hold_them(bot):
    doc = {"results": {"t": {"acc,none": 0.5, "sample_len": float("nan")}}, "n-shot": {"t": 10**12},
           "group_subtasks": {"g": [{"x": 1}, "t"]}}
    (e,) = bot.add_lm_eval("bot@1", doc)
    assert e.metric == "t/acc,none" and e.n_shot is None and e.details["sample_len"] is None


def test_two_imports_of_one_version_at_the_same_time_both_land(db_url, settings_for, bot, monkeypatch):
    """Before, on PostgreSQL: both transactions inserted the same metric_values rows (IntegrityError,
    pk_metric_values: an HTTP 500, the import lost), each from its own snapshot. The barrier holds each
    import just before it writes the current values, so without the version lock both get there."""
    import threading

    import registry.catalog.commands as C
    from registry.app import Registry

    barrier, write = threading.Barrier(2), C._set_current

    def meet_then_write(s, row, metrics):
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:  # the other import waits for this one's lock: no meeting
            pass
        return write(s, row, metrics)

    monkeypatch.setattr(C, "_set_current", meet_then_write)
    errors: dict[str, str] = {}

    def run(path: Path) -> None:
        reg = Registry(settings_for(db_url))
        try:
            reg.add_lm_eval("bot@1", path)
        except Exception as e:  # reported below, with the file
            errors[path.name] = f"{type(e).__name__}: {str(e)[:200]}"
        finally:
            reg.close()

    threads = [threading.Thread(target=run, args=(p,)) for p in (ZERO, FIVE)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == {}
    m = current(bot, "bot@1")
    five, zero = raw(FIVE, "tiny_mc", "acc_norm,none"), raw(ZERO, "tiny_mc", "acc_norm,none")
    assert m["tiny_mc/acc_norm"] == five  # the default n-shot over both imports, not each one's own
    assert (m["tiny_mc/acc_norm@5shot"], m["tiny_mc/acc_norm@0shot"]) == (five, zero)


def test_a_hand_recorded_value_under_a_scheme_name_stays_until_an_import_changes_that_name(bot):
    """Before: every import rewrote every name of the scheme, so an unrelated import replaced it."""
    bot.add_lm_eval("bot@1", FIVE)
    five = raw(FIVE, "tiny_mc", "acc,none")
    bot.add_eval("bot@1", {"tiny_mc": 0.99})
    bot.add_lm_eval("bot@1", PPL)  # other tasks
    bot.add_lm_eval("bot@1", ZERO)  # tiny_mc stays on the 5-shot value
    bot.add_lm_eval("bot@1", FIVE)  # the same values again
    m = current(bot, "bot@1")
    assert m["tiny_mc"] == 0.99 and m["tiny_mc/acc"] == five
    doc = json.loads(FIVE.read_text())
    doc["results"]["tiny_mc"]["acc,none"] = 0.125
    bot.add_lm_eval("bot@1", doc, file_name="rerun.json")  # a new value of tiny_mc's identity
    assert current(bot, "bot@1")["tiny_mc"] == 0.125
    bot.add_lm_eval("bot@2", ZERO)
    bot.add_eval("bot@2", {"tiny_mc": 0.99})
    bot.add_lm_eval("bot@2", FIVE)  # the default n-shot moves from 0 to 5
    assert current(bot, "bot@2")["tiny_mc"] == five
