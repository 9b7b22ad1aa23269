"""stackctl add provider|model: edit the registry in place (comments kept), checked first."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

import click

from stackctl.cli.common import (
    FAILED,
    OK,
    Failed,
    check_config_dir,
    config_dir_option,
    display,
    exit_codes,
    sub_config_dir_option,
)
from stackctl.errors import PlanError
from stackctl.registry.additions import NewModel, add_model, add_provider
from stackctl.registry.editing import EditError
from stackctl.registry.models import ProviderType
from stackctl.registry.templates import NewProvider, model_file
from stackctl.store.registry_files import (
    Edit,
    EditRefused,
    EditResult,
    RegistryBroken,
    edit_registry,
)

TYPES = get_args(ProviderType)
# other spellings users type (the README's, Docker images', the old system's)
TYPE_ALIASES = {"llamacpp": "llama_cpp", "llama.cpp": "llama_cpp", "llama-cpp": "llama_cpp",
                "openai-compatible": "openai_compatible", "cloud": "openai_compatible"}

EPILOG = exit_codes({
    OK: "the registry was edited (or, --dry-run, the edit checked)",
    FAILED: "refused, nothing written: the edited registry would not validate (its\n"
            "       errors are listed), the name exists, or -C is no registry folder",
})

dry_run_option = click.option("--dry-run", is_flag=True,
                              help="Check the edit and print the diff; write nothing.")


@click.group(epilog=EPILOG)
@config_dir_option
def add(config_dir: Path) -> None:
    """Add a provider or a model to the registry, keeping its comments and layout.

    The edited files are checked as `stackctl validate` checks them before anything is
    written; an edit that would leave errors is refused with them (file:line of the edited
    text). The files as they were go to CONFIG_DIR/.backups/<UTC time>/ first, and the new
    ones replace them atomically.
    """


def _type(ctx: click.Context, param: click.Parameter, value: str) -> str:
    kind = TYPE_ALIASES.get(value.lower(), value.lower().replace("-", "_"))
    if kind not in TYPES:
        raise click.BadParameter(f"{value!r}: expected one of {', '.join(TYPES)}")
    return kind


@add.command("provider", epilog=EPILOG,
             short_help="A provider, with its type's container defaults.")
@click.argument("kind", metavar="TYPE", callback=_type)
@click.argument("name")
@sub_config_dir_option
@click.option("-m", "--model", "models", multiple=True, metavar="NAME",
              help="A model it serves (repeatable); each is routed under its own name "
                   "unless --no-route.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Host port (base_url's); default: the type's, else the next free one.")
@click.option("--image", default=None, help="Container image (pinned tag); default per type.")
@click.option("--gpus", type=click.IntRange(0, 64), default=1, show_default=True,
              help="GPUs its container reserves; 0: CPU only.")
@click.option("--group", default=None, metavar="GROUP",
              help="Exclusive GPU group (`stackctl switch` moves between its members).")
@click.option("--profile", default=None, help="Compose profile; default: NAME.")
@click.option("--hf-model", default=None, metavar="REPO/NAME",
              help="vllm: the Hugging Face model it loads (--model of vLLM).")
@click.option("--model-file", default=None, metavar="FILE.gguf",
              help="llama_cpp: the GGUF file in its volume; default: MODEL.gguf.")
@click.option("--base-url", default=None,
              help="A remote provider's URL (no container); required for openai_compatible.")
@click.option("--api-key-env", default=None, metavar="VAR",
              help="A remote provider's API key variable (its value goes in .env).")
@click.option("--no-route", is_flag=True, help="Do not add model-mappings.yaml entries.")
@dry_run_option
def provider(kind: str, name: str, config_dir: Path, models: tuple[str, ...],
             port: int | None, image: str | None, gpus: int, group: str | None,
             profile: str | None, hf_model: str | None, model_file: str | None,
             base_url: str | None, api_key_env: str | None, no_route: bool,
             dry_run: bool) -> None:
    """Add provider NAME of TYPE (ollama, llama_cpp, vllm, openai, anthropic,
    openai_compatible) with the container defaults of its type: image, port, volume,
    health probe and start period, as the shipped config/providers.yaml has them.

    \b
    stackctl add provider ollama ollama2 -m qwen3:0.6b --gpus 0
    stackctl add provider llama_cpp phi -m phi-4 --model-file phi-4-Q4_K_M.gguf
    stackctl add provider vllm vllm-qwen3 -m qwen3-8b --hf-model Qwen/Qwen3-8B-AWQ --group gpu0
    stackctl add provider openai_compatible groq -m llama-3.3-70b \\
        --base-url https://api.groq.com/openai/v1 --api-key-env GROQ_API_KEY
    """
    spec = NewProvider(type=kind, name=name, models=list(models), host_port=port, image=image,  # type: ignore[arg-type]
                       base_url=base_url, api_key_env=api_key_env, hf_model=hf_model,
                       model_file=model_file, gpus=gpus, group=group, profile=profile)
    result = _edit(config_dir, lambda texts, reg: add_provider(texts, reg, spec, not no_route),
                   dry_run)
    _report(result, f"provider {name!r}", dry_run)
    if result.written and spec.base_url is None and kind in ("ollama", "llama_cpp", "vllm"):
        click.echo("next: " + _next_step(spec))


@add.command("model", epilog=EPILOG, short_help="Route a model to a provider.")
@click.argument("name")
@sub_config_dir_option
@click.option("-p", "--provider", "provider_name", required=True, metavar="PROVIDER",
              help="The provider that serves it.")
@click.option("--backend", default=None, metavar="NAME",
              help="The provider's own name for it (default: NAME).")
@click.option("--alias", "aliases", multiple=True, help="Another name clients may use "
              "(repeatable).")
@click.option("--fallback", default=None, metavar="MODEL",
              help="A model that answers when this one fails.")
@dry_run_option
def model(name: str, config_dir: Path, provider_name: str, backend: str | None,
          aliases: tuple[str, ...], fallback: str | None, dry_run: bool) -> None:
    """Route model NAME to PROVIDER: an exact_matches entry in model-mappings.yaml (the
    file is created when missing), and the model in the provider's list in providers.yaml
    when it is not there yet.

    \b
    stackctl add model qwen3:0.6b --provider ollama
    stackctl add model coder --provider ollama --backend qwen2.5-coder:7b --alias code
    """
    spec = NewModel(name=name, provider=provider_name, backend=backend, aliases=list(aliases),
                    fallback=fallback)
    result = _edit(config_dir, lambda texts, reg: add_model(texts, reg, spec), dry_run)
    _report(result, f"model {name!r}", dry_run)


def _edit(config_dir: Path, edit: Edit, dry_run: bool) -> EditResult:
    check_config_dir(config_dir)
    try:
        return edit_registry(config_dir, edit, datetime.now(UTC), dry_run)
    except RegistryBroken as exc:
        raise Failed("the registry does not load; fix it first (nothing was written):\n"
                     + "\n".join(p.render() for p in exc.problems)) from None
    except EditError as exc:
        raise Failed(f"{exc}; nothing was written") from None
    except EditRefused as exc:
        raise Failed(f"the edited registry would have {len(exc.problems)} error(s) (lines of "
                     "the edited text); nothing was written:\n"
                     + "\n".join(p.render() for p in exc.problems)) from None
    except (PlanError, OSError, UnicodeDecodeError) as exc:
        raise Failed(str(exc)) from None


def _report(result: EditResult, what: str, dry_run: bool) -> None:
    if dry_run:
        click.echo(result.diff, nl=False)
    for p in result.warnings:
        click.echo(p.render(), err=True)
    files = ", ".join(result.changed)
    if dry_run:
        click.echo(f"{what}: the edit of {files} validates (--dry-run: nothing written)")
    else:
        click.echo(f"added {what} to {files}; the files as they were: "
                   f"{display(Path(result.backup or ''))}")


def _next_step(spec: NewProvider) -> str:
    profile = spec.profile or spec.name
    if spec.type == "ollama":
        pulls = "; ".join(f"`stackctl models pull {m} --provider {spec.name}`"
                          for m in spec.models or ["MODEL"])
        return f"`stackctl up -p {profile}`, then {pulls}"
    if spec.type == "llama_cpp":
        return (f"`stackctl models import FILE.gguf --provider {spec.name}` (it loads "
                f"/models/{model_file(spec)}), then `stackctl up -p {profile}`")
    return f"`stackctl up -p {profile}` (vLLM downloads {spec.hf_model} on its first start)"
