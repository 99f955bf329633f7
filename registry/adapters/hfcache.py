"""Base models that are already in the local Hugging Face cache, found by Hub id (no network).

The cache is huggingface_hub's (`models--Org--Name/{blobs,snapshots/<commit>,refs/<name>}`, the
snapshot files symlinks into blobs/), read with its own scanner (`scan_cache_dir`) so that the
registry sees exactly what transformers and huggingface_hub see. Where it is follows
huggingface_hub's variables, read when asked (not at import): HF_HUB_CACHE, then the legacy
HUGGINGFACE_HUB_CACHE, then HF_HOME/hub, then $XDG_CACHE_HOME/huggingface/hub, then
~/.cache/huggingface/hub.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from registry.errors import BaseModelNotFound, InvalidInput

# The Hub's repo id rule (huggingface_hub.utils.validate_repo_id): [namespace/]name, 1-96 characters.
_HUB_ID = re.compile(r"(?:[A-Za-z0-9][\w.\-]*/)?[A-Za-z0-9][\w.\-]*")
_MAX_HUB_ID = 96
_COMMIT_PREFIX = re.compile(r"[0-9a-f]{7,40}")


@dataclass(frozen=True)
class CachedSnapshot:
    folder: Path  # snapshots/<commit> (its files are symlinks into blobs/)
    hub_id: str  # with the casing the cache holds it under
    commit: str
    refs: tuple[str, ...]  # the branch and tag names pointing at this commit


def check_hub_id(hub_id: str) -> str:
    """A Hub repo id as the Hub accepts it (`Meta-Llama/Llama-3.2-1B`), else InvalidInput."""
    if (not isinstance(hub_id, str) or len(hub_id) > _MAX_HUB_ID or not _HUB_ID.fullmatch(hub_id)
            or ".." in hub_id or "--" in hub_id or hub_id.endswith(".git")):
        raise InvalidInput(f"invalid Hub repo id {hub_id!r}", hint="write ORG/NAME, e.g. Meta-Llama/Llama-3.2-1B")
    return hub_id


def default_base_name(hub_id: str) -> str:
    """The registry name a base found by Hub id gets unless one is given: the id, lower-cased
    (registry names are lower case; the Hub id keeps its casing in the base's `hub_id`)."""
    return check_hub_id(hub_id).lower()


def hub_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where huggingface_hub keeps its cache, by its own variables (see the module docstring)."""
    env = os.environ if env is None else env
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return Path(os.path.expandvars(os.path.expanduser(env[var])))
    home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                              "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """`ORG/NAME[@REV]` -> (hub id, revision or None)."""
    hub_id, _, rev = spec.partition("@")
    return check_hub_id(hub_id), (rev or None)


def find_snapshot(spec: str, *, cache_dir: Path | None = None) -> CachedSnapshot:
    """The cached snapshot of `ORG/NAME[@REV]`: REV is a branch or tag name of refs/, a commit or a
    unique commit prefix (7+ hex digits); without one, `main` (or the only snapshot there is).

    The Hub id is matched without regard to case, as the Hub does; the casing recorded is the cache's.

    Raises:
        BaseModelNotFound: no such repo in the cache, or no such revision of it (naming those it has)
        InvalidInput: not a Hub repo id, or the cache is a file
    """
    try:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.utils import CacheNotFound
    except ImportError as e:
        raise InvalidInput("reading the Hugging Face cache needs huggingface_hub",
                           hint="pip install 'adapter-registry[ml]' (or huggingface_hub)") from e

    hub_id, rev = parse_spec(spec)
    where = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    if where.exists() and not where.is_dir():  # scan_cache_dir raises a bare ValueError then
        raise InvalidInput(f"the Hugging Face cache {where} is not a folder", base=spec,
                           hint="point HF_HUB_CACHE (or HF_HOME) at the cache folder")
    try:
        info = scan_cache_dir(where)
    except CacheNotFound as e:
        raise BaseModelNotFound(f"no Hugging Face cache at {where}", base=spec,
                                hint="set HF_HUB_CACHE or HF_HOME, or download it first (hf download ORG/NAME)") from e
    repos = [r for r in info.repos if r.repo_type == "model" and r.repo_id.lower() == hub_id.lower()]
    if not repos:
        raise BaseModelNotFound(f"{hub_id} is not in the Hugging Face cache at {where}", base=spec,
                                hint=f"hf download {hub_id}, or pass the folder: base add PATH --hub-id {hub_id}")
    repo = repos[0]
    revs = sorted(repo.revisions, key=lambda r: r.commit_hash)
    refs = {name: r for r in revs for name in r.refs}
    if rev is None:
        found = refs.get("main") or (revs[0] if len(revs) == 1 else None)
    elif rev in refs:
        found = refs[rev]
    else:
        by_commit = [r for r in revs if _COMMIT_PREFIX.fullmatch(rev) and r.commit_hash.startswith(rev)]
        found = by_commit[0] if len(by_commit) == 1 else None
    if found is None:
        have = ", ".join(sorted(refs) + [r.commit_hash[:12] for r in revs if not r.refs]) or "none"
        raise BaseModelNotFound(f"{repo.repo_id} has no cached revision {rev or 'main'!r} (cached: {have})",
                                base=spec, hint=f"name one: --from-hf-cache {repo.repo_id}@REV")
    return CachedSnapshot(Path(found.snapshot_path), repo.repo_id, found.commit_hash, tuple(sorted(found.refs)))
