"""Cross-file checks: what pydantic cannot see because it spans entries or files."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from pathlib import PurePosixPath

from stackctl.hints import did_you_mean
from stackctl.registry.budget_checks import check_budgets
from stackctl.registry.catalog import (
    declared_models,
    exclusive_groups,
    has_metrics,
    host_folder,
    llama_metrics_enabled,
    monitoring_components,
    named_volume,
    profile_of,
)
from stackctl.registry.graph import cycles
from stackctl.registry.kubernetes_checks import check_kubernetes_names
from stackctl.registry.load import MAPPINGS, PROVIDERS, STACK, Registry
from stackctl.registry.model_checks import check_models
from stackctl.registry.privilege_checks import check_privileges, exposed_folder
from stackctl.registry.problems import Problem
from stackctl.registry.secret_checks import ENV_NAME, check_secrets
from stackctl.registry.secrets import ENV_REF, SECRET_NAME
from stackctl.registry.source import Loc, format_path, shown_path
from stackctl.registry.value_checks import check_values
from stackctl.registry.vocabulary import CACHE, GATEWAY, MONITORING, MONITORING_SERVICES

# Compose's service names (also DNS names on the stack's network, and image names)
SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
# Compose's profile names (compose-spec schema)
PROFILE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# Mounting these hands the container the host: root on the engine, or every file
FORBIDDEN_MOUNTS = {"/var/run/docker.sock", "/run/docker.sock", "/"}
# Longer patterns are refused unread: the `re` compiler recurses and can take seconds
MAX_PATTERN = 1000
ENFORCEABLE_STRATEGIES = {None, "direct", "simple-shuffle", "weighted_round_robin", "weighted"}
# What each monitoring service mounts from the monitoring folder (`init` turns them off when
# it finds none). A missing file is mounted as an empty directory: Prometheus would run
# without a single rule, and say nothing.
MONITORING_FILES = {"prometheus": "prometheus/alerts.yml", "grafana": "grafana/provisioning",
                    "loki": "loki/loki.yaml", "alloy": "alloy/config.alloy"}


class Checker:
    def __init__(self, reg: Registry):
        self.reg = reg
        self.problems: list[Problem] = []
        self.providers = reg.providers.providers
        self.mappings = reg.mappings
        self.models = declared_models(reg)

    def run(self) -> list[Problem]:
        self.check_providers()
        self.check_compose_values()
        self.check_exact_matches()
        self.check_patterns()
        self.check_load_balancing()
        self.check_fallback_chains()
        self.check_capabilities()
        self.check_unenforced_rules()
        self.check_ports()
        self.check_gpu_groups()
        self.check_sleep_groups()
        self.problems += check_budgets(self.reg)  # budget_checks.py: GPU memory budgets
        self.check_image_overrides()
        self.problems += check_secrets(self.reg)  # secret_checks.py: secret-shaped values anywhere
        self.problems += check_values(self.reg)  # `$`, os.environ/, control characters
        self.problems += check_privileges(self.reg)  # reserved names, images, mounts, deploy
        self.problems += check_models(self.reg)  # model files, vLLM's served names, unrouted
        if self.reg.stack.deploy.target == "kubernetes":
            self.problems += check_kubernetes_names(self.reg)
        self.check_monitoring()
        return self.problems

    # -- helpers ----------------------------------------------------------------------------
    def err(self, file: str, loc: Loc, message: str, hint: str | None = None) -> None:
        self.problems.append(self.reg.sources[file].problem("error", loc, message, hint))

    def warn(self, file: str, loc: Loc, message: str, hint: str | None = None) -> None:
        self.problems.append(self.reg.sources[file].problem("warning", loc, message, hint))

    def provider_ref(self, name: str, loc: Loc) -> None:
        """A provider named in the mappings must exist and be enabled."""
        prov = self.providers.get(name)
        if prov is None:
            hint = did_you_mean(name, self.providers)
            if name in self.models:
                hint = f"{name!r} is a model; name the provider that serves it"
            self.err(MAPPINGS, loc, f"unknown provider {name!r}", hint)
        elif not prov.enabled:
            self.err(MAPPINGS, loc, f"provider {name!r} is {prov.status}",
                     f"set providers.{name}.status: active in {PROVIDERS}, or drop this entry")

    def model_ref(self, name: str, loc: Loc) -> bool:
        """A model named in the mappings must be declared and served by an enabled provider."""
        if name in self.models:
            served = self._enabled_model(name)
            if not served and self._provider_known(name):
                self.err(MAPPINGS, loc, f"model {name!r} is served only by a disabled provider",
                         "enable its provider or remove it here")
            return served
        if name in self.providers:
            own = [m for m, e in self.mappings.exact_matches.items() if e.provider == name]
            hint = ("did you mean one of its models: " + ", ".join(own)) if own else None
            self.err(MAPPINGS, loc, f"{name!r} is a provider, not a model", hint)
        else:
            self.err(MAPPINGS, loc, f"unknown model {name!r}",
                     did_you_mean(name, self.models) or
                     "declare it under exact_matches or load_balancing")
        return False

    def _provider_known(self, name: str) -> bool:
        """False when the model's provider is unknown: that is reported once, where it is named."""
        match = self.mappings.exact_matches.get(name)
        if match:
            return match.provider in self.providers
        group = self.mappings.load_balancing.get(name)
        return bool(group) and all(w.provider in self.providers for w in group.providers)

    def _enabled_model(self, name: str) -> bool:
        match = self.mappings.exact_matches.get(name)
        if match and (p := self.providers.get(match.provider)) and p.enabled:
            return True
        group = self.mappings.load_balancing.get(name)
        return bool(group and any((p := self.providers.get(w.provider)) and p.enabled
                                  for w in group.providers))

    # -- providers.yaml ---------------------------------------------------------------------
    def check_providers(self) -> None:
        for name, prov in self.providers.items():
            loc: Loc = ("providers", name)
            if prov.enabled and (bad := prov.url_problem()):
                self.err(PROVIDERS, loc + ("base_url",), bad, "write e.g. http://127.0.0.1:8001")
            if prov.enabled and prov.is_local and prov.container is None:
                self.err(PROVIDERS, loc, f"local provider {name!r} has no container section",
                         "add container: {image, port, profile, health} so stackctl can run it, "
                         "or set status: disabled")
            if prov.enabled and not prov.is_local and prov.requires_api_key and not prov.env_var:
                self.err(PROVIDERS, loc + ("requires_api_key",),
                         "an API key is required but no env_var names where it comes from",
                         "add env_var: PROVIDER_API_KEY and put the key in .env")
            if prov.env_var and not ENV_NAME.fullmatch(prov.env_var):
                self.err(PROVIDERS, loc + ("env_var",),
                         "env_var must be the NAME of an environment variable, not a key",
                         "e.g. env_var: OPENAI_API_KEY")
            if prov.container:
                for key, value in prov.container.env.items():
                    if SECRET_NAME.search(key) and not ENV_REF.match(value):
                        self.err(PROVIDERS, loc + ("container", "env", key),
                                 f"secret {key!r} is written inline",
                                 f"write {key}: ${{{key}}} and put the value in .env")

    def check_compose_values(self) -> None:
        """What Compose would refuse at `up` (or do unsafely), refused or flagged here."""
        for name, prov in self.providers.items():
            c = prov.container
            if c is None:
                continue
            loc: Loc = ("providers", name)
            if not SERVICE_NAME.fullmatch(name):
                fixed = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).lstrip("_.-") or "provider"
                self.err(PROVIDERS, loc, f"provider name {name!r} cannot be a Compose service "
                         "name: lowercase letters, digits, '_', '.', '-', starting with a "
                         "letter or digit", f"e.g. {fixed}")
            if c.profile is not None and not PROFILE_NAME.fullmatch(c.profile):
                self.err(PROVIDERS, loc + ("container", "profile"),
                         f"profile {c.profile!r} is not a Compose profile name",
                         "letters, digits, '_', '.', '-', starting with a letter or digit")
            for key in c.env:
                if not ENV_NAME.fullmatch(key):
                    self.err(PROVIDERS, loc + ("container", "env", key),
                             f"{_shown(key)} is not an environment variable name",
                             "letters, digits and '_', not starting with a digit")
            for vol, target in c.volumes.items():
                self.check_volume(loc + ("container", "volumes", vol), vol, target)
        stack = self.reg.stack
        if not ipaddress.ip_address(stack.bind_address).is_loopback:
            self._stack_warn(("bind_address",), f"bind_address {stack.bind_address} publishes "
                             "every port (the gateway, the cache, monitoring) beyond this "
                             "machine", "use 127.0.0.1 unless other hosts must reach the stack,"
                             " and then firewall it")
        project = self.reg.config_dir.resolve().parent
        if not self.reg.output_dir.is_relative_to(project):
            self._stack_warn(("output_dir",), f"output_dir {self.reg.output_dir} is outside "
                             f"the project ({project}): generate writes and overwrites files "
                             "there", "keep it inside, e.g. output_dir: ../compose")

    def check_volume(self, loc: Loc, source: str, target: str) -> None:
        """One `source: /container/path` mount: a named volume, or a host path (warned)."""
        for part, what in ((source, "source"), (target, "mount path")):
            if ":" in part or "\0" in part:
                self.err(PROVIDERS, loc, f"volume {what} {part!r} contains "
                         + ("':'" if ":" in part else "a NUL byte"),
                         "Compose reads source:target:mode; rename it")
                return
        if not target.startswith("/"):
            self.err(PROVIDERS, loc, f"mount path {target!r} is not absolute",
                     "write the path inside the container, e.g. /models")
        if named_volume(source):
            return
        host = str(PurePosixPath(source))
        exposed = exposed_folder(self.reg, host_folder(self.reg, source)) \
            if source.startswith(("/", "./", "../", "~")) else None
        if host in FORBIDDEN_MOUNTS:
            self.err(PROVIDERS, loc, f"mounting {source!r} gives the container the whole host"
                     + (" (root on the Docker engine)" if host != "/" else ""),
                     "mount only the folder the server needs, or a named volume")
        elif exposed is not None:
            self.err(PROVIDERS, loc, f"{source!r} holds {exposed}: the container would read "
                     "(and write) it", "mount only the folder the server needs, or a named "
                     "volume")
        elif source.startswith(("/", "./", "../", "~")):
            self.warn(PROVIDERS, loc, f"{source!r} is a host path: the container reads and "
                      "writes your files there, as its own user (often root)",
                      "prefer a named volume (e.g. models: /models) unless you share the files")
        else:
            self.err(PROVIDERS, loc, f"{source!r} is neither a volume name nor a host path",
                     "a name of letters, digits, '_', '.', '-', or a path starting with / or ./")

    # -- model-mappings.yaml ----------------------------------------------------------------
    def check_exact_matches(self) -> None:
        aliased: dict[str, str] = {}
        for name, match in self.mappings.exact_matches.items():
            loc: Loc = ("exact_matches", name)
            self.provider_ref(match.provider, loc + ("provider",))
            prov = self.providers.get(match.provider)
            if prov and match.backend_model and prov.models and \
                    match.backend_model not in prov.model_names:
                self.err(MAPPINGS, loc + ("backend_model",),
                         f"provider {match.provider!r} does not serve {match.backend_model!r}",
                         did_you_mean(match.backend_model, prov.model_names)
                         or "it serves: " + ", ".join(prov.model_names))
            if match.fallback:
                self.model_ref(match.fallback, loc + ("fallback",))
                if match.fallback == name:
                    self.err(MAPPINGS, loc + ("fallback",), f"{name!r} falls back to itself")
            for i, alias in enumerate(match.aliases):
                if alias in self.models:
                    self.err(MAPPINGS, loc + ("aliases", i),
                             f"alias {alias!r} is already a model name")
                elif alias in aliased:
                    self.err(MAPPINGS, loc + ("aliases", i),
                             f"alias {alias!r} is already an alias of {aliased[alias]!r}",
                             "an alias names exactly one model")
                aliased.setdefault(alias, name)

    def check_patterns(self) -> None:
        for i, pat in enumerate(self.mappings.patterns):
            loc: Loc = ("patterns", i)
            if len(pat.pattern) > MAX_PATTERN:
                self.err(MAPPINGS, loc + ("pattern",), f"pattern is {len(pat.pattern)} "
                         f"characters long, more than {MAX_PATTERN}",
                         "match model names with a shorter expression")
            else:
                try:
                    re.compile(pat.pattern)
                except (re.error, OverflowError, RecursionError) as exc:
                    # OverflowError: a{99999999999}; RecursionError: deeply nested groups
                    self.err(MAPPINGS, loc + ("pattern",), f"pattern does not compile: {exc}",
                             "write a Python regular expression, e.g. ^llama3")
            self.provider_ref(pat.provider, loc + ("provider",))
            if pat.fallback:
                self.model_ref(pat.fallback, loc + ("fallback",))
            self.warn(MAPPINGS, loc, "pattern routing is not enforced by the gateway",
                      "clients must use a declared model name; add an exact_matches entry")

    def check_load_balancing(self) -> None:
        for name, group in self.mappings.load_balancing.items():
            loc: Loc = ("load_balancing", name)
            total = 0.0
            for i, wp in enumerate(group.providers):
                ploc = loc + ("providers", i)
                self.provider_ref(wp.provider, ploc + ("provider",))
                if wp.weight <= 0:
                    self.err(MAPPINGS, ploc + ("weight",), f"weight must be positive, got {wp.weight}")
                total += wp.weight
                if wp.condition:
                    self.warn(MAPPINGS, ploc + ("condition",),
                              f"condition {wp.condition!r} cannot be enforced by the gateway",
                              "traffic is split by weight alone")
            if group.providers and abs(total - 1.0) > 1e-6:
                self.err(MAPPINGS, loc + ("providers",),
                         f"weights sum to {total:g}, not 1", "scale them so they add up to 1")
            if group.strategy not in ENFORCEABLE_STRATEGIES:
                self.warn(MAPPINGS, loc + ("strategy",),
                          f"strategy {group.strategy!r} cannot be enforced by the gateway",
                          "weighted shuffle is used")

    def check_fallback_chains(self) -> None:
        graph: dict[str, list[str]] = {}
        for name, chain in self.mappings.fallback_chains.items():
            loc: Loc = ("fallback_chains", name)
            if name != "default":
                self.model_ref(name, loc)
            for item, count in Counter(chain.chain).items():
                if count > 1:
                    self.err(MAPPINGS, loc + ("chain",), f"{item!r} appears {count} times")
            for i, item in enumerate(chain.chain):
                if item == name:
                    self.err(MAPPINGS, loc + ("chain", i), f"{name!r} falls back to itself")
                else:
                    self.model_ref(item, loc + ("chain", i))
            if name != "default":
                graph[name] = [m for m in chain.chain if m != name]
        for match_name, match in self.mappings.exact_matches.items():
            if match.fallback and match_name not in graph:
                graph[match_name] = [match.fallback]
        for cycle in cycles(graph):
            where: Loc = ("fallback_chains", cycle[0]) \
                if cycle[0] in self.mappings.fallback_chains \
                else ("exact_matches", cycle[0], "fallback")
            self.err(MAPPINGS, where, "fallback cycle: " + " → ".join(cycle + [cycle[0]]),
                     "a chain must end at a model with no further fallback")

    def check_capabilities(self) -> None:
        for name, cap in self.mappings.capabilities.items():
            loc: Loc = ("capabilities", name)
            for i, model in enumerate(cap.preferred_models):
                self.model_ref(model, loc + ("preferred_models", i))
            if cap.provider:
                self.provider_ref(cap.provider, loc + ("provider",))
            if cap.fallback:
                if cap.fallback in self.providers:
                    self.provider_ref(cap.fallback, loc + ("fallback",))
                else:
                    self.model_ref(cap.fallback, loc + ("fallback",))
            if cap.routing_strategy not in ENFORCEABLE_STRATEGIES:
                target = f"'{name}' is served as an alias of {cap.preferred_models[0]!r}" \
                    if cap.preferred_models else "it is documentation only"
                self.warn(MAPPINGS, loc + ("routing_strategy",),
                          f"routing_strategy {cap.routing_strategy!r} cannot be enforced by the "
                          f"gateway", target)

    def check_unenforced_rules(self) -> None:
        for section in ("routing_rules", "special_cases"):
            value = getattr(self.mappings, section)
            if value:
                self.warn(MAPPINGS, (section,), f"{section} cannot be enforced by the gateway",
                          "only exact names, load balancing and fallback chains are routed")

    # -- stack-wide -------------------------------------------------------------------------
    def check_ports(self) -> None:
        used: dict[int, str] = {}
        stack = self.reg.stack

        def claim(port: int | None, owner: str, file: str, loc: Loc) -> None:
            if port is None:
                return
            if port in used:
                if file in self.reg.sources:
                    self.err(file, loc, f"host port {port} is already used by {used[port]}",
                             "give each service its own host port")
                else:
                    self.err(PROVIDERS, loc, f"host port {port} is already used by {used[port]}")
            else:
                used[port] = owner

        claim(stack.gateway.host_port, "the gateway", STACK, ("gateway", "host_port"))
        if stack.cache.enabled:
            claim(stack.cache.host_port, "the cache", STACK, ("cache", "host_port"))
        for svc, (key, comp) in monitoring_components(self.reg).items():
            claim(comp.host_port, svc, STACK, ("monitoring", key, "host_port"))
        for name, prov in self.providers.items():
            if prov.enabled and prov.container:
                where = ("container", "host_port") if prov.container.host_port else ("base_url",)
                claim(prov.host_port, f"provider {name!r}", PROVIDERS, ("providers", name) + where)

    def check_image_overrides(self) -> None:
        services = {GATEWAY, CACHE, *MONITORING_SERVICES.values()}
        services |= {n for n, p in self.providers.items() if p.container}
        for name in self.reg.stack.images:
            if name not in services:
                self.err(STACK, ("images", name), f"no service is named {name!r}",
                         did_you_mean(name, services) or "services: " + ", ".join(sorted(services)))

    def check_monitoring(self) -> None:
        """What the monitoring profile could not observe, or could not start with."""
        running = monitoring_components(self.reg)
        if "alloy" in running and "loki" not in running:
            self._stack_err(("monitoring", "alloy", "enabled"),
                            "alloy ships logs to loki, which is disabled",
                            "enable monitoring.loki or set monitoring.alloy.enabled: false")
        mon = self.reg.stack.monitoring
        folder = self.reg.resolve(mon.config_dir)
        missing = [rel for svc, rel in MONITORING_FILES.items() if svc in running
                   and not (folder / rel).exists()]
        if "grafana" in running and not self.reg.resolve(mon.dashboards_dir).is_dir():
            missing.append(f"the dashboards folder {mon.dashboards_dir}")
        if missing:
            self.problems.append(self._stack_problem(
                "warning", ("monitoring", "config_dir"),
                f"the monitoring profile would run without {', '.join(missing)} "
                f"(monitoring.config_dir is {folder})",
                "point config_dir (and dashboards_dir) at stackctl's monitoring/ and "
                "grafana-dashboards/ folders, relative to the config folder"))
        for name, prov in self.providers.items():
            if not (prov.enabled and prov.container):
                continue
            loc: Loc = ("providers", name, "container", "command")
            if prov.type == "llama_cpp" and not llama_metrics_enabled(prov):
                self.warn(PROVIDERS, loc if prov.container.command else loc[:-1],
                          "llama.cpp server without --metrics: Prometheus cannot scrape it "
                          "(it is only probed for health)", "add --metrics to its command")
            elif not has_metrics(prov) and "prometheus" in running \
                    and "blackbox-exporter" not in running:
                self.warn(PROVIDERS, ("providers", name),
                          f"{name!r} has no metrics endpoint and monitoring.blackbox_exporter "
                          "is disabled: nothing watches it", "enable the blackbox exporter")

    def _stack_warn(self, loc: Loc, message: str, hint: str | None = None) -> None:
        self.problems.append(self._stack_problem("warning", loc, message, hint))

    def _stack_err(self, loc: Loc, message: str, hint: str | None = None) -> None:
        self.problems.append(self._stack_problem("error", loc, message, hint))

    def _stack_problem(self, severity: str, loc: Loc, message: str,
                       hint: str | None = None) -> Problem:
        """A problem with a stack.yaml setting, located there. stack.yaml may be absent (its
        defaults apply): the problem still names it, with no line, never providers.yaml."""
        if STACK in self.reg.sources:
            return self.reg.sources[STACK].problem(severity, loc, message, hint)
        absent = f"{STACK} is absent: this is its default"
        return Problem(severity=severity,  # type: ignore[arg-type]
                       file=shown_path(self.reg.sources[PROVIDERS].path.parent / STACK),
                       path=format_path(loc), message=message,
                       hint=f"{hint}; {absent}" if hint else absent)

    def check_gpu_groups(self) -> None:
        known = {profile_of(n, p) for n, p in self.providers.items() if p.enabled and p.container}
        known.add(MONITORING)
        groups = exclusive_groups(self.reg)
        for i, profile in enumerate(self.reg.stack.default_profiles):
            if profile not in known:
                self.err(STACK, ("default_profiles", i), f"unknown profile {profile!r}",
                         did_you_mean(profile, known) or "profiles: " + ", ".join(sorted(known)))
        for group, members in groups.items():
            chosen = [m for m in members
                      if profile_of(m, self.providers[m]) in self.reg.stack.default_profiles]
            if len(chosen) > 1:
                self.err(STACK, ("default_profiles",),
                         f"default profiles start {' and '.join(chosen)} together, but they "
                         f"share exclusive GPU group {group!r}", "keep one; `stackctl switch` "
                         "moves between them")
        for group, members in groups.items():
            by_profile: dict[str, list[str]] = {}
            for m in members:
                by_profile.setdefault(profile_of(m, self.providers[m]), []).append(m)
            for profile, names in by_profile.items():
                if len(names) > 1:
                    self.err(PROVIDERS, ("providers", names[1], "container", "profile"),
                             f"profile {profile!r} would start {' and '.join(names)} together, "
                             f"but they share exclusive GPU group {group!r}",
                             "give each member its own profile; `stackctl switch` moves between them")


    def check_sleep_groups(self) -> None:
        """gpu_groups in stack.yaml: known groups; sleep mode only with vLLM, and what it
        costs (host memory at level 1, vLLM's dev endpoints on the members' ports)."""
        groups = exclusive_groups(self.reg)
        for group, settings in self.reg.stack.gpu_groups.items():
            if group not in groups:
                self._stack_err(("gpu_groups", group), f"no exclusive GPU group {group!r}",
                                did_you_mean(group, groups) or "groups: " + (
                                    ", ".join(groups) or "none (set a provider's "
                                    "container.gpu.exclusive_group)"))
                continue
            if settings.switch != "sleep":
                continue
            members = groups[group]
            for m in members:
                if self.providers[m].type != "vllm":
                    self.err(PROVIDERS, ("providers", m, "type"),
                             f"{m!r} is in GPU group {group!r}, which switches with sleep mode, "
                             f"but it is a {self.providers[m].type} provider: only vLLM sleeps",
                             f"set gpu_groups.{group}.switch: restart in {STACK}, or move "
                             f"{m!r} to another group")
            if settings.sleep_level == 1:
                self._host_memory(group, members)
            if not ipaddress.ip_address(self.reg.stack.bind_address).is_loopback:
                self._stack_warn(("gpu_groups", group, "switch"),
                                 f"sleep mode runs {', '.join(members)} with "
                                 "VLLM_SERVER_DEV_MODE=1, whose /sleep, /wake_up and "
                                 "/collective_rpc answer anyone who reaches their ports, "
                                 f"published on {self.reg.stack.bind_address}",
                                 "keep bind_address on 127.0.0.1, or use switch: restart")

    def _host_memory(self, group: str, members: list[str]) -> None:
        """Level 1: every sleeping member's weights wait in host memory."""
        sizes = {m: c.gpu.weights_gib for m in members
                 if (c := self.providers[m].container) and c.gpu}
        unknown = [m for m, gib in sizes.items() if gib is None]
        if unknown:
            self.warn(PROVIDERS, ("providers", unknown[0], "container", "gpu"),
                      f"GPU group {group!r} sleeps at level 1, where each sleeping member keeps "
                      f"its weights in host memory, but {', '.join(unknown)} declare no "
                      "gpu.weights_gib: that cannot be checked",
                      "set container.gpu.weights_gib (the model's size in GiB)")
            return
        asleep = sum(sorted(gib or 0 for gib in sizes.values())[:-1])  # all but one
        total = host_memory_gib()
        if total is not None and asleep > total * 0.8:
            self._stack_warn(("gpu_groups", group, "sleep_level"),
                             f"GPU group {group!r} sleeps at level 1: its sleeping members "
                             f"keep up to {asleep:g} GiB of weights in host memory, more than "
                             f"80% of this machine's {total:g} GiB",
                             "use sleep_level: 2 (weights reloaded from disk on wake) or "
                             "fewer members")


