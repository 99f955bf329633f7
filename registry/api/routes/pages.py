"""Server-rendered pages: the catalog (the filters of `ls`), an adapter, base models, jobs.

They show what the API would show the same caller: with closed reads a namespaced token sees its
namespace only (the catalog refuses a name filter outside it, the base list is narrowed, jobs are
filtered), jobs carry no server paths for non-admins, and workers are listed as /workers allows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from registry.api import svg
from registry.api.auth import Caller
from registry.api.deps import Reader
from registry.api.views import check_workers, shown
from registry.catalog import queries as Q
from registry.errors import Forbidden, RegistryError

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")
PAGE = 50
FILTERS = ("name", "base", "peft_type", "min_rank", "max_rank", "target_module", "tag", "metric", "sort",
           "deprecated")


def render(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
    return templates.TemplateResponse(request, template, ctx, status_code=status)


def _int(v: str | None) -> int | None:
    v = (v or "").strip()
    return int(v) if v.lstrip("-").isdigit() else None


@router.get("/", response_class=HTMLResponse)
def catalog(request: Request, caller: Reader, name: str = "", base: str = "", peft_type: str = "",
            min_rank: str = "", max_rank: str = "", target_module: Annotated[list[str], Query()] = [],
            tag: Annotated[list[str], Query()] = [], metric: Annotated[list[str], Query()] = [], sort: str = "",
            deprecated: bool = False, offset: int = 0):
    """The catalog: every adapter version matching the filters, a page at a time."""
    reg = caller.registry
    form = {"name": name, "base": base, "peft_type": peft_type, "min_rank": min_rank, "max_rank": max_rank,
            "target_module": ", ".join(target_module), "tag": ", ".join(tag), "metric": ", ".join(metric),
            "sort": sort, "deprecated": deprecated}
    error = None
    page = None
    try:
        ns = caller.read_namespace()
        if ns is not None and name and not name.startswith(ns):
            raise Forbidden(f"this token reads {ns}* only", namespace=ns)
        page = reg.search(name=name or ns or None, base=base or None, peft_type=peft_type or None,
                          min_rank=_int(min_rank), max_rank=_int(max_rank), target_modules=_split(target_module),
                          tags=_split(tag), metrics=_split(metric), sort=sort or None,
                          include_deprecated=deprecated, count=True, limit=PAGE, offset=max(0, offset))
    except RegistryError as e:
        if e.status >= 500:
            raise
        error = e
    metric_cols = sorted({m for v in (page.items if page else ()) for m in v.metrics})[:6]
    query = {k: v for k, v in request.query_params.multi_items() if k != "offset"}

    def link(off: int) -> str:
        return "/?" + urlencode(list(query.items()) + [("offset", off)])

    return render(request, "catalog.html", error.status if error else 200, page=page, form=form, error=error,
                  metric_cols=metric_cols, bases=_bases(caller), link=link, page_size=PAGE)


def _bases(caller: Caller) -> list:
    """The base models this caller may see."""
    with caller.registry.db.read() as s:
        return Q.list_bases(s, namespace=caller.read_namespace())


def _split(values: list[str]) -> list[str]:
    """Repeated params, or one comma-separated field from the form."""
    return [p.strip() for v in values for p in v.split(",") if p.strip()]


@router.get("/adapters/{name:path}", response_class=HTMLResponse)
def adapter_page(request: Request, name: str, caller: Reader, version: int | None = None):
    """One adapter: its versions, a metrics chart across them, and the selected version in full."""
    caller.can_read(name)
    reg = caller.registry
    a = reg.adapter(name)
    chosen = version if version is not None else a.latest_version
    v = reg.show(f"{name}@{chosen}")
    metrics_chart = svg.line_chart(svg.metrics_by_version(a.versions), title="Metrics across versions",
                                   x_label="version", chart_id="metrics-chart", integer_x=True)
    loss = svg.loss_points(v.training)
    loss_chart = svg.line_chart({"loss": loss}, title="Training loss", x_label="step",
                                chart_id="loss-chart") if loss else ""
    history = _alias_history(reg, name)
    policies, promotion = _policies(reg, name, v.version)
    return render(request, "adapter.html", adapter=a, v=v, metrics_chart=metrics_chart, loss_chart=loss_chart,
                  history=history, policies=policies, promotion=promotion)


def _policies(reg, name: str, version: int) -> tuple[list, list]:
    """Protected aliases with their gates (and how their current version fares), and how the
    shown version would fare if promoted to each of them."""
    protected = [a for a in reg.release.aliases(name) if a.protected and a.policy is not None]
    return protected, [reg.release.check_promotion(name, a.alias, version) for a in protected]


def _alias_history(reg, name: str) -> list:
    """Newest moves first."""
    return list(reversed(reg.release.alias_history(name, limit=50)))


@router.get("/bases", response_class=HTMLResponse)
def bases_page(request: Request, caller: Reader):
    return render(request, "bases.html", bases=_bases(caller))


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, caller: Reader):
    """Jobs and workers; a small script polls the API for live state."""
    jobs = caller.registry.jobs
    try:
        check_workers(caller)
        workers = jobs.workers()
    except Forbidden:
        workers = None
    return render(request, "jobs.html", jobs=[shown(j, caller) for j in jobs.list(limit=100)], workers=workers)
