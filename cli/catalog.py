"""Catalog commands: base, push, ls, show, resolve, check, version, eval, audit."""

from __future__ import annotations

import click

from .common import human, json_option, kv, pass_ctx, print_json, progress_bar, short, table


@click.group()
def base() -> None:
    """Register and list base models (identified by fingerprint)."""


@base.command("add")
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--name", help="Registry name, e.g. llama-3-8b (default with a Hub id: the id, lower-cased).")
@click.option("--revision", help="Revision label (e.g. a Hub commit).")
@click.option("--hub-id", help="The Hub repo id the folder holds, with its casing, e.g. Meta-Llama/Llama-3.2-1B.")
@click.option("--from-hf-cache", "from_cache", metavar="ORG/NAME[@REV]",
              help="Register a snapshot of the local Hugging Face cache (HF_HUB_CACHE / HF_HOME) instead of PATH; "
                   "REV: a branch, tag or commit (default main). Records the Hub id and the commit.")
@click.option("--store-weights", is_flag=True, help="Copy the weights into the artifact store.")
@click.option("--full-hash", is_flag=True, help="Hash every weight byte (default: sizes and samples).")
@json_option
@pass_ctx
def base_add(ctx, path, name, revision, hub_id, from_cache, store_weights, full_hash, as_json) -> None:
    """Register a local Hugging Face model folder (PATH, or --from-hf-cache) by fingerprint."""
    from registry.adapters import hfcache
    from registry.errors import InvalidInput

    if from_cache:
        if path or hub_id or revision:
            raise InvalidInput("--from-hf-cache names the folder, the Hub id and the revision",
                               hint="drop PATH, --hub-id and --revision (write ORG/NAME@REV)")
        snap = hfcache.find_snapshot(from_cache)
        path, hub_id, revision = snap.folder, snap.hub_id, snap.commit
    elif not path:
        raise InvalidInput("base add needs PATH or --from-hf-cache ORG/NAME[@REV]")
    if name is None:
        if hub_id is None:
            raise InvalidInput("base add PATH needs --name (or --hub-id, whose lower-cased id is the default)")
        name = hfcache.default_base_name(hub_id)
    with progress_bar("registering base", enabled=not as_json) as cb:
        b = ctx.registry.add_base(path, name=name, revision=revision, store_weights=store_weights,
                                  full_hash=full_hash, progress=cb, hub_id=hub_id)
    if as_json:
        return print_json(b)
    hub = f" hub {b.hub_id}" if b.hub_id else ""
    click.echo(f"{'registered' if b.created else 'already registered'} {b.ref}{hub} fingerprint {short(b.fingerprint)} "
               f"({b.architecture}, {b.param_count:,} params, {b.dtype})")


@base.command("ls")
@click.option("--name")
@json_option
@pass_ctx
def base_ls(ctx, name, as_json) -> None:
    """List base models."""
    rows = ctx.registry.list_bases(name)
    if as_json:
        return print_json(rows)
    table(["NAME", "HUB ID", "REVISION", "FINGERPRINT", "ARCH", "DTYPE", "PARAMS", "SIZE", "LOCATION"],
          [(b.name, b.hub_id or "-", b.revision, short(b.fingerprint), b.architecture, b.dtype, f"{b.param_count:,}",
            human(b.total_size), b.location) for b in rows])


@base.command("show")
@click.argument("ref")
@json_option
@pass_ctx
def base_show(ctx, ref, as_json) -> None:
    """Show a base model (NAME, NAME@REVISION, a fingerprint prefix, or its Hub id ORG/NAME[@REV])."""
    b = ctx.registry.show_base(ref)
    if as_json:
        return print_json(b)
    kv([("name", b.name), ("hub id", b.hub_id), ("revision", b.revision), ("fingerprint", b.fingerprint),
        ("architecture", b.architecture),
        ("dtype", b.dtype), ("vocab", b.vocab_size), ("hidden", b.hidden_size), ("layers", b.num_layers),
        ("tied", b.tie_word_embeddings), ("params", f"{b.param_count:,}"), ("size", human(b.total_size)),
        ("location", b.location), ("weights stored", b.weights_stored), ("config hash", b.config_hash),
        ("layout hash", b.layout_hash), ("tokenizer hash", b.tokenizer_hash), ("card", b.card)])


@click.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--name", required=True, help="Adapter name: [a-z0-9][a-z0-9._-]*(/[a-z0-9._-]+)?")
@click.option("--base", "base_", help="Registered base model (NAME or NAME@REV).")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE, repeatable.")
@click.option("--description", default="")
@click.option("--checkpoint", help="Of a Trainer output: last, best or a step N (default: the root's adapter, "
              "else best_model_checkpoint when recorded, else last).")
