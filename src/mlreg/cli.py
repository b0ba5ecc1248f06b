"""The command line: a thin click layer. Each command parses, makes one library call, renders.

Commands live in ``mlreg.commands.*`` and are imported only when invoked, so ``mlreg --help``
stays fast. Errors are turned into one line and an exit code in one place, :func:`main`:
0 ok, 1 a check failed, 2 bad input, 3 a dependency unreachable (4: an internal error).
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from mlreg import __version__

# name -> (module, attribute, one-line help). Help text is here so --help imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("mlreg.commands.read", "init_cmd", "Create an empty registry in a git repository."),
    "validate": ("mlreg.commands.read", "validate_cmd",
                 "Check every file of a registry and the references between them."),
    "list": ("mlreg.commands.read", "list_cmd", "List models, or the versions of one model."),
    "show": ("mlreg.commands.read", "show_cmd",
             "Show one lineage record (MODEL@VERSION, MODEL@latest or a service)."),
    "deployed": ("mlreg.commands.read", "deployed_cmd",
                 "Show what serves each service: model, stable, canary and its share."),
    "schema": ("mlreg.commands.read", "schema_cmd", "Print a JSON Schema shipped with mlreg."),
    "migrate": ("mlreg.commands.read", "migrate_cmd",
                "Rewrite registry files to the current schema versions."),
    # lineage capture and the artifact store
    "capture": ("mlreg.commands.capture", "capture_cmd",
                "Run a training command and capture its lineage record."),
    "verify": ("mlreg.commands.capture", "verify_cmd",
               "Re-hash a version's artifacts and checkable data snapshots."),
    "reproduce": ("mlreg.commands.capture", "reproduce_cmd",
                  "Compare this environment with the one a version was trained in."),
    # metrics and gates
    "evaluate": ("mlreg.commands.gate", "evaluate_cmd",
                 "Compute slice metrics from a predictions file (no registry needed)."),
    "gate": ("mlreg.commands.gate", "gate_cmd",
             "Evaluate a promotion against its baseline under the registry's policies."),
    "history": ("mlreg.commands.history", "history_cmd",
                "The timeline of registrations, promotions and rollbacks; --at DATE."),
    "diff": ("mlreg.commands.history", "diff_cmd",
             "The lineage difference between two versions, grouped for root-cause analysis."),
    "lineage": ("mlreg.commands.history", "lineage_cmd",
                "Which versions used a data snapshot, feature, commit or package; who serves."),
    "online": ("mlreg.commands.history", "online_cmd",
               "Record an online (A/B or canary) result for a version."),
    "audit": ("mlreg.commands.history", "audit_cmd",
              "An audit report for a version: provenance, gate decision, approvals, events."),
    "dashboard": ("mlreg.commands.history", "dashboard_cmd",
                  "Generate the static dashboard site (no server, no network)."),
    # the pull-request flow
    "report": ("mlreg.commands.flow", "report_cmd",
               "Post a gate result as the one sticky comment on a pull request."),
    "promote": ("mlreg.commands.flow", "promote_cmd",
                "Open a promotion: a branch, one manifest commit, a push, a pull request."),
    "rollback": ("mlreg.commands.flow", "rollback_cmd",
                 "Open a rollback: revert the commit that put a service's version in place."),
    "codeowners": ("mlreg.commands.flow", "codeowners_cmd",
                   "Regenerate .github/CODEOWNERS from mlreg.yaml and the models' owners."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlreg")
@click.option("--traceback", is_flag=True, hidden=True, help="Show the Python traceback.")
@click.pass_context
def cli(ctx: click.Context, traceback: bool) -> None:
    """mlreg: a git-native model registry.

    Lineage records live in models/, production.yaml says what serves where, policies/ holds
    the promotion gates, and pull requests are the promotion workflow.
    """
    ctx.ensure_object(dict)
    ctx.obj["traceback"] = traceback


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, map errors to one line on stderr and an exit code."""
    from mlreg.errors import MlregError

    args = sys.argv[1:] if argv is None else argv
    show_tb = "--traceback" in args or os.environ.get("MLREG_TRACEBACK") == "1"
    try:
        rv = cli.main(args=args, prog_name="mlreg", standalone_mode=False)
    except MlregError as exc:
        if show_tb:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into a line
        if show_tb:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} "
                   "(please report it; rerun with --traceback for details)", err=True)
        sys.exit(4)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
