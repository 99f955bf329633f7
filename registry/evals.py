"""lm-evaluation-harness results as lm-eval 0.4 writes them, and the registry's names for them (pure).

A metric's identity is (task, metric, filter, n-shot). Its full name is `TASK/METRIC,FILTER@Nshot`
(`gsm8k/exact_match,strict-match@5shot`); the short forms drop the filter, the n-shot or both and
stand for the default filter and the default n-shot; plain `TASK` is the task's primary metric.
docs/EVALS.md states the rules; `names` is the one place that applies them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput
from registry.refs import METRIC_RE

# The metric a plain TASK name stands for: the first of these the task has.
PRIMARY = ("acc", "exact_match", "f1", "mc2", "acc_norm", "pass@1", "bleu", "rouge1")
# lm-eval's built-in metrics whose higher_is_better is False (lm_eval/api/metrics.py); sorting and
# gate messages read this, as a metric's name must mean the same direction for every version.
LOWER_IS_BETTER = frozenset({"perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "ter",
                             "brier_score"})
# Keys of a task's results that are not metrics (lm-eval writes them beside the metrics).
NOT_METRICS = frozenset({"alias", "name", "sample_len", "samples", "sample_count"})
# The default filter: the first of these that was recorded, else the first in alphabetical order.
DEFAULT_FILTERS = ("none", "strict-match")
_SHOT = re.compile(r"@(\d+)shot$")
# the parts of a task's config worth keeping beside its values (the prompts are not)
_CONFIG_KEYS = ("output_type", "dataset_path", "dataset_name", "test_split", "fewshot_split", "num_fewshot",
                "generation_kwargs", "repeats")
_RUN_KEYS = ("model", "batch_size", "device", "limit", "bootstrap_iters", "random_seed", "numpy_seed",
             "torch_seed", "fewshot_seed", "model_dtype", "model_revision", "model_sha", "gen_kwargs")

Identity = tuple[str, str, str, "int | None"]  # (task, metric, filter, n-shot)


@dataclass(frozen=True)
class LmEvalMetric:
    """One value of a results file, with everything lm-eval wrote about it."""

    task: str  # a task or a group
    metric: str  # as lm-eval names it, without the filter: acc_norm, exact_match
    filter: str  # "none" when unfiltered
    n_shot: int | None
    value: float
    stderr: float | None  # None where lm-eval wrote "N/A"
    higher_is_better: bool | None
    details: dict[str, Any] = field(default_factory=dict)  # task version, sample counts, model args, ...

    @property
    def identity(self) -> Identity:
        return (self.task, self.metric, self.filter, self.n_shot)

    @property
    def name(self) -> str:
        return full_name(*self.identity)


def full_name(task: str, metric: str, filt: str, n_shot: int | None) -> str:
    """`TASK/METRIC,FILTER@Nshot`; without `@Nshot` when the file did not say."""
    return f"{task}/{metric},{filt}" + ("" if n_shot is None else f"@{n_shot}shot")


def lower_is_better(name: str) -> bool:
    """Whether a metric name (any form of the scheme, or a name recorded by hand) is lower-is-better."""
    base = _SHOT.sub("", name).rsplit("/", 1)[-1].split(",", 1)[0]
    return base in LOWER_IS_BETTER


def default_filter(filters: Iterable[str]) -> str:
    fs = sorted(set(filters))
    return next((f for f in DEFAULT_FILTERS if f in fs), fs[0])


def default_shot(shots: Iterable[int | None]) -> int | None:
    """The highest n-shot recorded (unknown counts below 0-shot): the same whatever the import order."""
    return max(shots, key=lambda n: -1 if n is None else n)


def names(identities: Iterable[Identity]) -> dict[str, Identity]:
    """Every name the scheme gives to a version's lm-eval metrics -> the identity whose value it carries.

    Full names first; then `TASK/METRIC,FILTER` (default n-shot of that filter), `TASK/METRIC@Nshot`
    (default filter at that n-shot), `TASK/METRIC` (the default filter, then its default n-shot) and
    `TASK` (the task's primary metric, as TASK/METRIC). Depends only on the set, never on its order.
    """
    ids = sorted(set(identities), key=lambda i: (i[0], i[1], i[2], -1 if i[3] is None else i[3]))
    out: dict[str, Identity] = {full_name(*i): i for i in ids}
    by_metric: dict[tuple[str, str], list[Identity]] = {}
    for i in ids:
        by_metric.setdefault((i[0], i[1]), []).append(i)
    for (task, metric), group in by_metric.items():
        for filt in {i[2] for i in group}:
            of_filter = [i for i in group if i[2] == filt]
            shot = default_shot(i[3] for i in of_filter)
            out[f"{task}/{metric},{filt}"] = next(i for i in of_filter if i[3] == shot)
        for shot in {i[3] for i in group}:
            if shot is None:
                continue
            at_shot = [i for i in group if i[3] == shot]
            filt = default_filter(i[2] for i in at_shot)
            out[f"{task}/{metric}@{shot}shot"] = next(i for i in at_shot if i[2] == filt)
        filt = default_filter(i[2] for i in group)
        out[f"{task}/{metric}"] = out[f"{task}/{metric},{filt}"]
    for task in sorted({i[0] for i in ids}):
        primary = next((m for m in PRIMARY if (task, m) in by_metric), None)
        if primary:
            out[task] = out[f"{task}/{primary}"]
    return out


def read_lm_eval(path: Path) -> dict[str, Any]:
    """The JSON document of a results file."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise InvalidInput(f"no such file: {path}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"{Path(path).name} is not valid JSON ({e})") from e
    if not isinstance(doc, dict):
        raise InvalidInput(f"{Path(path).name} is not an lm-evaluation-harness output (not a JSON object)")
    return doc


