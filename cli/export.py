"""adapter-registry export REF --format gguf --out DIR [--merged] [--type f32|f16|bf16|q8_0].

Runs here, on the local catalog (the converter is llama.cpp's, in this machine's engines folder).
"""

from __future__ import annotations

import click

from .common import human, json_option, kv, pass_ctx, print_json, short
from .engines import engines_dir_option
from .server import _local


@click.command("export")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["gguf"]), default="gguf", show_default=True,
              help="What to convert to.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Folder to write the file into.")
@click.option("--merged", is_flag=True, help="The merged model as one GGUF, instead of a LoRA adapter GGUF.")
@click.option("--type", "outtype", type=click.Choice(["f32", "f16", "bf16", "q8_0"]), default="f32",
              show_default=True, help="The converter's --outtype.")
@engines_dir_option
@json_option
@pass_ctx
def export(ctx, ref, fmt, out, merged, outtype, engines_dir, as_json) -> None:
    """Convert NAME@REF with llama.cpp's own converter (pinned); refused when it cannot express the adapter."""
    from pathlib import Path

    from registry.workflows.export import export as run

    click.echo(f"converting {ref} with llama.cpp's converter ...", err=True)
    e = run(_local(ctx).core, ref, fmt=fmt, out=Path(out), merged=merged, outtype=outtype, engines_dir=engines_dir)
    if as_json:
        return print_json(e)
    kv([("ref", e.ref), ("file", e.path), ("digest", short(e.digest)), ("size", human(e.size_bytes)),
        ("type", e.type), ("merged", e.merged), ("converter", f"{e.converter} {e.converter_version}"),
        ("seconds", f"{e.seconds:.1f}")])


# The top-level commands of this module; cli/__init__.py's COMMANDS table names each one.
COMMANDS = (export,)
