"""`hitl import --format dsjson FILE --out LOG.parquet`: replay logs a team already has."""

from __future__ import annotations

from pathlib import Path

import click

from bandit.ope.dsjson_import import import_dsjson
from bandit.ope.log_format import LogFormatError, build_log, write_log


@click.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dsjson"]),
    default="dsjson",
    show_default=True,
    help="dsjson: Vowpal Wabbit / Azure Personalizer decision logs (CB and CCB lines).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The replay log to write (.parquet or .csv), with its .candidates and .items tables.",
)
def import_command(source: Path, fmt: str, out: Path) -> None:
    """Convert a DSJSON log into the replay log format (docs/log-format.md)."""
    if out.suffix not in (".parquet", ".csv"):
        raise click.UsageError("--out must end in .parquet or .csv")
    if not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise click.ClickException(f"--out: folder {out.parent} does not exist")
    try:
        imported = import_dsjson(source)  # its refusals name the file and line
    except LogFormatError as error:
        raise click.ClickException(str(error)) from error
    try:
        # Validate exactly as replay will read it, before writing anything.
        build_log(imported.rounds, imported.candidates, imported.items)
        paths = write_log(imported.rounds, imported.candidates, imported.items, out)
    except LogFormatError as error:
        raise click.ClickException(f"{source}: {error}") from error
    except OSError as error:
        raise click.ClickException(f"--out: cannot write {out}: {error}") from error
    click.echo(
        f"imported {imported.rounds.num_rows} rounds from {source} ({fmt}) to {paths.rounds} "
        f"(+ {paths.candidates.name}, {paths.items.name}); {imported.skipped} unlabelled "
        "lines skipped"
    )
