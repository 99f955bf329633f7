"""The model card (README.md) of a merged checkpoint, written with huggingface_hub's ModelCard.

What the Hub reads from the front matter: `base_model` (the base's Hub id, only when the catalog
knows it: a registry name is not a Hub id, and the adapter config's base_model_name_or_path names
what the adapter was trained on, not necessarily the base it was merged into), `base_model_relation`
(with `base_model` only), `library_name`, `tags`, `license` / `language` / `pipeline_tag` from the
base's own card, and `model-index` from the version's evaluations. `adapter_registry` holds what
identifies the merge in the catalog (adapter name, version, digest; base name and fingerprint).

The card is a snapshot of the catalog when the merge ran: it is one of the merged files (listed in
manifest.json), and the merged artifact is immutable and cached by what decides its weights, so an
evaluation added later does not rewrite a cached merge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.adapters.basemodel import card_fields

DEFAULT_TAGS = ("adapter-registry", "merged", "peft")
DEFAULT_TASK = "text-generation"


def prefetch() -> None:
    """Import what `card_text` needs (huggingface_hub's card modules, ~0.3 s) in a background
    thread: the streaming engine starts it once torch is loaded, so the import runs while the
    merge computes instead of after it. Best effort: a failure shows up, unchanged, in card_text."""
    import threading

    def load() -> None:
        try:
            import huggingface_hub.repocard  # noqa: F401
        except Exception:  # noqa: BLE001 - card_text's own import reports it
            pass

    global _prefetching
    _prefetching = threading.Thread(target=load, name="card-prefetch", daemon=True)
    _prefetching.start()


_prefetching: Any = None  # the running prefetch thread, joined by card_text before it imports


def card_text(card: dict[str, Any], *, engine: str, dtype: str) -> str:
    """README.md of a merged model from `card`: {"adapter": {name, version, digest, peft_type},
    "base": {name, fingerprint, hub_id, card}, "tags": [...], "evals": [EvalResult.to_dict(), ...]}."""
    if _prefetching is not None:
        _prefetching.join()  # one thread imports a module at a time: no partly loaded module seen here
    from huggingface_hub import ModelCard, ModelCardData

    adapter, base = card.get("adapter") or {}, card.get("base") or {}
    base_card = card_fields(base.get("card") or {})  # a card recorded before it was checked, too
    hub_id = base.get("hub_id") or None
    peft_type = str(adapter.get("peft_type") or "lora").lower()
    tags = sorted(set(DEFAULT_TAGS) | {peft_type} | set(card.get("tags") or []) | set(_list(base_card.get("tags"))))
    evals = _latest(card.get("evals") or [])
    task_type = base_card.get("pipeline_tag") or DEFAULT_TASK
    results = [r for e in evals if (r := _eval_result(e, task_type)) is not None]
    name = adapter.get("name") or "merged-model"
    relation: dict[str, Any] = {"base_model_relation": "merge"} if hub_id else {}
    data = ModelCardData(
        base_model=hub_id, library_name="transformers", tags=tags, license=base_card.get("license"),
        language=base_card.get("language"), pipeline_tag=base_card.get("pipeline_tag"),
        model_name=name if results else None, eval_results=results or None,
        **relation,
        adapter_registry={
            "adapter": {"name": adapter.get("name", ""), "version": adapter.get("version"),
                        "digest": adapter.get("digest", "")},
            "base": {"name": base.get("name", ""), "fingerprint": base.get("fingerprint", "")},
        })
    base_text = f"`{hub_id}`" if hub_id else f"the registry's base `{base.get('name', '?')}`"
    body = [f"# {name} (merged)", "",
            f"The {peft_type.upper()} adapter `{name}` version {adapter.get('version', '?')} "
            f"(digest `{adapter.get('digest', '?')}`) merged into {base_text} (fingerprint "
            f"`{base.get('fingerprint', '?')}`) by the adapter registry's {engine} engine, stored as {dtype}. "
            "`manifest.json` lists the sha256 of every file and the recipe; the merged weights are "
            "bit-identical to peft's `merge_and_unload()`.", ""]
    if evals:
        body += ["## Evaluations (when merged)", "", "| metric | value | stderr | n-shot | dataset | split |",
                 "|---|---|---|---|---|---|"]
        body += [f"| {e['metric']} | {e['value']:g} | {_cell(e.get('stderr'))} | {_cell(e.get('n_shot'))} | "
                 f"{_cell(e.get('dataset') or e.get('task'))} | {_cell(e.get('split'))} |" for e in evals]
        body.append("")
    text = "---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(body).rstrip() + "\n"
    return str(ModelCard(text))  # parsed back: a card the Hub would not read fails here, not there


def write_card(out: Path, card: dict[str, Any], *, engine: str, dtype: str) -> None:
    (Path(out) / "README.md").write_text(card_text(card, engine=engine, dtype=dtype))


def _latest(evals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The current value of each metric (the last one recorded wins, as for `ls --metric`), by name."""
    by_metric: dict[str, dict[str, Any]] = {}
    for e in evals:
        by_metric.pop(e["metric"], None)
        by_metric[e["metric"]] = e
    return sorted(by_metric.values(), key=lambda e: e["metric"])


def _eval_result(e: dict[str, Any], task_type: str) -> Any:
    """One model-index entry (huggingface_hub's EvalResult), or None without a dataset or task to name.

    The registry's metric name is `metric_name`; lm-eval's metric (`acc`, `exact_match`) is
    `metric_type` and its filter `metric_config`; n-shot is `dataset.args.num_few_shot`, as the
    Open LLM Leaderboard writes it. model-index has no place for a standard error: it is in the
    card's table.
    """
    from huggingface_hub import EvalResult

    dataset = e.get("dataset") or e.get("task")
    if not dataset:
        return None
    n_shot = e.get("n_shot")
    return EvalResult(
        task_type=task_type, dataset_type=str(dataset), dataset_name=str(e.get("task") or dataset),
        dataset_split=e.get("split"), dataset_args={"num_few_shot": int(n_shot)} if n_shot is not None else None,
        metric_type=str(e.get("base_metric") or e["metric"]), metric_name=str(e["metric"]),
        metric_config=e.get("filter_name"), metric_value=float(e["value"]))


def _list(v: Any) -> list[str]:
    if v is None:
        return []
    return [str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)]


def _cell(v: Any) -> str:
    return "" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))
