"""Synthetic catalog for bench/lookup.py: generated once, bulk-loaded into the registry's tables
and into MLflow's model-registry tables, on SQLite (executemany) and PostgreSQL (COPY).

The shape is meant to look like a real shared registry, not a uniform grid:
- ~20 base names with 1-3 revisions each, popularity skewed (the top base holds ~1/6 of versions);
- adapters of ~20 versions each, pushed interleaved over a year (ids follow push order, as they do
  through `Registry.push`), rank per adapter from {4,8,16,32,64} with an occasional change;
- 5 eval rows per version over 4 of 6 metrics (one metric re-evaluated, so history != current);
- aliases `production` / `staging` on ~1 adapter in 5, ~5% of versions deprecated;
- two files per version (config, weights) with blob rows, so `show` reads what it would in real life.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from dataclasses import dataclass, field

RANKS = (4, 8, 16, 32, 64)
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
METRICS = ("acc", "mmlu", "hellaswag", "arc_challenge", "truthfulqa_mc2", "gsm8k")
METRIC_WEIGHTS = (8, 5, 4, 3, 2, 2)  # acc is on most versions, gsm8k on few
BASE_FAMILIES = (
    ("meta-llama/Llama-3.1-8B", 4096, 32), ("meta-llama/Llama-3.2-1B", 2048, 16),
    ("meta-llama/Llama-3.2-3B", 3072, 28), ("mistralai/Mistral-7B-v0.3", 4096, 32),
    ("Qwen/Qwen2.5-0.5B", 896, 24), ("Qwen/Qwen2.5-1.5B", 1536, 28), ("Qwen/Qwen2.5-7B", 3584, 28),
    ("Qwen/Qwen2.5-14B", 5120, 48), ("google/gemma-2-2b", 2304, 26), ("google/gemma-2-9b", 3584, 42),
    ("microsoft/phi-3-mini-4k", 3072, 32), ("microsoft/phi-3.5-mini", 3072, 32),
    ("TinyLlama/TinyLlama-1.1B", 2048, 22), ("HuggingFaceTB/SmolLM2-135M", 576, 30),
    ("HuggingFaceTB/SmolLM2-1.7B", 2048, 24), ("tiiuae/falcon-7b", 4544, 32),
    ("EleutherAI/pythia-1b", 2048, 16), ("bigcode/starcoder2-3b", 3072, 30),
    ("ibm-granite/granite-3.0-2b", 2048, 40), ("allenai/OLMo-2-7B", 4096, 32),
)
TEAMS = ("search", "support", "legal", "code", "ads", "safety", "infra", "research")
TASKS = ("chat", "summarize", "classify", "extract", "translate", "code")
EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
ACTOR = "bench"


def _hex(*parts) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Table:
    name: str
    columns: tuple[str, ...]
    rows: list[tuple] = field(default_factory=list)


@dataclass
class Dataset:
    """Rows for every table the lookups read, plus what the benchmark needs to pick parameters."""

    tables: dict[str, Table]
    base_names: list[str]
    base_weights: list[float]
    adapter_names: list[str]          # index = adapter id - 1
    adapter_versions: list[int]       # number of versions per adapter (same index)
    aliased: list[tuple[str, str]]    # (adapter name, alias)
    # per version, for the MLflow copy: (adapter name, version, created_at, base name, tags dict)
    mlflow_versions: list[tuple[str, int, dt.datetime, str, dict[str, str]]]
    n_versions: int
    n_evals: int


def generate(n_versions: int = 100_000, n_evals: int = 500_000, *, per_adapter: int = 20,
             seed: int = 7) -> Dataset:
    rnd = random.Random(seed)
    evals_per_version = max(1, round(n_evals / n_versions))

    # -- base models: NAME with 1-3 revisions; adapters pushed later use later revisions -------
    bases = Table("base_models", ("id", "name", "revision", "fingerprint", "architecture", "model_type",
                                  "config_hash", "layout_hash", "tokenizer_hash", "vocab_size", "hidden_size",
                                  "num_layers", "dtype", "tie_word_embeddings", "param_count", "total_size",
                                  "location", "weights_stored", "layout", "config", "files", "created_at",
                                  "created_by"))
    revisions: dict[str, list[int]] = {}
    bid = 0
    for name, hidden, layers in BASE_FAMILIES:
        for r in range(rnd.choice((1, 1, 2, 2, 3))):
            bid += 1
            cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": hidden, "num_hidden_layers": layers,
                   "vocab_size": 32000, "torch_dtype": "bfloat16"}
            layout = {f"model.layers.{i}.self_attn.q_proj.weight": [[hidden, hidden], "BF16"] for i in range(layers)}
            bases.rows.append((bid, name, f"rev{r + 1}", _hex("base", name, r), "LlamaForCausalLM", "llama",
                               _hex("cfg", name), _hex("layout", name), _hex("tok", name), 32000, hidden, layers,
                               "bfloat16", False, hidden * hidden * layers * 12, hidden * hidden * layers * 24,
                               f"/models/{name}/{r}", False, json.dumps(layout), json.dumps(cfg),
                               json.dumps({"config.json": {"size": 700}}), EPOCH + dt.timedelta(days=60 * r),
                               ACTOR))
            revisions.setdefault(name, []).append(bid)
    base_names = [b[0] for b in BASE_FAMILIES]
    base_weights = [1 / (i + 1) ** 0.8 for i in range(len(base_names))]

    # -- adapters and their versions, interleaved in time -------------------------------------
    n_adapters = max(1, n_versions // per_adapter)
    counts = [per_adapter] * n_adapters
    for _ in range(n_adapters // 2):  # vary the count per adapter, keeping the total
        i, j = rnd.randrange(n_adapters), rnd.randrange(n_adapters)
        d = rnd.randint(0, min(counts[j] - 1, 15))
        counts[i] += d
        counts[j] -= d
    counts[-1] += n_versions - sum(counts)
    year = 365 * 86400
    pending = []  # (created_at, adapter index, version number)
    adapter_meta = []
    for a in range(n_adapters):
        team = TEAMS[a % len(TEAMS)]
        name = f"{team}/{rnd.choice(TASKS)}-{a:05d}"
        base = rnd.choices(base_names, base_weights)[0]
        start = rnd.uniform(0, year * 0.6)
        span = rnd.uniform(year * 0.05, year - start)
        times = sorted(rnd.uniform(start, start + span) for _ in range(counts[a]))
        adapter_meta.append((name, team, base, rnd.choice(RANKS), rnd.sample(MODULES, rnd.randint(2, 7)), start))
        pending += [(t, a, v + 1) for v, t in enumerate(times)]
    pending.sort()

    adapters = Table("adapters", ("id", "name", "namespace", "description", "latest_version", "created_at",
                                  "created_by"))
    for a, (name, team, _b, _r, _m, start) in enumerate(adapter_meta):
        adapters.rows.append((a + 1, name, team, f"{name} adapter", counts[a], EPOCH + dt.timedelta(seconds=start),
                              ACTOR))

    vcols = ("id", "adapter_id", "version", "content_digest", "base_model_id", "base_model_hint", "peft_type",
             "task_type", "rank", "alpha", "rank_pattern", "alpha_pattern", "target_modules", "use_dora",
             "use_rslora", "modules_to_save", "bias", "init_method", "adapter_dtype", "param_count", "size_bytes",
             "description", "config", "training", "compat", "compat_status", "deprecated", "deprecation_reason",
             "successor_id", "created_at", "created_by", "min_rank", "max_rank")
    versions = Table("adapter_versions", vcols)
    files = Table("version_files", ("version_id", "path", "digest", "size", "role"))
    blobs = Table("blobs", ("digest", "size", "created_at"))
    tms = Table("version_target_modules", ("version_id", "module"))
    tags = Table("tags", ("version_id", "key", "value"))
    evals = Table("eval_results", ("id", "version_id", "metric", "value", "dataset", "split", "source", "details",
                                   "created_at", "created_by"))
    mvals = Table("metric_values", ("version_id", "metric", "value", "base_model_id", "rank", "deprecated"))
    ids_of: dict[int, list[int]] = {}
    mlv = []
    eid = 0
    for vid, (t, a, num) in enumerate(pending, start=1):
        name, team, base, rank, mods, _s = adapter_meta[a]
        if rnd.random() < 0.1:  # an occasional retrain at another rank
            rank = rnd.choice(RANKS)
        revs = revisions[base]
        bmid = revs[min(len(revs) - 1, int(t / year * len(revs)))]
        created = EPOCH + dt.timedelta(seconds=t)
        deprecated = num < counts[a] - 3 and rnd.random() < 0.08
        dora = rnd.random() < 0.1
        digest = _hex("content", vid)
        params = rank * 2 * 4096 * len(mods) * 32
        conf = {"peft_type": "LORA", "r": rank, "lora_alpha": rank * 2, "target_modules": sorted(mods),
                "task_type": "CAUSAL_LM", "base_model_name_or_path": base, "use_dora": dora, "lora_dropout": 0.05,
                "bias": "none"}
        compat = {"status": "ok", "errors": [], "warnings": [], "modules_touched": len(mods) * 32}
        versions.rows.append((
            vid, a + 1, num, digest, bmid, base, "LORA", "CAUSAL_LM", rank, float(rank * 2), "{}", "{}",
            json.dumps(sorted(mods)), dora, False, "[]", "none", None, "bfloat16", params, params * 2,
            "", json.dumps(conf), None, json.dumps(compat), "ok", deprecated,
            "superseded" if deprecated else None, None, created, ACTOR, rank, rank))  # no rank_pattern: min = max = r
        ids_of.setdefault(a, []).append(vid)
        wdig, cdig = _hex("w", vid), _hex("c", vid)
        files.rows += [(vid, "adapter_config.json", cdig, 600, "config"),
                       (vid, "adapter_model.safetensors", wdig, params * 2, "weights")]
        blobs.rows += [(cdig, 600, created), (wdig, params * 2, created)]
        tms.rows += [(vid, m) for m in sorted(mods)]
        vtags = {"team": team, "task": name.split("/")[1].rsplit("-", 1)[0]}
        if rnd.random() < 0.3:
            vtags["dataset"] = rnd.choice(("ultrachat", "tulu3", "internal-v2", "oasst2"))
        tags.rows += [(vid, k, v) for k, v in sorted(vtags.items())]
        # evals: k distinct metrics, the rest re-evaluations (history) of the first one
        k = min(len(METRICS), max(1, evals_per_version - 1))
        chosen: list[str] = []
        while len(chosen) < k:
            m = rnd.choices(METRICS, METRIC_WEIGHTS)[0]
            if m not in chosen:
                chosen.append(m)
        quality = rnd.gauss(0, 0.08)
        current = {}
        for j in range(evals_per_version):
            m = chosen[j] if j < k else chosen[0]
            val = round(min(0.99, max(0.01, 0.55 + quality + rnd.gauss(0, 0.05))), 4)
            eid += 1
            evals.rows.append((eid, vid, m, val, "lm-eval/" + m, "test", "lm-eval", None,
                               created + dt.timedelta(hours=j + 1), ACTOR))
            current[m] = val
        mvals.rows += [(vid, m, v, bmid, rank, deprecated) for m, v in sorted(current.items())]
        mlv.append((name, num, created, base, {
            **vtags, "base": base, "base_revision": f"rev{revs.index(bmid) + 1}", "rank": str(rank),
            "peft_type": "LORA", "target_modules": ",".join(sorted(mods)), "deprecated": str(deprecated).lower(),
            **{m: f"{v:.4f}" for m, v in current.items()}}))

    # successors for deprecated versions: the adapter's latest version
    vi = {c: i for i, c in enumerate(vcols)}
    rows = versions.rows
    for vids in ids_of.values():
        latest = vids[-1]
        for v in vids[:-1]:
            r = rows[v - 1]
            if r[vi["deprecated"]]:
                rows[v - 1] = r[:vi["successor_id"]] + (latest,) + r[vi["successor_id"] + 1:]

    aliases = Table("aliases", ("adapter_id", "alias", "version_id", "updated_at", "updated_by"))
    aliased = []
    for vids in ids_of.values():
        if a % 5 == 0:
            prod = vids[max(0, len(vids) - 3)]
            aliases.rows.append((a + 1, "production", prod, rows[prod - 1][vi["created_at"]], ACTOR))
            aliased.append((adapter_meta[a][0], "production"))
            if a % 10 == 0:
                aliases.rows.append((a + 1, "staging", vids[-1], rows[vids[-1] - 1][vi["created_at"]], ACTOR))
                aliased.append((adapter_meta[a][0], "staging"))
    tables = {t.name: t for t in (bases, adapters, blobs, versions, files, tms, tags, evals, mvals, aliases)}
    return Dataset(tables, base_names, base_weights, [m[0] for m in adapter_meta], counts, aliased, mlv,
                   len(rows), eid)


# -- loading ------------------------------------------------------------------------------------
def _sqlite_value(v):
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME storage format
    if isinstance(v, bool):
        return int(v)
    return v


def _pg_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def load(url: str, tables: list[Table]) -> None:
    """Bulk-load tables (in the order given) in one transaction, then ANALYZE.

    SQLite: plain executemany with foreign keys off (successor ids point forward);
    PostgreSQL: COPY, then setval so later inserts through the ORM get fresh ids.
    """
    from sqlalchemy.engine import make_url

    if make_url(url).get_backend_name() == "sqlite":
        import sqlite3

        con = sqlite3.connect(make_url(url).database, isolation_level=None)
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("BEGIN")
        for t in tables:
            cols = ", ".join(f'"{c}"' for c in t.columns)
            con.executemany(f'INSERT INTO "{t.name}" ({cols}) VALUES ({", ".join("?" * len(t.columns))})',
                            (tuple(_sqlite_value(v) for v in r) for r in t.rows))
        con.execute("COMMIT")
        con.execute("ANALYZE")
        con.close()
        return
    import psycopg

    with psycopg.connect(_pg_dsn(url)) as con:
        with con.cursor() as cur:
            for t in tables:
                cols = ", ".join(f'"{c}"' for c in t.columns)
                with cur.copy(f'COPY "{t.name}" ({cols}) FROM STDIN') as cp:
                    for r in t.rows:
                        cp.write_row(r)
                if "id" in t.columns and t.rows:
                    cur.execute(f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
                                f"(SELECT max(id) FROM \"{t.name}\"))")
        con.commit()
    with psycopg.connect(_pg_dsn(url), autocommit=True) as con:
        con.execute("VACUUM ANALYZE")


def catalog_tables(ds: Dataset) -> list[Table]:
    order = ("base_models", "adapters", "blobs", "adapter_versions", "version_files", "version_target_modules",
             "tags", "eval_results", "metric_values", "aliases")
    return [ds.tables[n] for n in order]


def mlflow_tables(ds: Dataset) -> list[Table]:
    """The same data as MLflow registered models / model versions / tags / aliases."""
    ws = "default"
    ms = lambda d: int(d.timestamp() * 1000)  # noqa: E731
    rms = Table("registered_models", ("workspace", "name", "creation_time", "last_updated_time", "description"))
    mvs = Table("model_versions", ("workspace", "name", "version", "creation_time", "last_updated_time",
                                   "description", "user_id", "current_stage", "source", "storage_location",
                                   "run_id", "run_link", "status", "status_message"))
    mvt = Table("model_version_tags", ("workspace", "name", "version", "key", "value"))
    al = Table("registered_model_aliases", ("workspace", "name", "alias", "version"))
    first: dict[str, dt.datetime] = {}
    last: dict[str, dt.datetime] = {}
    for name, num, created, _base, tags in ds.mlflow_versions:
        name = mlflow_name(name)
        first.setdefault(name, created)
        last[name] = created
        src = f"s3://adapters/{name}/{num}"
        mvs.rows.append((ws, name, num, ms(created), ms(created), "", ACTOR, "None", src, src, None, None,
                         "READY", None))
        mvt.rows += [(ws, name, num, k, v) for k, v in tags.items()]
    rms.rows = [(ws, n, ms(first[n]), ms(last[n]), f"{n} adapter") for n in first]
    al_t = ds.tables["aliases"]
    vt = ds.tables["adapter_versions"]
    ver_of = {r[0]: r[2] for r in vt.rows}
    for adapter_id, alias, version_id, _u, _b in al_t.rows:
        al.rows.append((ws, mlflow_name(ds.adapter_names[adapter_id - 1]), alias, ver_of[version_id]))
    return [rms, mvs, mvt, al]


def mlflow_name(name: str) -> str:
    """MLflow model names cannot contain '/': team/task-00042 -> team.task-00042."""
    return name.replace("/", ".")


def row_counts(tables: list[Table]) -> dict[str, int]:
    return {t.name: len(t.rows) for t in tables}
