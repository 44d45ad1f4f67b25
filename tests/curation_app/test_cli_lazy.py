"""The lazy `hitl` group: every command listed and loadable, `hitl replay` kept light."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from curation_app.cli import COMMANDS, main


def test_every_lazy_entry_is_the_command_of_that_name() -> None:
    context = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert command is not None and command.name == name


def test_help_lists_every_command_with_its_short_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    context = click.Context(main)
    for name in COMMANDS:
        command = main.get_command(context, name)
        assert command is not None
        first_words = " ".join(command.get_short_help_str(limit=200).split()[:3])
        assert f"  {name} " in result.output and first_words in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_replay_imports_neither_the_web_app_nor_the_database_layer() -> None:
    # A fresh interpreter: this test process has imported everything already.
    script = (
        "import sys\n"
        "from curation_app.cli import main\n"
        "try:\n"
        "    main(['replay', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('flask', 'sqlalchemy', 'scipy.stats', 'matplotlib')"
        " if m in sys.modules]\n"
        "print('heavy:' + ','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "heavy:"