def sleep_costs(reg: Registry) -> list[str]:
    """One line per sleep-mode group: what sleeping costs, for `validate` to print."""
    lines = []
    for group, members in exclusive_groups(reg).items():
        settings = reg.stack.gpu_groups.get(group)
        if settings is None or settings.switch != "sleep":
            continue
        if settings.sleep_level == 2:
            lines.append(f"GPU group {group}: sleep level 2: a sleeping member drops its "
                         "weights (no host memory); waking reloads them from disk")
            continue
        sizes = [c.gpu.weights_gib for m in members
                 if (c := reg.providers.providers[m].container) and c.gpu]
        held = (f"up to {sum(sorted(g or 0 for g in sizes)[:-1]):g} GiB" if None not in sizes
                else "their weights")
        total = host_memory_gib()
        lines.append(f"GPU group {group}: sleep level 1: the {len(members) - 1} sleeping "
                     f"member(s) keep {held} in host memory"
                     + (f" (this machine: {total:g} GiB)" if total is not None else ""))
    return lines


def host_memory_gib() -> float | None:
    """This machine's memory (Linux), rounded to 0.1 GiB; None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _shown(text: str) -> str:
    """A key as the user wrote it, unless it could be a secret pasted in the wrong place."""
    return repr(text) if len(text) <= 40 and " " not in text else f"a key of {len(text)} characters"


def check(reg: Registry) -> list[Problem]:
    return Checker(reg).run()
