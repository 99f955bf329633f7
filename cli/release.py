"""Release commands: alias, deprecate, undeprecate, delete, impact, bulk, serving-profile, gc, events, webhook."""

from __future__ import annotations

import json

import click

from .common import human, json_option, kv, pass_ctx, print_json, short, table


def _rel(ctx):
    """Release management of the Registry (or of the HTTP Client with --remote)."""
    return ctx.registry.release


def _at(t) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}" if t else ""


def _gates(policy) -> None:
    for g in policy.gates if policy else ():
        click.echo(f"  {'pass' if g.passed else 'FAIL'}  {g.detail}")


# -- alias ---------------------------------------------------------------------------------------
@click.group()
def alias() -> None:
    """Aliases (production, staging, ...): move, remove, history, protect with promotion gates."""


@alias.command("set")
@click.argument("name")
@click.argument("alias_", metavar="ALIAS")
@click.argument("version")
@click.option("--reason", help="Why (kept in the history).")
@click.option("--force", is_flag=True, help="Override a protected alias's policy (admin; recorded).")
@json_option
@pass_ctx
def alias_set(ctx, name, alias_, version, reason, force, as_json) -> None:
    """Point NAME@ALIAS at VERSION (a number, another alias, or latest)."""
    ch = _rel(ctx).set_alias(name, alias_, version, reason=reason, force=force)
    if as_json:
        return print_json(ch)
    if not ch.changed:
        click.echo(f"{name}@{alias_} already points to {ch.to_version}")
    else:
        click.echo(f"{name}@{alias_}: {ch.from_version or '-'} -> {ch.to_version}"
                   + (" (policy OVERRIDDEN)" if ch.overridden else ""))
    _gates(ch.policy)


@alias.command("rm")
@click.argument("name")
@click.argument("alias_", metavar="ALIAS")
@click.option("--reason")
@click.option("--force", is_flag=True, help="Remove a protected alias (admin; recorded).")
@json_option
@pass_ctx
def alias_rm(ctx, name, alias_, reason, force, as_json) -> None:
    """Remove NAME@ALIAS."""
    ch = _rel(ctx).remove_alias(name, alias_, reason=reason, force=force)
    print_json(ch) if as_json else click.echo(f"removed {name}@{alias_} (was {ch.from_version})")


@alias.command("history")
@click.argument("name")
@click.argument("alias_", metavar="[ALIAS]", required=False)
@click.option("--limit", type=int, help="Only the newest N moves.")
@json_option
@pass_ctx
def alias_history(ctx, name, alias_, limit, as_json) -> None:
    """Every move of NAME's aliases: from, to, who, when, why."""
    rows = _rel(ctx).alias_history(name, alias_, limit=limit)
    if as_json:
        return print_json(rows)
    table(["AT", "ALIAS", "FROM", "TO", "BY", "REASON", "OVERRIDDEN"],
          [(_at(m.at), m.alias, m.from_version, "(removed)" if m.to_version is None else m.to_version, m.actor,
            m.reason, "; ".join(m.violations) if m.overridden else "") for m in rows])


@alias.command("ls")
@click.argument("name", required=False)
@json_option
@pass_ctx
def alias_ls(ctx, name, as_json) -> None:
    """Aliases of NAME (or of every adapter), with protection and current gate results."""
    rows = _rel(ctx).aliases(name)
    if as_json:
        return print_json(rows)

    def status(a):
        if not a.protected:
            return ""
        cur = a.policy.current
        return "protected" + ("" if cur is None else (", gates pass" if cur.allowed else
                                                      ", FAILS: " + "; ".join(cur.violations)))

    table(["ADAPTER", "ALIAS", "VERSION", "UPDATED", "BY", "POLICY"],
          [(a.name, a.alias, a.version, _at(a.updated_at), a.updated_by, status(a)) for a in rows])


VERIFIED_ON = ("peft", "vllm", "llama.cpp")  # registry.workflows.verify.ENGINES, without importing it


@alias.command("protect")
@click.argument("name")
@click.argument("alias_", metavar="ALIAS")
@click.option("--require-verified", "verified_on", multiple=True, is_flag=False, flag_value="peft",
              metavar="[ENGINE]", help="Require a passed verification against the base: in peft (no value), or "
                                       "on a serving engine (vllm, llama.cpp: `verify --engine`). Repeatable.")