@click.option("--adapter", help="Of a multi-adapter save: push only this adapter ('default' is the root's), "
              "as --name.")
@click.option("--map", "maps", multiple=True, metavar="ADAPTER=NAME",
              help="Of a multi-adapter save: the registry name of ADAPTER (default NAME-ADAPTER), repeatable.")
@json_option
@pass_ctx
def push(ctx, path, name, base_, tags, description, checkpoint, adapter, maps, as_json) -> None:
    """Register an adapter folder (PEFT or Trainer/TRL output) as a new version.

    A multi-adapter save (save_pretrained of several adapters: "default" at the root, the others in
    subfolders) pushes one version per adapter: "default" as NAME, ADAPTER as NAME-ADAPTER.
    """
    from pathlib import Path

    from registry.adapters.outputs import adapters_in, parse_maps
    from registry.errors import InvalidInput

    found = list(adapters_in(Path(path))) if Path(path).is_dir() else []
    names = parse_maps(maps)
    if adapter is None and len(found) > 1:
        with progress_bar("pushing", enabled=not as_json) as cb:
            res = ctx.registry.push_all(path, name=name, base=base_, tags=list(tags), description=description,
                                        progress=cb, checkpoint=checkpoint, names=names)
        if as_json:
            return print_json(res)
        for item in res.items:
            click.echo(f"{item.adapter} ({item.folder}): {_pushed_line(item.version)}")
            if item.version.base_note:
                click.echo(f"warning: {item.version.base_note}", err=True)
        return None
    if names:
        raise InvalidInput("--map applies to a multi-adapter save pushed whole", hint="--adapter pushes one as --name")
    with progress_bar("pushing", enabled=not as_json) as cb:
        v = ctx.registry.push(path, name=name, base=base_, tags=list(tags), description=description, progress=cb,
                              checkpoint=checkpoint, adapter=adapter)
    if as_json:
        return print_json(v)
    click.echo(_pushed_line(v))
    if v.base_note:
        click.echo(f"warning: {v.base_note}", err=True)
    t = v.training or {}
    if t.get("selected_checkpoint"):
        by = str(t.get("selected_by"))
        why = {"best": "best_model_checkpoint", "last": "the last checkpoint", "step": "--checkpoint"}.get(by, by)
        click.echo(f"took {t['selected_checkpoint']} ({why})"
                   + (f": {t['selection_note']}" if t.get("selection_note") else ""))
    if t.get("source") and "/" in t["source"]:
        click.echo(f"training record from {t['source']}")
    if adapter is not None and len(found) > 1:
        click.echo(f"pushed adapter {adapter} only; not pushed: {', '.join(a for a in found if a != adapter)}")


def _pushed_line(v) -> str:
    return (f"{'created' if v.created else 'unchanged, already'} {v.ref} digest {short(v.content_digest)} "
            f"{v.peft_type} r={v.rank} base={v.base.name if v.base else '-'} compat={v.compat_status}")


@click.command()
@click.option("--base", "base_", help="Base model NAME (all revisions) or NAME@REV.")
@click.option("--min-rank", type=int)
@click.option("--max-rank", type=int)
@click.option("--peft-type")
@click.option("--target-module", "target_modules", multiple=True, help="Must target this module (repeatable).")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("--metric", "metrics", multiple=True, help="e.g. 'acc>=0.6' (repeatable).")
@click.option("--name", help="Exact adapter name, or a namespace prefix ending in '/'.")
@click.option("--sort", help="created | name | rank | metric:NAME[:asc|:desc] (best first: ascending for "
                             "perplexity-like metrics); lm-eval names: docs/EVALS.md")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0)
@click.option("--deprecated", "include_deprecated", is_flag=True, help="Include deprecated versions.")
@json_option
@pass_ctx
def ls(ctx, base_, min_rank, max_rank, peft_type, target_modules, tags, metrics, name, sort, limit, offset,
       include_deprecated, as_json) -> None:
    """Search adapter versions."""
    page = ctx.registry.search(base=base_, min_rank=min_rank, max_rank=max_rank, peft_type=peft_type,
                               target_modules=target_modules, tags=list(tags), metrics=list(metrics), name=name,
                               sort=sort, limit=limit, offset=offset, include_deprecated=include_deprecated)
    if as_json:
        return print_json(page)
    show_metric = sort.split(":")[1] if sort and sort.startswith("metric:") else None
    cols = ["ADAPTER", "VERSION", "BASE", "TYPE", "RANK", "ALIASES", "CREATED"] + ([show_metric] if show_metric else [])
    table(cols, [(v.name, v.version, v.base.name if v.base else "-", v.peft_type, v.rank, ",".join(v.aliases),
                  v.created_at.strftime("%Y-%m-%d %H:%M"), *([v.metrics.get(show_metric)] if show_metric else []))
                 for v in page.items])


