"""Meta-tests of the command line contract: every command documented, errors mapped in one place."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click
import pytest

from mlreg.cli import COMMANDS, cli


def _importable(name: str) -> bool:
    try:
        importlib.import_module(COMMANDS[name][0])
        return True
    except ModuleNotFoundError:
        return False


def test_help_lists_every_command(run_cli) -> None:
    result = run_cli("--help")
    assert result.code == 0
    for name, (_, _, summary) in COMMANDS.items():
        assert name in result.out
        assert summary[:30] in result.out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_and_option_has_help(name: str) -> None:
    if not _importable(name):
        pytest.skip(f"{COMMANDS[name][0]} not built yet")
    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None, name
    assert cmd.help and len(cmd.help.strip()) > 20, name
    for param in cmd.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{name} {param.opts} has no help"


def test_errors_are_one_line_with_exit_codes(run_cli, tmp_path) -> None:
    result = run_cli("show", "fraud@1", "-C", str(tmp_path))
    assert result.code == 2
    assert result.err.startswith("error: ") and result.err.count("\n") == 1
    assert "not an mlreg registry" in result.err


def test_hidden_traceback_flag_reraises(tmp_path) -> None:
    from mlreg.cli import main
    from mlreg.errors import NotFound

    with pytest.raises(NotFound):
        main(["--traceback", "deployed", "-C", str(tmp_path)])


def test_usage_errors_exit_2(run_cli) -> None:
    assert run_cli("show").code == 2
    assert run_cli("no-such-command").code == 2


def test_import_mlreg_stays_light() -> None:
    code = ("import sys, mlreg, mlreg.cli; heavy = [m for m in ('numpy', 'pandas', 'pyarrow', "
            "'github', 'jsonschema', 'fsspec') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_schema_command_prints_valid_json_schemas(run_cli) -> None:
    for kind in ("record", "model", "deployments", "settings"):
        result = run_cli("schema", kind)
        assert result.code == 0
        schema = json.loads(result.out)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        from jsonschema.validators import Draft202012Validator

        Draft202012Validator.check_schema(schema)