def parse_lm_eval(path: Path) -> list[LmEvalMetric]:
    """Every metric of an lm-evaluation-harness results file (see `parse_lm_eval_doc`)."""
    return parse_lm_eval_doc(read_lm_eval(path), file=Path(path).name)


def parse_lm_eval_doc(doc: Mapping[str, Any], *, file: str | None = None) -> list[LmEvalMetric]:
    """Every metric of an lm-eval results document: tasks of "results" and groups of "groups".

    Metrics are the numeric `METRIC,FILTER` keys (plain `METRIC` keys too in files without a
    higher_is_better section, as lm-eval 0.3 wrote them); their `METRIC_stderr,FILTER` is kept as the
    stderr, and alias, name, sample_len and anything not a finite number are not metrics.
    """
    label = file or "the document"
    results = doc.get("results")
    if not isinstance(results, dict) or not results:
        raise InvalidInput(f"{label} has no 'results' object: not an lm-evaluation-harness output")
    groups = _dict(doc.get("groups"))
    subtasks = {g: [t for t in s if isinstance(t, str)] for g, s in _dict(doc.get("group_subtasks")).items()
                if isinstance(s, list)}
    n_shots = _dict(doc.get("n-shot"))
    hib = doc.get("higher_is_better")
    run = _dict(doc.get("config"))
    common = {k: v for k, v in {
        "file": file, "lm_eval_version": doc.get("lm_eval_version"), "model_name": doc.get("model_name"),
        "model_args": run.get("model_args"), "transformers_version": doc.get("transformers_version"),
        "git_hash": doc.get("git_hash"), "date": doc.get("date"),
        "config": {k: run[k] for k in _RUN_KEYS if k in run} or None}.items() if v is not None}
    out: list[LmEvalMetric] = []
    for task, vals in {**results, **groups}.items():
        if not isinstance(vals, dict):
            continue
        directions = _dict(_dict(hib).get(task))
        shot = _n_shot(task, n_shots, subtasks)
        details = _finite({**common, **_task_details(doc, task, vals, subtasks, is_group=task in groups)})
        for key, v in vals.items():
            metric, _, filt = key.partition(",")
            if (metric in NOT_METRICS or metric.endswith("_stderr") or not _number(v)
                    or (not filt and isinstance(hib, dict) and metric not in directions)):
                continue
            filt = filt or "none"
            up = directions.get(metric)
            m = LmEvalMetric(task, metric, filt, shot, float(v), _stderr(vals, metric, filt),
                             up if isinstance(up, bool) else (False if metric in LOWER_IS_BETTER else None),
                             details)
            if not METRIC_RE.fullmatch(m.name):
                raise InvalidInput(f"{label}: metric {m.name!r} cannot be named in this registry",
                                   hint="metric names match [A-Za-z0-9_.:/,@-]{1,200}")
            out.append(m)
    if not out:
        raise InvalidInput(f"{label} holds no numeric metrics")
    return out


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _finite(v: Any) -> Any:
    """The details as JSON can hold them (NaN and infinities, which Python's json reads, become null)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _stderr(vals: Mapping[str, Any], metric: str, filt: str) -> float | None:
    v = vals.get(f"{metric}_stderr,{filt}", vals.get(f"{metric}_stderr") if filt == "none" else None)
    return float(v) if _number(v) else None


def _n_shot(task: str, n_shots: Mapping[str, Any], subtasks: Mapping[str, list[str]]) -> int | None:
    """The task's n-shot; a group without one has its subtasks' when they all agree."""
    n = n_shots.get(task)
    if isinstance(n, int) and _shot_count(n):
        return n
    subs = {n_shots.get(t) if _shot_count(n_shots.get(t)) else None for t in subtasks.get(task, [])}
    return subs.pop() if len(subs) == 1 else None


def _shot_count(n: Any) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 100_000


def _task_details(doc: Mapping[str, Any], task: str, vals: Mapping[str, Any], subtasks: Mapping[str, list[str]],
                  *, is_group: bool) -> dict[str, Any]:
    cfg = _dict(_dict(doc.get("configs")).get(task))
    out: dict[str, Any] = {
        "task_version": _dict(doc.get("versions")).get(task),
        "n_samples": _dict(doc.get("n-samples")).get(task),
        "sample_len": vals.get("sample_len"),
        "task_config": {k: cfg[k] for k in _CONFIG_KEYS if k in cfg} or None,
        "groups": sorted(g for g, subs in subtasks.items() if task in subs) or None,
    }
    if is_group:
        out["group"] = True
        out["subtasks"] = subtasks.get(task)
    return {k: v for k, v in out.items() if v is not None}
