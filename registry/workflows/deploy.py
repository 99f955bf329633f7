"""deploy --vllm URL --alias ALIAS: what the server should serve, from the catalog (engines/deploy.py applies it)."""

from __future__ import annotations

from pathlib import Path

from registry import gates
from registry.catalog import queries as Q
from registry.core import Core
from registry.engines import deploy as D
from registry.errors import InvalidInput, NotFound
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
