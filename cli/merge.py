"""`adapter-registry merge`."""

from __future__ import annotations

import click

from registry.enums import Engine

from .common import human, json_option, pass_ctx, print_json, short


@click.command()
@click.argument("ref")
@click.option("--dtype", help="Output dtype: bf16, fp16 or fp32 (default: the base's).")
@click.option("--engine", type=click.Choice([e.value for e in Engine]), default="auto", show_default=True,
              help="streaming: shard by shard, bit-identical to peft; peft: merge_and_unload (reference).")
@click.option("--device", default=None,
              help="cpu, cuda, cuda:N or auto (default: cpu here; the worker's own device with --async).")
@click.option("--out", type=click.Path(file_okay=False), help="Also write the merged folder here (must not exist).")
@click.option("--max-shard-size", default="5GB", show_default=True)
@click.option("--validate", is_flag=True, help="Also compare logits with base + unmerged adapter (loads both).")
@click.option("--async", "run_async", is_flag=True, help="Enqueue a merge job for a worker instead.")
@json_option
@pass_ctx
def merge(ctx, ref, dtype, engine, device, out, max_shard_size, validate, run_async, as_json) -> None:
    """Merge an adapter version into its base model (cached per base, adapter, dtype and engine)."""
    reg = ctx.registry
    if run_async:
        job = reg.jobs.merge_async(ref, dtype=dtype, engine=engine, device=device, validate=validate)
        if as_json:
            return print_json(job)
        return click.echo(f"{'queued' if job.created else 'already queued'} job {job.id} ({job.kind}, {job.state})")
    from .common import progress_bar

    with progress_bar(f"merging {ref}", enabled=not as_json) as cb:
        art = reg.merge(ref, dtype=dtype, engine=engine, device=device or "cpu", validate=validate, out=out,
                        max_shard_size=max_shard_size,
                        progress=(lambda done, total, what: cb("tensors", done, total)) if cb else None)
    if as_json:
        return print_json(art)
    v = art.validation or {}
    click.echo(f"{'merged' if art.created else 'cached'} {art.ref} -> {art.path}")
    click.echo(f"  engine {art.engine} ({art.engine_version}), {art.dtype}, {human(art.size_bytes)}, "
               f"manifest {short(art.manifest_digest)}" + (f", {v['seconds']:.1f} s" if "seconds" in v else ""))
    if v.get("fallback_reason"):
        click.echo(f"  fell back to peft: {v['fallback_reason']}")


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (merge,)