@click.option("--require-metric", "metrics", multiple=True, help="e.g. 'mmlu>=0.62' (repeatable).")
@json_option
@pass_ctx
def alias_protect(ctx, name, alias_, verified_on, metrics, as_json) -> None:
    """Protect NAME@ALIAS: moves must pass these gates (replaces an earlier policy)."""
    bad = [e for e in verified_on if e not in VERIFIED_ON]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not one of {', '.join(VERIFIED_ON)}", param_hint="--require-verified")
    p = _rel(ctx).protect_alias(name, alias_, require_verified="peft" in verified_on, require_metrics=list(metrics),
                                require_verified_engines=[e for e in verified_on if e != "peft"])
    if as_json:
        return print_json(p)
    gates = ((["verified against its base"] if p.require_verified else [])
             + [f"verified on {e}" for e in p.require_verified_engines] + list(p.require_metrics))
    click.echo(f"protected {name}@{alias_}: requires {', '.join(gates) or 'nothing but not deprecated'}")
    if p.current is not None:
        click.echo(f"current version {p.current.ref}: {'passes' if p.current.allowed else 'does NOT pass'}")
        _gates(p.current)


@alias.command("unprotect")
@click.argument("name")
@click.argument("alias_", metavar="ALIAS")
@pass_ctx
def alias_unprotect(ctx, name, alias_) -> None:
    """Drop the policy of NAME@ALIAS (admin)."""
    done = _rel(ctx).unprotect_alias(name, alias_)
    click.echo(f"{name}@{alias_} " + ("is no longer protected" if done else "was not protected"))


@alias.command("check")
@click.argument("name")
@click.argument("alias_", metavar="ALIAS")
@click.argument("version")
@json_option
@pass_ctx
def alias_check(ctx, name, alias_, version, as_json) -> None:
    """Evaluate moving NAME@ALIAS to VERSION without moving it (exit 4 when it would be refused)."""
    r = _rel(ctx).check_promotion(name, alias_, version)
    if as_json:
        print_json(r)
    else:
        click.echo(f"{r.ref} -> {name}@{alias_}: " + ("allowed" if r.allowed else "REFUSED"))
        _gates(r)
    if not r.allowed:
        from registry.errors import PolicyViolation

        # An error rather than click's Exit: cli.main only turns our errors into exit codes.
        raise PolicyViolation(f"{r.ref} would be refused for {name}@{alias_}: " + "; ".join(r.violations),
                              violations=list(r.violations))


# -- deprecation, deletion, impact ------------------------------------------------------------------
@click.command()
@click.argument("ref")
@click.option("--successor", help="NAME@VERSION to use instead.")
@click.option("--reason")
@json_option
@pass_ctx
def deprecate(ctx, ref, successor, reason, as_json) -> None:
    """Deprecate a version: hidden from search, resolve warns."""
    v = _rel(ctx).deprecate(ref, successor=successor, reason=reason)
    if as_json:
        return print_json(v)
    click.echo(f"deprecated {v.ref}" + (f", successor {v.successor}" if v.successor else ""))


@click.command()
@click.argument("ref")
@json_option
@pass_ctx
def undeprecate(ctx, ref, as_json) -> None:
    """Undo a deprecation."""
    v = _rel(ctx).undeprecate(ref)
    print_json(v) if as_json else click.echo(f"{v.ref} is no longer deprecated")


@click.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Also delete merged artifacts and publications of it from the catalog.")
@json_option
@pass_ctx
def delete(ctx, ref, force, as_json) -> None:
    """Delete a version from the catalog (refused while it holds a protected alias); gc frees its blobs."""
    r = _rel(ctx).delete_version(ref, force=force)
    if as_json:
        return print_json(r)
    click.echo(f"deleted {r.ref}" + (f"; removed aliases {', '.join(r.aliases_removed)}" if r.aliases_removed else "")
               + (f"; {r.merged_removed} merged, {r.publications_removed} publications" if r.forced else ""))


@click.command()
@click.argument("base")
@click.option("--reverify", is_flag=True, help="Enqueue a verify job against the new revision for each.")
@click.option("--deprecated", "include_deprecated", is_flag=True, help="Include deprecated versions.")
@json_option
@pass_ctx
def impact(ctx, base, reverify, include_deprecated, as_json) -> None:
    """What BASE's newest revision (or NAME@REV) leaves unverified: versions, aliases, merged artifacts."""
    rep = _rel(ctx).impact(base, enqueue=reverify, include_deprecated=include_deprecated)
    if as_json:
        return print_json(rep)
    click.echo(f"base {rep.base.name}@{rep.base.revision or short(rep.base.fingerprint)}; earlier: "
               + (", ".join(b.revision or short(b.fingerprint) for b in rep.previous) or "none"))
    table(["VERSION", "REGISTERED ON", "VERIFIED AGAINST", "ALIASES", "WHY"],
          [(v.ref, f"{v.base.name}@{v.base.revision or short(v.base.fingerprint)}" if v.base else "-",
            ", ".join(v.verified_against), ", ".join(v.aliases), v.reason) for v in rep.versions])
    for m in rep.merged:
        click.echo(f"  merged #{m.id} {m.ref} {m.dtype} on {m.base.revision or short(m.base.fingerprint)}")
    if rep.jobs:
        click.echo(f"enqueued {len(rep.jobs)} verify job(s): {', '.join(map(str, rep.jobs))}")


