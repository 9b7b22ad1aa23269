"""Command-line entry point. Subcommands load lazily so `stackctl --help` stays fast."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import NoReturn

import click
from click.shell_completion import CompletionItem

# stackctl uses no pydantic plugins; looking for them reads the entry points of every
# installed distribution, ~20 ms of every command.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

COMMANDS = {
    "init": ("stackctl.cli.init", "init", "Write a registry from this machine, or migrate an old one."),
    "validate": ("stackctl.cli.validate", "validate", "Check the registry; file:line errors."),
    "generate": ("stackctl.cli.generate", "generate", "Write compose and LiteLLM files."),
    "up": ("stackctl.cli.up", "up", "Start profiles and wait until every service is healthy."),
    "down": ("stackctl.cli.down", "down", "Stop and remove the stack's containers."),
    "status": ("stackctl.cli.status", "status", "Health of every service, GPU group and the gateway."),
    "switch": ("stackctl.cli.switch", "switch", "Move an exclusive GPU group to another member."),
    "images": ("stackctl.cli.images", "images", "Build the local image set (no registry needed)."),
    # day two (listed once their module exists)
    "reload": ("stackctl.cli.reload", "reload", "Apply registry edits to the gateway; roll back on failure."),
    "backups": ("stackctl.cli.reload", "backups", "List the gateway config backups."),
    "ports": ("stackctl.cli.ports", "ports", "Every port the stack needs: free, ours or foreign."),
    "cache": ("stackctl.cli.cache", "cache", "The gateway's Redis cache: stats, keys, flush."),
    "logs": ("stackctl.cli.logs", "logs", "Service logs, or one line per request (--requests)."),
    "bench": ("stackctl.cli.bench", "bench", "Latency, tokens/s and throughput, gateway vs direct."),
    "doctor": ("stackctl.cli.doctor", "doctor", "Check the machine, the registry and the stack."),
    "add": ("stackctl.cli.add", "add", "Add a provider or a model to the registry (comments kept)."),
    "models": ("stackctl.cli.models", "models", "Model files: pull into Ollama, import a GGUF."),
    "urls": ("stackctl.cli.urls", "urls", "The gateway and monitoring UIs: URL and login variable."),
    "top": ("stackctl.cli.top", "top", "A live picture of the stack; --once --json for scripts."),
    "ps": ("stackctl.cli.ps", "ps", "GPU group members: state, memory, idle, last used, waiting."),
    "load": ("stackctl.cli.load", "load", "Load a GPU group member (beside others if they fit)."),
    "unload": ("stackctl.cli.unload", "unload", "Unload a GPU group member: sleep or stop it."),
    "pin": ("stackctl.cli.pin", "pin", "Pin a GPU group member: never evicted."),
    "unpin": ("stackctl.cli.pin", "unpin", "Remove a pin `stackctl pin` made."),
}


# -- exit codes: one scheme for every command (README "Exit codes"); 2 stays click's own ----
OK, FAILED, USAGE, GATEWAY_DOWN, NO_ENGINE, UNRESTORED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130

EXIT_CODES: dict[int, str] = {
    OK: "ok; status: the stack is healthy",
    FAILED: "failed (switch, reload: and rolled back); status: degraded",
    USAGE: "usage error: unknown command or option, bad value (click)",
    GATEWAY_DOWN: "status: the gateway does not answer",
    NO_ENGINE: "no Docker engine answers (the commands that need one)",
    UNRESTORED: "switch, load or reload failed and so did its rollback",
    INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_codes(specific: dict[int, str]) -> str:
    """The "Exit codes:" paragraph of a command's help (its epilog): `specific` in the
    command's words; 2 (usage) and 130 (Ctrl-C) read the same everywhere."""
    rows = {USAGE: "usage error (click)", INTERRUPTED: "interrupted (Ctrl-C)", **specific}
    # \b: click keeps these lines as they are instead of rewrapping them into one paragraph
    return "\b\nExit codes:\n" + "\n".join(f"  {c:<4} {text}" for c, text in sorted(rows.items()))


class Folder(click.Path):
    """-C's type: checked by the command (exit 1 with a hint), not by click (usage error 2);
    the shell completes folders."""

    def __init__(self) -> None:
        super().__init__(path_type=Path)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "DIR"

    def shell_complete(self, ctx, param, incomplete):  # type: ignore[no-untyped-def]
        return [CompletionItem(incomplete, type="dir")]


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
            # here: `--help` loads no stackctl module but this one (tests/unit/cli/
            # test_startup_imports.py); only a mistyped command needs the hint
            from stackctl.hints import did_you_mean

            hint = did_you_mean(name, self.list_commands(ctx))
            raise click.UsageError(f"no such command {name!r}" + (f"; {hint}" if hint else ""))
        return super().resolve_command(ctx, args)


def _exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=exit_codes(EXIT_CODES))
@click.option("-C", "--config-dir", type=Folder(), default=None, envvar="STACKCTL_CONFIG_DIR",
              show_envvar=True,
              help="Folder holding providers.yaml, model-mappings.yaml and stack.yaml, for the "
                   "command (like git -C); the command's own -C wins.  [default: config]")
@click.version_option(package_name="stackctl")
def cli(config_dir: Path | None) -> None:
    """Run a local LLM stack from one provider registry.

    The registry (providers.yaml, model-mappings.yaml, stack.yaml in -C/--config-dir, default
    ./config) becomes a Docker Compose stack: a LiteLLM gateway on 127.0.0.1:4000, a Redis
    response cache, the inference providers and, in the `monitoring` profile, Prometheus,
    Alertmanager, the Pushgateway, exporters, Grafana, Loki and Alloy. `stackctl COMMAND
    --help` shows a command's options and exit
    codes; the README shows how to turn on shell completion.
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