def _target_names(v) -> str | None:
    """The leaf names `ls --target-module` matches, when they differ from the saved form (and why not)."""
    names = list(v.target_module_names)
    if isinstance((v.config or {}).get("target_modules"), str) and names == [v.config["target_modules"]]:
        return "not expanded: no base recorded (`version set-base REF BASE` expands it)"
    return None if names == list(v.target_modules) else ", ".join(names)


@click.command()
@click.argument("ref")
@json_option
@pass_ctx
def show(ctx, ref, as_json) -> None:
    """Show an adapter version: NAME, NAME@VERSION or NAME@ALIAS."""
    v = ctx.registry.show(ref)
    if as_json:
        return print_json(v)
    kv([("adapter", v.ref), ("digest", v.content_digest),
        ("base", f"{v.base.name} ({short(v.base.fingerprint)})" if v.base else f"- (config says {v.base_model_hint})"),
        ("peft type", v.peft_type), ("rank", v.rank if v.min_rank == v.max_rank else
                                     f"{v.rank} ({v.min_rank}..{v.max_rank} with the rank pattern)"),
        ("alpha", v.alpha), ("targets", v.target_modules), ("target names", _target_names(v)),
        ("rank pattern", v.rank_pattern), ("alpha pattern", v.alpha_pattern), ("dora", v.use_dora or None),
        ("rslora", v.use_rslora or None), ("modules to save", v.modules_to_save), ("bias", v.bias),
        ("init", v.init_method), ("dtype", v.adapter_dtype), ("params", f"{v.param_count:,}"),
        ("size", human(v.size_bytes)), ("aliases", v.aliases), ("tags", v.tags), ("metrics", v.metrics),
        ("description", v.description), ("deprecated", (v.deprecation_reason or "yes") if v.deprecated else None),
        ("successor", v.successor), ("created", f"{v.created_at:%Y-%m-%d %H:%M} by {v.created_by}")])
    if v.compat:
        click.echo(f"{'compat:':<16}{v.compat['status']} ({v.compat.get('modules_touched', 0)} modules)")
        for e in v.compat.get("errors", []):
            click.echo(f"  error: {e}")
        for w in v.compat.get("warnings", []):
            click.echo(f"  warning: {w}")
    if v.training:
        t = v.training
        kv([("training", f"step {t.get('global_step')}, {len(t.get('loss_curve', []))} loss points"
             + (f", {t['selected_checkpoint']}" if t.get("selected_checkpoint") else ""))])
    for f in v.files:
        click.echo(f"  file {f.path:<32} {human(f.size):>10}  {short(f.digest)}  {f.role}")
    for x in v.verifications:
        click.echo(f"  verified {'PASS' if x.passed else 'FAIL'} on {x.device_kind} {x.dtype} against "
                   f"{x.base.name} at {x.created_at:%Y-%m-%d %H:%M}")
    for m in v.merged:
        click.echo(f"  merged #{m.id} {m.dtype} {m.engine} {human(m.size_bytes)} manifest {short(m.manifest_digest)}")
    for p in v.publications:
        click.echo(f"  published {p.uri}{'@' + p.revision if p.revision else ''}{' (forced)' if p.forced else ''} "
                   f"by {p.actor} at {p.at:%Y-%m-%d %H:%M}")


@click.command()
@click.argument("ref")
@click.option("--local-dir", type=click.Path(file_okay=False),
              help="Also copy the folder here (a new folder you own) and print this path.")
