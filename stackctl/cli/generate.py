"""stackctl generate: registry → compose/compose.yaml, compose/litellm/config.yaml and the
monitoring configs (compose/prometheus/prometheus.yml, compose/alertmanager/alertmanager.yml)."""

from __future__ import annotations

from pathlib import Path

import click

from stackctl.cli.common import (
    FAILED,
    OK,
    Failed,
    config_dir_option,
    display,
    echo_json,
    exit_codes,
    fail_on,
    json_errors,
    load_or_fail,
    ops_errors,
)
from stackctl.registry.kubernetes_checks import check_kubernetes_names
from stackctl.registry.vocabulary import TARGETS
from stackctl.render.files import render_all
from stackctl.store.generated import write_all
from stackctl.store.writer import interrupted


@click.command(epilog=exit_codes({
    OK: "files written or unchanged; with --check: every file is current",
    FAILED: "registry errors; with --check: a generated file is stale",
}))
@config_dir_option
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 with a unified diff if a generated file is stale.")
@click.option("--target", "targets", multiple=True, type=click.Choice(TARGETS),
              help="Also render for this engine: swarm (swarm/stack.yaml for `docker stack "
                   "deploy`) or kubernetes (a kustomize folder, kubernetes/). Repeatable; "
                   "the compose set is always rendered.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {ok, check, files: [{path, status: written|unchanged|stale, diff}]}.")
@json_errors
def generate(config_dir: Path, check: bool, targets: tuple[str, ...], as_json: bool) -> None:
    """Render the compose file, the LiteLLM config and the Prometheus and Alertmanager configs
    from the registry (byte-stable)."""
    reg = load_or_fail(config_dir)
    if "kubernetes" in targets and reg.stack.deploy.target != "kubernetes":
        # names Compose takes but Kubernetes does not (validate checks them for that target)
        fail_on(check_kubernetes_names(reg), "with deploy.target: kubernetes, `stackctl "
                "validate` checks these names too")
    files = render_all(reg, ("compose", *targets))
    if check:
        if interrupted(reg.output_dir):  # the files may match; the set is still unfinished
            raise Failed(f"{display(reg.output_dir)} holds a set an interrupted `stackctl "
                         f"generate` did not finish: run `stackctl generate -C {config_dir}`",
                         doc={"ok": False, "check": True, "interrupted": True, "files": []})
        stale = [f for f in files if f.is_stale()]
        rows = [{"path": display(f.path), "status": "stale" if f in stale else "unchanged",
                 **({"diff": f.diff(display(f.path))} if f in stale else {})} for f in files]
        doc = {"ok": not stale, "check": True, "files": rows}
        if not as_json:
            for f in stale:
                click.echo(f.diff(display(f.path)), nl=False)
        if stale:
            raise Failed(f"{len(stale)} generated file(s) are stale: "
                         f"run `stackctl generate -C {config_dir}`", doc=doc)
        if as_json:
            echo_json(doc)
        else:
            click.echo("generated files are up to date")
        return
    with ops_errors():  # a file that cannot be written: a clear error, nothing changed
        written = write_all(files, reg.output_dir)
    rows = [{"path": display(f.path), "status": "written" if f.path in written else "unchanged"}
            for f in files]
    if as_json:
        echo_json({"ok": True, "check": False, "files": rows})
        return
    for row in rows:
        click.echo(f"{row['status'] if row['status'] == 'unchanged' else 'wrote'} {row['path']}")
