"""Evaluation result formats (pure)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from registry.errors import InvalidInput

PRIMARY = ("acc", "exact_match", "f1", "mc2", "acc_norm", "pass@1", "bleu", "rouge1")


def parse_lm_eval(path: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics from an lm-evaluation-harness results file.

    Each task's metrics are recorded as TASK/METRIC (the ",none" filter suffix dropped, other
    filters kept as METRIC,FILTER; stderr values left out), and the task's primary metric (the
    first of acc, exact_match, f1, ...) also as plain TASK, so `mmlu>=0.62` works.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise InvalidInput(f"no such file: {path}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidInput(f"{Path(path).name} is not valid JSON ({e})") from e
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, dict) or not results:
        raise InvalidInput(f"{Path(path).name} has no 'results' object: not an lm-evaluation-harness output")
    out: dict[str, float] = {}
    for task, vals in results.items():
        if not isinstance(vals, dict):
            continue
        task_metrics: dict[str, float] = {}
        for key, v in vals.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or "_stderr" in key:
                continue
            if not math.isfinite(v):
                continue
            name, _, filt = key.partition(",")
            metric = name if filt in ("", "none") else f"{name},{filt}"
            task_metrics[metric] = float(v)
        for m, v in task_metrics.items():
            out[f"{task}/{m}"] = v
        primary = next((m for m in PRIMARY if m in task_metrics), None)
        if primary:
            out[task] = task_metrics[primary]
    if not out:
        raise InvalidInput(f"{Path(path).name} holds no numeric metrics")
    details = {"lm_eval_version": doc.get("lm_eval_version"), "model_name": doc.get("model_name"),
               "n-shot": doc.get("n-shot"), "file": Path(path).name}
    return out, {k: v for k, v in details.items() if v is not None}
