"""Registry → Alertmanager configuration, and how the webhook URLs reach it.

A webhook URL (Slack, Discord …) is a credential, so it is in no generated file. Alertmanager
0.26 reads one from a file (`url_file`), but Debian bookworm's 0.25 (the local image) has only
`url`. So the generated file holds a placeholder per receiver, and the container starts with
a shell step that copies the file into a tmpfs, replacing each placeholder with the URL from
its compose secret (/run/secrets/<VARIABLE>, filled from the environment like the master
key), and then runs Alertmanager on that copy. The URL never appears in the compose file, in
`docker inspect` or on a command line; the step refuses a URL with blanks or quotes rather
than write broken YAML. Note: Alertmanager 0.25 itself shows the URL on its status page and
in failed-notification log lines (0.26 and later hide it).
"""

from __future__ import annotations

from typing import Any

from stackctl.registry.load import Registry

SECRET_URL = "http://stackctl-secret.invalid/"  # + the variable's name; never resolvable
NULL = "null"  # the receiver that notifies no one
GATEWAY_DOWN = "LiteLLMGatewayDown"  # alert rule (monitoring/prometheus/alerts.yml)
GROUP_BY = ["alertname", "gpu_group", "provider", "requested_model"]


def webhook_variables(reg: Registry) -> list[str]:
    """Names of the variables holding the receivers' URLs (each a compose secret), in order."""
    return list(dict.fromkeys(r.webhook_url_env for r in reg.stack.monitoring.alerts.receivers))


def render_alertmanager(reg: Registry) -> dict[str, Any]:
    alerts = reg.stack.monitoring.alerts
    route: dict[str, Any] = {"receiver": NULL, "group_by": GROUP_BY,
                             "group_wait": alerts.group_wait,
                             "group_interval": alerts.group_interval,
                             "repeat_interval": alerts.repeat_interval}
    if alerts.receivers:  # every receiver gets every alert
        route["routes"] = [{"receiver": r.name, "continue": True} for r in alerts.receivers]
    return {
        "route": route,
        # with the gateway down every per-model alert fires too: send only the cause
        "inhibit_rules": [{"source_matchers": [f"alertname={GATEWAY_DOWN}"],
                           "target_matchers": ["scope=model"]}],
        "receivers": [{"name": NULL}] + [
            {"name": r.name, "webhook_configs": [
                {"url": SECRET_URL + r.webhook_url_env, "send_resolved": r.send_resolved}]}
            for r in alerts.receivers],
    }


def start_script(template: str, runtime: str, secrets: str = "/run/secrets") -> str:
    """`sh -c` script: write `template` to `runtime` with each placeholder replaced by the
    URL in its file in `secrets`, then exec Alertmanager (upstream or Debian binary) "$@"."""
    return (
        "set -eu\n"
        "umask 077\n"
        'while IFS= read -r line || [ -n "$line" ]; do\n'
        '  case "$line" in\n'
        f'    *"{SECRET_URL}"*)\n'
        '      var=${line##*/}\n'
        f'      url=$(cat "{secrets}/$var")\n'
        '      case "$url" in\n'
        "        http://?*|https://?*) ;;\n"
        '        *) echo "$var must hold the webhook URL (http:// or https://)" >&2; exit 1;;\n'
        "      esac\n"
        '      case "$url" in\n'
        "        *[[:space:]\\']*)\n"
        '          echo "$var: the webhook URL must not contain blanks or quotes" >&2; exit 1;;\n'
        "      esac\n"
        f'      printf "%s\'%s\'\\n" "${{line%%{SECRET_URL}*}}" "$url";;\n'
        "    *) printf '%s\\n' \"$line\";;\n"
        "  esac\n"
        f"done < {template} > {runtime}\n"
        "for am in alertmanager prometheus-alertmanager; do\n"
        '  command -v "$am" >/dev/null && exec "$am" "$@"\n'
        "done\n"
        'echo "no alertmanager binary in this image" >&2; exit 1\n'
    )
