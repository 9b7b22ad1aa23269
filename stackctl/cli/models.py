"""stackctl models pull|import: model files where the providers load them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    NO_ENGINE,
    OK,
    Failed,
    check_config_dir,
    config_dir_option,
    display,
    docker_for,
    exit_codes,
    fail_on,
    load_or_fail,
    ops_errors,
    prepare_files,
    sub_config_dir_option,
)
from stackctl.models.files import ImportRefused, plan_import
from stackctl.registry.catalog import declared_models, profile_of
from stackctl.registry.checks import check
from stackctl.registry.load import Registry, load_registry
from stackctl.registry.model_checks import MISSING_FILE
from stackctl.registry.problems import RegistryError

EPILOG = {
    "pull": exit_codes({OK: "the model was pulled",
                        FAILED: "Ollama refused or does not answer, no such Ollama "
                                "provider,\n       registry errors"}),
    "import": exit_codes({OK: "the file was copied",
                          FAILED: "not a llama_cpp provider, no such file, Docker "
                                  "refused,\n       registry errors",
                          NO_ENGINE: "the file goes into a volume and no Docker engine "
                                     "answers"}),
}


@click.group(epilog=exit_codes({OK: "done", FAILED: "failed (see each command)",
                                 NO_ENGINE: "import: no Docker engine answers"}))
@config_dir_option
def models(config_dir: Path) -> None:
    """Put model files where the providers load them: pull into Ollama, import a GGUF."""


@models.command("pull", epilog=EPILOG["pull"],
                short_help="Pull a model into an Ollama provider, with progress.")
@click.argument("model")
@sub_config_dir_option
@click.option("-p", "--provider", default=None, metavar="PROVIDER",
              help="The Ollama provider; default: the only enabled one.")
def pull(model: str, config_dir: Path, provider: str | None) -> None:
    """Pull MODEL (e.g. qwen3:0.6b) into an Ollama provider through its API, with a live
    progress line. The provider must be running: `stackctl up -p PROFILE`."""
    from stackctl.models.ollama import PullError  # requests: ~60 ms
    from stackctl.models.ollama import pull as ollama_pull

    reg = load_or_fail(config_dir)
    name = _ollama(reg, provider)
    url = reg.providers.providers[name].base_url
    live = _terminal()
    shown: dict[str, object] = {"status": "", "tenth": -1}

    def show(progress) -> None:  # type: ignore[no-untyped-def]
        line = progress.line()
        if live:  # one line rewritten in place; \x1b[K clears what a longer one left
            click.echo(f"\r{line}\x1b[K", nl=False, color=True)  # keep the \x1b
            return
        # a log or a pipe: each status once, the download every 10 %, not every byte count
        if progress.downloading:
            if progress.percent // 10 != shown["tenth"]:
                shown["tenth"] = progress.percent // 10
                click.echo(line)
        elif line != shown["status"]:
            click.echo(line)
        shown["status"] = "" if progress.downloading else line

    click.echo(f"pulling {model} into {name} ({url})")
    try:
        ollama_pull(url, model, show)
    except PullError as exc:
        if live:
            click.echo()
        profile = profile_of(name, reg.providers.providers[name])
        hint = (f" (is it running? `stackctl up -p {profile}`; `stackctl status` says)"
                if "nothing answers" in str(exc) else "")
        raise Failed(f"{exc}{hint}") from None
    if live:
        click.echo()
    click.echo(f"pulled {model} into {name}")
    if model not in declared_models(reg):
        click.echo(f"next: `stackctl add model {model} --provider {name}` routes it through "
                   "the gateway")


def _load_for_import(config_dir: Path, provider: str) -> Registry:
    """The registry, checked; the one error tolerated is the file this import brings."""
    check_config_dir(config_dir)
    try:
        reg = load_registry(config_dir)
    except RegistryError as exc:
        fail_on(exc.problems)
        raise  # pragma: no cover - fail_on raised: a RegistryError carries errors
    fail_on([p for p in check(reg) if not (p.message.startswith(MISSING_FILE)
                                          and p.path.startswith(f"providers.{provider}."))])
    return reg


def _terminal() -> bool:
    return sys.stdout.isatty()


def _ollama(reg: Registry, provider: str | None) -> str:
    providers = reg.providers.providers
    ollamas = [n for n, p in providers.items() if p.type == "ollama" and p.enabled]
    if provider is None:
        if len(ollamas) == 1:
            return ollamas[0]
        raise Failed("name the Ollama provider with --provider: "
                     + (f"the registry has {', '.join(ollamas)}" if ollamas
                        else "the registry has no enabled one (`stackctl add provider "
                             "ollama NAME`)"))
    prov = providers.get(provider)
    if prov is None or prov.type != "ollama":
        what = "no provider" if prov is None else f"a {prov.type} provider, not Ollama:"
        raise Failed(f"--provider {provider}: {what} (Ollama providers: "
                     f"{', '.join(ollamas) or 'none'})")
    if not prov.enabled:
        raise Failed(f"--provider {provider} is {prov.status}: set status: active first")
    return provider


@models.command("import", epilog=EPILOG["import"],
                short_help="Copy a GGUF file where a llama.cpp provider loads it.")
@click.argument("file", type=click.Path(path_type=Path))
@sub_config_dir_option
@click.option("-p", "--provider", required=True, metavar="PROVIDER",
              help="The llama_cpp provider whose volume takes the file.")
@click.option("--name", default=None, metavar="FILE.gguf",
              help="Its name there; default: the file its --model loads.")
def import_(file: Path, config_dir: Path, provider: str, name: str | None) -> None:
    """Copy the local GGUF FILE where llama_cpp PROVIDER loads its model: into its named
    volume (through its container, created and not started when it has none) or its host
    folder. By default the file takes the name the provider's --model loads."""
    if not file.is_file():
        raise Failed(f"{file}: " + ("is a folder, not a GGUF file" if file.is_dir()
                                    else "no such file"))
    with file.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise Failed(f"{file}: not a GGUF file (it does not start with 'GGUF'); "
                         "llama.cpp loads GGUF models (convert others with its "
                         "convert_hf_to_gguf.py)")
    reg = _load_for_import(config_dir, provider)
    try:
        plan = plan_import(reg, provider, file.resolve(), name)
    except ImportRefused as exc:
        raise Failed(str(exc)) from None
    size = file.stat().st_size / 2**30
    if plan.host_path is not None:
        from stackctl.models.importing import copy_to_host

        try:
            dest = copy_to_host(plan)
        except OSError as exc:
            raise Failed(f"cannot copy {file} to {plan.host_path}: "
                         f"{exc.strerror or exc}") from None
        click.echo(f"copied {file} ({size:.2f} GiB) to {display(dest)} ({plan.inside} in "
                   f"{provider})")
    else:
        from stackctl.models.importing import copy_to_volume

        prepare_files(reg, lambda line: None)  # the compose file names the volume
        click.echo(f"copying {file} ({size:.2f} GiB) into volume {plan.volume} as "
                   f"{plan.inside} …")
        with ops_errors():
            copy_to_volume(docker_for(reg), plan)
        click.echo(f"copied {file} into {provider}'s volume {plan.volume} as {plan.inside}")
    if plan.note:
        click.echo(f"note: {plan.note}")
    click.echo(f"next: `stackctl up -p {plan.profile}`")
