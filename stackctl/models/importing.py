"""Copying a GGUF file where its llama.cpp provider loads it: into a host folder (atomic:
a temporary sibling, then a rename) or into the provider's named volume (Docker copies it
into the provider's container, created by Compose with its volumes and not started)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from stackctl.models.files import ImportPlan


def copy_to_host(plan: ImportPlan) -> Path:
    """The file at plan.host_path, whole or not at all. OSError as raised."""
    assert plan.host_path is not None
    dest = plan.host_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.stackctl-{os.getpid()}.tmp")
    try:
        shutil.copyfile(plan.source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def copy_to_volume(docker: Any, plan: ImportPlan) -> str:
    """The file in the provider's volume through its container (created, not started, when
    it has none); the container's name. DockerError as raised."""
    container = docker.create_service([plan.profile], plan.provider)
    if container is None:
        from stackctl.docker.adapter import DockerError

        raise DockerError(f"Compose created no container for {plan.provider}")
    docker.copy_into(container, plan.source, plan.inside)
    return container
