"""Command-line entry point. Subcommands load lazily so `stackctl --help` stays fast."""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import click

# stackctl uses no pydantic plugins; looking for them reads the entry points of every
# installed distribution, ~20 ms of every command.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

COMMANDS = {
    "validate": ("stackctl.cli.validate", "validate", "Check the registry; file:line errors."),
    "generate": ("stackctl.cli.generate", "generate", "Write compose and LiteLLM files."),
    "up": ("stackctl.cli.up", "up", "Start profiles and wait until every service is healthy."),
    "down": ("stackctl.cli.down", "down", "Stop and remove the stack's containers."),
    "status": ("stackctl.cli.status", "status", "Health of every service, GPU group and the gateway."),
    "switch": ("stackctl.cli.switch", "switch", "Move an exclusive GPU group to another member."),
    "images": ("stackctl.cli.images", "images", "Build the local image set (no registry needed)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (mod, _, _) in COMMANDS.items() if _exists(mod)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _exists(COMMANDS[name][0]):
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            from ..hints import did_you_mean

            hint = did_you_mean(name, self.list_commands(ctx))
            raise click.UsageError(f"no such command {name!r}" + (f"; {hint}" if hint else ""))
        return super().resolve_command(ctx, args)


def _exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stackctl")
def cli() -> None:
    """Run a local LLM stack from one provider registry.

    The registry (providers.yaml, model-mappings.yaml, stack.yaml in -C/--config-dir, default
    ./config) becomes a Docker Compose stack: a LiteLLM gateway on 127.0.0.1:4000, a Redis
    response cache, the inference providers and, in the `monitoring` profile, Prometheus,
    Grafana, Loki and Alloy.
    """


def main() -> NoReturn:
    try:
        code = cli.main(prog_name="stackctl", standalone_mode=False)
        code = code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        code = 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    _exit(code)


def _exit(code: int) -> NoReturn:
    """Exit without tearing the interpreter down: the command has finished and joined its
    threads, and the teardown alone costs ~20 ms, which every `switch` would wait for."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to say
            pass
    os._exit(code)
