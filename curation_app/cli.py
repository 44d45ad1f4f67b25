"""The `hitl` command: a group whose subcommands are imported only when one of them runs.

Importing every command's module (the web app, SQLAlchemy models, VW, SciPy) cost each `hitl`
run about 2.4 s before it did anything; `hitl replay` needs none of that. `hitl --help` still
lists every command with its short help (it imports them all to read it).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

# Command name -> (module, attribute) of the click command; every `hitl` command is here.
COMMANDS: Mapping[str, tuple[str, str]] = {
    "catalog": ("curation_app.cli_admin", "catalog"),
    "curator": ("curation_app.cli_admin", "curator"),
    "db": ("curation_app.cli_admin", "db"),
    "demo-data": ("curation_app.cli_admin", "demo_data"),
    "export": ("curation_app.cli_offline", "export_command"),
    "import": ("curation_app.cli_import", "import_command"),
    "learn": ("curation_app.cli_serve", "learn"),
    "model": ("curation_app.cli_models", "model"),
    "policy": ("curation_app.cli_admin", "policy"),
    "replay": ("curation_app.cli_replay", "replay_command"),
    "serve": ("curation_app.cli_serve", "serve"),
    "simulate": ("curation_app.cli_sim", "simulate_command"),
    "token": ("curation_app.cli_admin", "token"),
    "tune": ("curation_app.cli_offline", "tune_command"),
    "warm-up": ("curation_app.cli_admin", "warm_up"),
    "webhook": ("curation_app.cli_webhooks", "webhook"),
    "webhooks": ("curation_app.cli_webhooks", "webhooks_command"),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use (click's LazyGroup)."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, loaded or not, sorted."""
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The named command, importing its module when it is a lazy one."""
        if cmd_name not in self.lazy_commands:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = self.lazy_commands[cmd_name]
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}.{attribute} is not a click command")
        return command


@click.group(cls=LazyGroup, lazy_commands=COMMANDS)
def main() -> None:
    """Contextual-bandit recommendations with human curators in the loop."""
