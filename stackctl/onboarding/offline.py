"""The offline example (examples/offline/config) as `init` writes it when it finds nothing
to serve: a stack of the local image set (`stackctl images build`) that runs without a GPU
or a registry. The package ships a copy (a test keeps it equal to the example), read with
importlib.resources so an installed wheel has it too."""

from __future__ import annotations

from importlib import resources

from stackctl.onboarding.stackfile import NO_MONITORING_FOLDERS, MonitoringDirs, monitoring_section
from stackctl.onboarding.yamltext import comment_before, dump, load_text
from stackctl.registry.load import FILES


def packaged() -> dict[str, str]:
    folder = resources.files("stackctl.onboarding") / "offline"
    return {name: (folder / name).read_text(encoding="utf-8") for name in FILES}


def offline_texts(monitoring: MonitoringDirs | None) -> dict[str, str]:
    """The example's files; stack.yaml's monitoring folders point where they are from the
    new config folder (the example's own paths are relative to examples/offline/config)."""
    texts = packaged()
    stack = load_text(texts["stack.yaml"])
    mon = stack["monitoring"]
    if monitoring is not None:
        mon["config_dir"] = monitoring.config_dir
        mon["dashboards_dir"] = monitoring.dashboards_dir
    else:
        del mon["config_dir"], mon["dashboards_dir"]
        for key, value in monitoring_section(None).items():
            mon[key] = value
        comment_before(mon, "prometheus", NO_MONITORING_FOLDERS, 2)
    texts["stack.yaml"] = dump(stack)
    return texts
