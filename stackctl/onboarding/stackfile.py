"""stack.yaml as `init` writes it: project, default profiles, GPU groups, and where the
monitoring profile finds its configuration (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ruamel.yaml.comments import CommentedMap

from stackctl.onboarding.yamltext import comment_after, comment_before, flow, mapping
from stackctl.registry.checks import MONITORING_FILES

NO_MONITORING_FOLDERS = ("stackctl's monitoring/ and grafana-dashboards/ folders were not "
                         "found: Prometheus, Grafana,\nLoki and Alloy need them. Point "
                         "config_dir and dashboards_dir at them, then enable these.")


@dataclass(frozen=True)
class MonitoringDirs:
    """monitoring.config_dir and dashboards_dir as written (relative to the config folder)."""

    config_dir: str
    dashboards_dir: str


@dataclass(frozen=True)
class GroupPlan:
    memory_gib: float | None = None
    why: str = ""  # the comment above the entry
    members: list[str] = field(default_factory=list)


def monitoring_section(dirs: MonitoringDirs | None) -> CommentedMap:
    """Pointing at stackctl's monitoring folders when they are found; without them (an
    installed wheel ships none) the services that mount them are off, not half-configured."""
    if dirs is not None:
        return mapping({"config_dir": dirs.config_dir, "dashboards_dir": dirs.dashboards_dir})
    mon = mapping({key: mapping({"enabled": False}, flow_style=True) for key in MONITORING_FILES})
    comment_before(mon, next(iter(MONITORING_FILES)), NO_MONITORING_FOLDERS, 2)
    return mon


def stack_tree(project: str, default_profiles: list[str], groups: dict[str, GroupPlan],
               monitoring: MonitoringDirs | None, header: str) -> CommentedMap:
    doc = mapping({"project": project, "bind_address": "127.0.0.1",
                   "default_profiles": flow(default_profiles)})
    doc.yaml_set_start_comment(header)
    comment_after(doc, "default_profiles", "what `stackctl up` starts; `stackctl switch` "
                  "moves a GPU group")
    doc["monitoring"] = monitoring_section(monitoring)
    if groups:
        doc["gpu_groups"] = mapping()
        for name, plan in groups.items():
            entry = mapping({"switch": "restart"})
            if plan.memory_gib is not None:
                entry["memory_gib"] = plan.memory_gib
            entry["on_demand"] = False
            comment_after(entry, "on_demand", "true: members load when requested, idle ones "
                          "are put away")
            doc["gpu_groups"][name] = entry
            if plan.why:
                comment_before(doc["gpu_groups"], name, plan.why, 2)
    return doc