@json_option
@pass_ctx
def resolve(ctx, ref, local_dir, as_json) -> None:
    """Print a local folder with the adapter's files (for PeftModel.from_pretrained)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        path = ctx.registry.resolve(ref, local_dir=local_dir)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    print_json({"ref": ref, "path": str(path)}) if as_json else click.echo(str(path))


@click.command()
@click.argument("ref")
@click.option("--base", "base_", help="Check against this base instead of the recorded one.")
@json_option
@pass_ctx
def check(ctx, ref, base_, as_json) -> None:
    """Validate a folder (PATH, before any push) or check a version (REF) against its base.

    A PATH that is an existing folder is validated as an adapter folder (adapter_config.json) or a
    base model folder (config.json) by the passes push and `base add` run: every finding is
    printed, exit status 2 when anything is refused. Otherwise REF names a version (NAME,
    NAME@VERSION, NAME@ALIAS) and its static compatibility with a base is shown.
    """
    from pathlib import Path

    if Path(ref).is_dir():
        return _check_folder(ctx, Path(ref), base_, as_json)
    rep = ctx.registry.check(ref, base=base_)
    if as_json:
        print_json(rep)
    else:
        click.echo(f"{rep.ref} vs {rep.base.name if rep.base else '-'}: {rep.status} "
                   f"({rep.modules_touched} modules touched)")
        for e in rep.errors:
            click.echo(f"  error: {e}")
        for w in rep.warnings:
            click.echo(f"  warning: {w}")
    if rep.status == "fail":
        raise click.exceptions.Exit(2)


def _check_folder(ctx, path, base, as_json: bool) -> None:
    if base is None:  # the folder alone: no catalog needed
        from registry.adapters.validate.run import folder_report

        out = folder_report(path, max_header_bytes=ctx.settings.max_header_bytes)
    else:
        out = ctx.registry.check_folder(path, base=base)
    findings, compat = out["findings"], out["compat"]
    if as_json:
        print_json(out)
    else:
        click.echo(f"{path} ({out['kind']} folder): {out['status']}"
                   + (f", {len(findings)} findings" if findings else ""))
        for f in findings:
            where = ":".join(x for x in (f.get("file"), f.get("field")) if x)
            click.echo(f"  {f['code']}{' ' + where if where else ''}: {f['message']}")
            if f.get("hint"):
                click.echo(f"      hint: {f['hint']}")
        if compat is not None:
            click.echo(f"  against {compat['base']['name']}: {compat['status']}")
            for e in compat["errors"]:
                click.echo(f"    error: {e}")
            for w in compat["warnings"]:
                click.echo(f"    warning: {w}")
    if out["status"] != "ok":
        raise click.exceptions.Exit(2)


@click.group()
def version() -> None:
    """Change what the catalog records about a version (its files and digest never change)."""


@version.command("set-base")
@click.argument("ref")
@click.argument("base_")
@click.option("--force", is_flag=True, help="Replace a base the version already has.")
@json_option
@pass_ctx
def version_set_base(ctx, ref, base_, force, as_json) -> None:
    """Record BASE as the base model of REF (pushed without --base); the checks push runs re-run."""
    v = ctx.registry.set_base(ref, base_, force=force)
    if as_json:
        return print_json(v)
    click.echo(f"{v.ref} base={v.base.name if v.base else '-'} compat={v.compat_status or 'unknown'} "
               f"digest {v.content_digest[:12]}")


@click.group("eval")
def eval_() -> None:
    """Record and list evaluation results."""


@eval_.command("add")
@click.argument("ref")
@click.option("--metric", "metrics", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("--dataset")
@click.option("--split")
@click.option("--from-lm-eval", "lm_eval", type=click.Path(exists=True, dir_okay=False),
              help="An lm-evaluation-harness results_*.json (one result per task, metric, filter, n-shot; "
                   "names in docs/EVALS.md).")
@json_option
@pass_ctx
def eval_add(ctx, ref, metrics, dataset, split, lm_eval, as_json) -> None:
    """Attach metric values to an adapter version."""
    reg = ctx.registry
    out = []
    if lm_eval:
        out += reg.add_lm_eval(ref, lm_eval)
    if metrics or not lm_eval:
        out += reg.add_eval(ref, list(metrics), dataset=dataset, split=split)
    if as_json:
        return print_json(out)
    for e in out:
        click.echo(f"{e.ref} {e.metric}={_value(e)}" + (f" ({e.dataset}/{e.split})" if e.dataset else ""))


def _value(e) -> str:
    """0.61 ± 0.01, as lm-eval shows it; with the direction for a lower-is-better metric."""
    return f"{e.value:g}" + ("" if e.stderr is None else f" ± {e.stderr:.2g}") + \
        (" (lower is better)" if e.higher_is_better is False else "")


@eval_.command("ls")
@click.argument("ref")
@json_option
@pass_ctx
def eval_ls(ctx, ref, as_json) -> None:
    """List the evaluation history of a version."""
    evs = ctx.registry.evals(ref)
    if as_json:
        return print_json(evs)
    table(["METRIC", "VALUE", "DATASET", "SPLIT", "SOURCE", "AT", "BY"],
          [(e.metric, _value(e), e.dataset, e.split, e.source, f"{e.created_at:%Y-%m-%d %H:%M}", e.created_by)
           for e in evs])


@click.command()
@click.option("--limit", type=int, default=50)
@click.option("--target", help="Only entries whose target starts with this.")
@json_option
@pass_ctx
def audit(ctx, limit, target, as_json) -> None:
    """Who did what, newest first."""
    rows = ctx.registry.audit(limit=limit, target=target)
    if as_json:
        return print_json(rows)
    table(["AT", "ACTOR", "ACTION", "TARGET"],
          [(f"{a.at:%Y-%m-%d %H:%M:%S}", a.actor, a.action, a.target) for a in rows])


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (base, push, ls, show, resolve, check, version, eval_, audit)