# -- bulk ------------------------------------------------------------------------------------------
def _query_options(f):
    opts = [
        click.option("--base", "base_", help="Base model NAME (all revisions) or NAME@REV."),
        click.option("--name", help="Exact adapter name, or a namespace prefix ending in '/'."),
        click.option("--tag", "tags", multiple=True, help="Match KEY=VALUE (repeatable)."),
        click.option("--metric", "metrics", multiple=True, help="Match e.g. 'acc>=0.6' (repeatable)."),
        click.option("--min-rank", type=int), click.option("--max-rank", type=int),
        click.option("--peft-type"), click.option("--target-module", "target_modules", multiple=True),
        click.option("--deprecated", "include_deprecated", is_flag=True, help="Include deprecated versions."),
        click.option("--dry-run", is_flag=True, help="Show what would change; change nothing."),
        json_option,
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _query(kw) -> dict:
    q = {"base": kw.pop("base_"), "name": kw.pop("name"), "tags": list(kw.pop("tags")),
         "metrics": list(kw.pop("metrics")), "min_rank": kw.pop("min_rank"), "max_rank": kw.pop("max_rank"),
         "peft_type": kw.pop("peft_type"), "target_modules": list(kw.pop("target_modules")),
         "include_deprecated": kw.pop("include_deprecated")}
    return {k: v for k, v in q.items() if v not in (None, [], False)}


def _bulk_out(res, as_json) -> None:
    if as_json:
        return print_json({**res.to_dict(), "changed": res.changed})
    table(["VERSION", "ACTION", "DETAIL"], [(i.ref, i.action, i.detail) for i in res.items])
    click.echo(f"{res.operation}: {res.matched} matched, {res.changed} changed"
               + (" (dry run: nothing was changed)" if res.dry_run else ""))


@click.group()
def bulk() -> None:
    """Operations on every version a query matches, all or nothing in one transaction."""


@bulk.command("tag")
@_query_options
@click.option("--set", "set_", multiple=True, help="KEY=VALUE to set (repeatable).")
@click.option("--unset", multiple=True, help="KEY to remove (repeatable).")
@pass_ctx
def bulk_tag(ctx, set_, unset, dry_run, as_json, **kw) -> None:
    """Set or remove tags on every matching version."""
    _bulk_out(_rel(ctx).bulk_tag(_query(kw), tags=list(set_), remove=list(unset), dry_run=dry_run), as_json)


@bulk.command("deprecate")
@_query_options
@click.option("--reason")
@pass_ctx
def bulk_deprecate(ctx, reason, dry_run, as_json, **kw) -> None:
    """Deprecate every matching version."""
    _bulk_out(_rel(ctx).bulk_deprecate(_query(kw), reason=reason, dry_run=dry_run), as_json)


@bulk.command("reverify")
@_query_options
@click.option("--against", help="Verify against this base (default: each version's own).")
@pass_ctx
def bulk_reverify(ctx, against, dry_run, as_json, **kw) -> None:
    """Enqueue a verify job for every matching version."""
    _bulk_out(_rel(ctx).bulk_reverify(_query(kw), base=against, dry_run=dry_run), as_json)


@bulk.command("promote")
@_query_options
@click.option("--alias", "alias_", default="production", show_default=True)
@click.option("--select", "select_", type=click.Choice(["latest-verified", "latest"]), default="latest-verified",
              show_default=True, help="Which matching version of each adapter gets the alias.")
@click.option("--reason")
@click.option("--force", is_flag=True, help="Override protected aliases' policies (admin; recorded).")
@pass_ctx
def bulk_promote(ctx, alias_, select_, reason, force, dry_run, as_json, **kw) -> None:
    """Move ALIAS of every matching adapter to its latest (verified) matching version."""
    _bulk_out(_rel(ctx).bulk_promote(_query(kw), alias=alias_, select=select_, reason=reason, force=force,
                                     dry_run=dry_run), as_json)


# -- serving, gc -------------------------------------------------------------------------------------
@click.command("serving-profile")
@click.option("--base", "base_", required=True, help="Base model NAME (newest revision) or NAME@REV.")
@click.option("--alias", "alias_", default="production", show_default=True)
@click.option("--max-loras", type=int, help="Default: the number of adapters served.")
@json_option
@pass_ctx
def serving_profile(ctx, base_, alias_, max_loras, as_json) -> None:
    """Flags for `vllm serve` to serve every adapter of BASE that has ALIAS, together."""
    p = _rel(ctx).serving_profile(base_, alias=alias_, max_loras=max_loras)
    for w in p.warnings:
        click.echo(f"warning: {w}", err=True)
    if as_json:
        return print_json(p)
    kv([("base", p.base_path), ("adapters", [a.ref for a in p.adapters]), ("max rank", p.max_lora_rank),
        ("target modules", p.target_modules), ("adapter dtypes", p.adapter_dtypes)])
    click.echo(p.command)


@click.command()
@click.option("--dry-run", is_flag=True, help="Report what would be deleted.")
@click.option("--grace", "grace", type=float, default=3600.0, show_default=True,
              help="Seconds an unreferenced blob must be known before it is deleted.")
@json_option
@pass_ctx
def gc(ctx, dry_run, grace, as_json) -> None:
    """Delete blobs no version, merged artifact, publication or stored base references."""
    rep = _rel(ctx).gc(dry_run=dry_run, grace_seconds=grace)
    if as_json:
        return print_json(rep)
    verb = "would delete" if rep.dry_run else "deleted"
    click.echo(f"{verb} {len(rep.deleted)} blob(s), {human(rep.bytes_freed)} freed; {rep.scanned} scanned, "
               f"{rep.referenced} referenced, {rep.kept_young} unreferenced but younger than the grace period")
    for d in rep.missing:
        click.echo(f"warning: referenced blob {d} is missing from the store", err=True)


# -- events, webhooks ----------------------------------------------------------------------------------
@click.command()
@click.option("--after", "after_id", type=int, default=0, help="Only events after this id.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--kind", "kinds", multiple=True, help="Kind, or a family ending in '.' like 'alias.' (repeatable).")
@click.option("--follow", is_flag=True, help="Keep printing new events (Ctrl-C to stop).")
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between polls with --follow.")
@json_option
@pass_ctx
def events(ctx, after_id, limit, kinds, follow, poll, as_json) -> None:
    """The catalog's change events, oldest first (JSON lines with --follow --json)."""
    rel = _rel(ctx)

    def line(e) -> str:
        if as_json:
            return json.dumps(e.to_dict(), sort_keys=True)
        return f"{e.id:>6} {_at(e.at)} {e.kind:<20} {e.subject}"

    if follow:
        for e in rel.follow_events(after_id, kinds=kinds, poll_s=poll):
            click.echo(line(e))
        return
    rows = rel.events(after_id, limit, kinds=kinds)
    if as_json:
        return print_json(rows)
    for e in rows:
        click.echo(line(e))


@click.group()
def webhook() -> None:
    """Webhooks: POST each event, signed with HMAC-SHA256 (X-Registry-Signature), retried."""


@webhook.command("add")
@click.argument("url")
@click.option("--secret", help="Shared secret (default: generated, printed once).")
@click.option("--kind", "kinds", multiple=True, help="Only these kinds or families ('alias.').")
@click.option("--all-history", is_flag=True, help="Also deliver events from before now.")
@json_option
@pass_ctx
def webhook_add(ctx, url, secret, kinds, all_history, as_json) -> None:
    w = _rel(ctx).add_webhook(url, secret=secret, kinds=kinds, from_now=not all_history)
    if as_json:
        return print_json(w)
    click.echo(f"webhook {w.id} -> {w.url}\nsecret: {w.secret}")


@webhook.command("ls")
@json_option
@pass_ctx
def webhook_ls(ctx, as_json) -> None:
    rows = _rel(ctx).webhooks()
    if as_json:
        return print_json(rows)
    table(["ID", "URL", "KINDS", "DELIVERED UP TO", "FAILURES", "LAST ERROR"],
          [(w.id, w.url, ",".join(w.kinds), w.last_event_id, w.failures, w.last_error) for w in rows])


@webhook.command("rm")
@click.argument("webhook_id", type=int)
@pass_ctx
def webhook_rm(ctx, webhook_id) -> None:
    _rel(ctx).remove_webhook(webhook_id)
    click.echo(f"removed webhook {webhook_id}")


@webhook.command("deliver")
@click.option("--max-attempts", type=int, default=3, show_default=True)
@click.option("--timeout", type=float, default=5.0, show_default=True)
@json_option
@pass_ctx
def webhook_deliver(ctx, max_attempts, timeout, as_json) -> None:
    """Send pending events to every active webhook (exit 1 when one failed)."""
    res = _rel(ctx).deliver_webhooks(max_attempts=max_attempts, timeout=timeout)
    if as_json:
        print_json(res)
    else:
        for d in res:
            click.echo(f"webhook {d.webhook_id}: {d.delivered} delivered, up to event {d.last_event_id}"
                       + (f"; error: {d.error}" if d.error else ""))
    failed = [d for d in res if d.error]
    if failed:
        from registry.errors import RegistryError

        raise RegistryError(f"delivery to {len(failed)} webhook(s) failed: {failed[0].error}",
                            hint="it resumes from the failed event on the next run")


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (alias, deprecate, undeprecate, delete, impact, bulk, serving_profile, gc, events, webhook)
