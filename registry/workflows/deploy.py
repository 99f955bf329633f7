"""deploy --vllm URL --alias ALIAS: what the server should serve, from the catalog (engines/deploy.py applies it).

`follow` is `deploy --follow`: deploy now, then again after every batch of events that can move the
alias set. Each deploy computes the whole desired set from the catalog and compares it with what
the server lists, so it is idempotent, a missed or repeated event costs nothing, and resuming from
the last event id handled (`--state FILE`) only saves the deploys of events already applied.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from registry import gates
from registry.catalog import queries as Q
from registry.core import Core
from registry.engines import deploy as D
from registry.errors import DeployFailed, InvalidInput, NotFound
from registry.refs import parse_ref


def desired(core: Core, base: str, alias: str, *, require_verified: bool = True
            ) -> tuple[dict[str, str], dict[str, str]]:
    """({NAME@ALIAS: folder} to serve, {NAME@ALIAS: why not}) for the adapters of `base` that have `alias`.

    What the serving profile leaves out (vLLM would refuse it) is skipped with its reason; with
    `require_verified`, so is a version with no passed vLLM verification against that base.
    """
    from registry.release.api import Release

    try:
        prof = Release(core).serving_profile(base, alias=alias)
    except InvalidInput as e:
        if "no servable adapter" not in str(e):
            raise
        return {}, {}
    skipped = {w: "vLLM would refuse it" for w in prof.warnings if w.startswith("left out")}
    out: dict[str, str] = {}
    with core.db.read() as s:
        base_row = Q.get_base(s, base)
        for a in prof.adapters:
            _ad, row = Q.get_version(s, parse_ref(a.ref))
            if require_verified and not gates.verdict(s, row.id, base_row.id, engine="vllm").passed:
                skipped[f"{a.name}@{alias}"] = f"{a.ref} is not verified on vllm against {base}"
                continue
            out[f"{a.name}@{alias}"] = a.path
    return out, skipped


def deploy(core: Core, url: str, *, alias: str, base: str | None = None, require_verified: bool = True,
           dry_run: bool = False) -> D.Plan:
    """Load and unload LoRAs on the vLLM server at `url` until its `@alias` names are exactly the alias set.

    Raises:
        NotFound: `base` not given and the served model is not a registered base's folder
        DeployFailed: vLLM refused a load or unload
    """
    D.check_alias(alias)
    served_base, current = D.served(url)
    if base is None:
        base = _base_of(core, served_base)
    want, skipped = desired(core, base, alias, require_verified=require_verified)
    p = D.plan(alias, want, current, skipped=skipped)
    if not dry_run:
        D.apply(url, p)
    return p


def follow(core: Core, url: str, *, alias: str, base: str | None = None, require_verified: bool = True,
           after_id: int = 0, poll_s: float = 1.0, stop: Callable[[], bool] = lambda: False,
           on_deploy: Callable[[D.Plan, D.Moves, int], None] = lambda p, moved, last: None,
           on_error: Callable[[DeployFailed], None] = lambda e: None,
           sleep: Callable[[float], None] = time.sleep) -> int:
    """Deploy, then deploy again after each batch of events (id > after_id) that can change what `alias` serves.

    `on_deploy(plan, moves, last_event_id)` follows every deploy that went through; a refused or
    failed one (`on_error`) leaves the cursor where it was and is retried every `poll_s`. Returns
    the last event id handled once `stop()` is true (checked after each poll).
    """
    from registry.release.api import Release

    D.check_alias(alias)
    rel = Release(core)
    moved: D.Moves = {}
    last, pending = after_id, True  # deploy once at start: the server may be anywhere
    while True:
        page = rel.events(last, 500)
        if D.due(page, alias):
            pending = True
            moved.update(D.moves(page, alias))
        head = page[-1].id if page else last
        if pending:
            try:
                p = deploy(core, url, alias=alias, base=base, require_verified=require_verified)
            except DeployFailed as e:
                on_error(e)
                head = last  # not handled: read this page again
            else:
                on_deploy(p, moved, head)
                pending, moved = False, {}
        last = head
        if stop():
            return last
        if pending or len(page) < 500:
            sleep(poll_s)


def _base_of(core: Core, served: str | None) -> str:
    from registry.catalog import models as M
    from registry.workflows.resolve import base_folder

    if served:
        with core.db.read() as s:
            bases = [(b.name, b.fingerprint) for b in s.query(M.BaseModelRow).all()]
        for name, fp in bases:
            try:
                if Path(base_folder(core, f"{name}@{fp}")).resolve() == Path(served).resolve():
                    return f"{name}@{fp}"
            except (NotFound, OSError):
                continue
    raise NotFound(f"the vLLM server serves {served!r}, which is no registered base's folder; pass --base NAME")
