"""stackctl init: write a registry from what this machine has, or from an old one (--from)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from stackctl.cli.common import FAILED, OK, Failed, Folder, display, env_problems, exit_codes
from stackctl.errors import PlanError
from stackctl.onboarding.detect import Machine, detect
from stackctl.onboarding.files import existing, monitoring_dirs, write_registry
from stackctl.onboarding.fresh import gguf_folders, plan_fresh
from stackctl.onboarding.migrate import migrate
from stackctl.onboarding.offline import offline_texts
from stackctl.onboarding.stackfile import MonitoringDirs
from stackctl.onboarding.yamltext import dump
from stackctl.registry.checks import check
from stackctl.registry.load import MAPPINGS, PROVIDERS, STACK, load_registry
from stackctl.registry.problems import Problem, RegistryError
from stackctl.store.registry_files import take_backup


@click.command(epilog=exit_codes({
    OK: "the registry is written and validates with no errors",
    FAILED: "a registry is there (no --force), OLD cannot be read, or errors remain (listed)",
}))
@click.argument("directory", required=False, type=Folder())
@click.option("--from", "old", type=Folder(), metavar="OLD_CONFIG_DIR",
              help="Migrate the registry of the system stackctl replaces (its providers.yaml "
                   "and model-mappings.yaml): containers added, settings made arguments, "
                   "comments kept; prints what could not be carried over.")
@click.option("--models", "model_dirs", multiple=True, type=Folder(),
              help="Also look for GGUF files here (repeatable; DIR and ~/models always are).")
@click.option("--offline", is_flag=True,
              help="Detect nothing: write the offline example (the local image set, no GPU).")
@click.option("--force", is_flag=True,
              help="Replace an existing registry (backed up first to DIR/.backups/).")
@click.pass_context
def init(ctx: click.Context, directory: Path | None, old: Path | None,
         model_dirs: tuple[Path, ...], offline: bool, force: bool) -> None:
    """Write a registry (providers.yaml, model-mappings.yaml, stack.yaml) in DIR.

    Without --from it looks at this machine: NVIDIA GPUs (nvidia-smi), a running Ollama
    ($OLLAMA_HOST, else 127.0.0.1:11434) and its models, GGUF files (DIR, ~/models, --models)
    and the Hugging Face cache ($HF_HOME). With nothing found it writes the offline example.
    DIR defaults to -C before the command, else $STACKCTL_CONFIG_DIR, else ./config.
    """
    target = directory or _group_dir(ctx)
    if old is not None and offline:
        raise click.UsageError("--from and --offline exclude each other")
    if target.exists() and not target.is_dir():
        raise Failed(f"{target}: is a file, not a folder (DIR is where the registry goes)")
    present = existing(target)
    if present and not force:
        raise Failed(f"{display(target)} already holds a registry ("
                     + ", ".join(p.name for p in present) + "): pass --force to replace it "
                     "(it is backed up first)")
    monitoring = monitoring_dirs(target)
    notes: list[str] = []
    if old is not None:
        texts = _migrated(old, target, monitoring)
    else:
        machine = Machine() if offline else detect(
            gguf_folders(target, list(model_dirs), Path.home()))
        _say_found(machine)
        plan = plan_fresh(machine, monitoring)
        notes = plan.notes
        if not plan.providers["providers"]:  # e.g. a GPU but no model: nothing to route
            click.echo("nothing to serve found: writing the offline example "
                       "(run `stackctl images build` first: its images are built locally)")
            texts = offline_texts(monitoring)
        else:
            texts = {PROVIDERS: dump(plan.providers), MAPPINGS: dump(plan.mappings),
                     STACK: dump(plan.stack)}
    try:
        if present:
            saved = take_backup(target, [p.name for p in present], datetime.now(UTC))
            click.echo(f"backed up {', '.join(p.name for p in present)} to {display(saved)}")
        written = write_registry(target, texts)
    except PlanError as exc:
        # store/writer.py's messages are generate's: the command to rerun is this one
        raise Failed(str(exc).replace("`stackctl generate`", "`stackctl init`")) from None
    for name in texts:
        path = target.resolve() / name
        click.echo(f"{'wrote' if path in written else 'unchanged'} {display(path)}")
    for note in notes:
        click.echo(f"next: {note}")
    _validate(target)


def _group_dir(ctx: click.Context) -> Path:
    root = ctx.find_root()
    if root.params.get("config_dir") is not None:
        return Path(root.params["config_dir"])
    return Path("config")


def _migrated(old: Path, target: Path, monitoring: MonitoringDirs | None) -> dict[str, str]:
    if not old.is_dir():
        raise Failed(f"--from {old}: " + ("is a file, not a folder" if old.exists()
                                         else "no such folder"))
    if old.resolve() == target.resolve():
        raise Failed(f"--from {old} is DIR itself: write the new registry to another folder")
    try:
        result = migrate(old, monitoring)
    except RegistryError as exc:
        raise Failed(f"{display(old)} cannot be migrated (nothing was written):\n"
                     + "\n".join(_for_old(p).render() for p in exc.problems)) from None
    changed = [i for i in result.items if i.kind == "changed"]
    dropped = [i for i in result.items if i.kind == "dropped"]
    click.echo(f"migrated {display(old)} → {display(target)}: {len(changed)} change(s), "
               f"{len(dropped)} item(s) not carried over")
    for title, items in (("changed", changed), ("not carried over", dropped)):
        if items:
            click.echo(f"{title}:")
            for item in items:
                click.echo(f"  {item.render()}")
    click.echo("default profiles: " + (", ".join(result.default_profiles) or "none"))
    return result.texts


def _for_old(problem: Problem) -> Problem:
    """The loader's hints speak of -C; here the folder is --from's."""
    if problem.message == "file not found":
        return problem.model_copy(update={"hint": "--from names the folder holding the old "
                                          "providers.yaml and model-mappings.yaml"})
    if "'\\t'" in problem.message and not problem.hint:
        return problem.model_copy(update={"hint": "YAML is indented with spaces: replace the tab"})
    return problem


def _say_found(machine: Machine) -> None:
    found = [f"GPU {g.index}: {g.name}, {g.memory_gib:g} GiB" for g in machine.gpus]
    if machine.ollama:
        found.append(f"Ollama at {machine.ollama.url}: {len(machine.ollama.models)} model(s)")
    found += [f"GGUF file {f.path} ({f.size_gib:g} GiB)" for f in machine.ggufs]
    found += [f"Hugging Face model {m.repo_id}" for m in machine.hf_models]
    for line in found:
        click.echo(f"found {line}")
    for note in machine.notes:
        click.echo(f"note: {note}", err=True)


def _validate(target: Path) -> None:
    """What `stackctl validate` says of the result: the last word of every init."""
    try:
        reg = load_registry(target)
        problems = check(reg) + env_problems(reg)
    except RegistryError as exc:
        problems = exc.problems
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for p in errors:
        click.echo(p.render(), err=True)
    click.echo(f"{display(target)}: {'ok' if not errors else 'failed'}: {len(errors)} error(s), "
               f"{len(warnings)} warning(s)" + (" (`stackctl validate` lists them)" if warnings else ""))
    if errors:
        raise Failed(f"{len(errors)} error(s) left to fix by hand (listed above)")
    click.echo(f"next: stackctl generate -C {display(target)} && stackctl up -C {display(target)}")
