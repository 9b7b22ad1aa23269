"""What `stackctl init` finds on the machine: parsers (pure, tested as data) and the thin
probes that feed them (a subprocess, one HTTP GET, folder listings)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

NVIDIA_SMI_ARGS = ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
OLLAMA_DEFAULT = "http://127.0.0.1:11434"
MAX_FILES = 10  # per kind: a folder of 60 GGUF files should not become 60 providers
MIN_GGUF_BYTES = 1024 * 1024  # smaller .gguf files are vocabularies or test stubs, not models


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuInfo(Frozen):
    index: int = Field(description="position in nvidia-smi's list")
    name: str = Field(description="model name, e.g. NVIDIA GeForce RTX 4090")
    memory_gib: float = Field(gt=0, description="total memory, GiB (nvidia-smi reports MiB)")


class OllamaInfo(Frozen):
    url: str = Field(description="where it answered (OLLAMA_HOST or the default)")
    port: int = Field(description="its port on this machine")
    models: list[str] = Field(default_factory=list, description="names from /api/tags")


class GgufFile(Frozen):
    path: Path
    size_gib: float = Field(ge=0)


class HfModel(Frozen):
    repo_id: str = Field(description="Org/Name, from the cache folder models--Org--Name")
    size_gib: float = Field(ge=0, description="bytes below the folder (blobs), GiB")


class Machine(Frozen):
    """Everything detected; empty lists mean nothing was found (or the probe was skipped)."""

    gpus: list[GpuInfo] = Field(default_factory=list)
    ollama: OllamaInfo | None = None
    ggufs: list[GgufFile] = Field(default_factory=list)
    hf_models: list[HfModel] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="what a probe could not do")

    @property
    def empty(self) -> bool:
        return not (self.gpus or self.ollama or self.ggufs or self.hf_models)


# -- parsers (pure) ---------------------------------------------------------------------------

def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """`name, memory.total` CSV lines (MiB, no header, no units) → GPUs; a line that does not
    parse (e.g. "[N/A]" memory) is skipped rather than guessed."""
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        name, sep, memory = line.rpartition(",")
        try:
            mib = float(memory.strip())
        except ValueError:
            continue
        if sep and name.strip() and mib > 0:
            gpus.append(GpuInfo(index=len(gpus), name=name.strip(), memory_gib=round(mib / 1024, 1)))
    return gpus


def parse_ollama_tags(body: str | bytes) -> list[str]:
    """Model names from Ollama's /api/tags ({"models": [{"name": ...}, ...]})."""
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    models = doc.get("models") if isinstance(doc, dict) else None
    return [m["name"] for m in models or [] if isinstance(m, dict) and isinstance(m.get("name"), str)]


def ollama_url(env: dict[str, str] | None = None) -> str:
    """Where Ollama answers, as its own clients read OLLAMA_HOST: `host`, `host:port` or a
    URL; the default port is 11434. 0.0.0.0 (listen everywhere) is reached on 127.0.0.1."""
    raw = (env if env is not None else os.environ).get("OLLAMA_HOST", "").strip()
    if not raw:
        return OLLAMA_DEFAULT
    scheme, _, rest = raw.rpartition("://")
    scheme = scheme or "http"
    host, _, port = rest.rstrip("/").partition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"{scheme}://{host}:{port or 11434}"


HF_FOLDER = re.compile(r"^models--(?P<org>[^-][^/]*?)--(?P<name>[^/]+)$")


def hf_repo_id(folder_name: str) -> str | None:
    """`models--Qwen--Qwen2.5-7B-Instruct` → `Qwen/Qwen2.5-7B-Instruct` (None: not a model)."""
    m = HF_FOLDER.match(folder_name)
    return f"{m['org']}/{m['name']}" if m else None


def hf_home(env: dict[str, str] | None = None) -> Path:
    """The Hugging Face hub cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    env = env if env is not None else dict(os.environ)
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def slug(text: str) -> str:
    """A name Compose takes as a service and profile name: lowercase, [a-z0-9_.-]."""
    out = re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-_.")
    return out or "model"


# -- probes (effects) -------------------------------------------------------------------------

def probe_gpus(run=subprocess.run) -> tuple[list[GpuInfo], str | None]:  # type: ignore[no-untyped-def]
    """GPUs from nvidia-smi on PATH; ([], None) without one, ([], why) when it fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], None
    try:
        out = run([exe, *NVIDIA_SMI_ARGS], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as exc:
        return [], f"nvidia-smi could not run: {exc}"
    if out.returncode != 0:
        return [], f"nvidia-smi exited {out.returncode}: {out.stderr.strip()[:200]}"
    return parse_nvidia_smi(out.stdout), None


def probe_ollama(url: str, timeout: float = 2.0) -> OllamaInfo | None:
    """Ollama's model list, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/tags", timeout=timeout) as resp:
            body = resp.read(4 * 1024 * 1024)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    port = int(url.rsplit(":", 1)[1].split("/")[0]) if url.count(":") >= 2 else 11434
    return OllamaInfo(url=url, port=port, models=parse_ollama_tags(body))


def find_ggufs(folders: Iterable[Path], depth: int = 3) -> list[GgufFile]:
    """*.gguf files (a few levels deep, symlinks to files followed), largest first per folder
    order, each once; split files (-00002-of-00003) are named by their first part only."""
    seen: set[Path] = set()
    out: list[GgufFile] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(_walk(folder, depth)):
            if not path.name.lower().endswith(".gguf") or re.search(r"-0*[2-9]\d*-of-\d+\.gguf$", path.name):
                continue
            try:
                real, size = path.resolve(), path.stat().st_size
            except OSError:
                continue
            if real in seen or size < MIN_GGUF_BYTES:
                continue
            seen.add(real)
            out.append(GgufFile(path=path, size_gib=round(size / 2**30, 2)))
    return out


def _walk(folder: Path, depth: int) -> Iterable[Path]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.is_file():
            yield path
        elif depth > 0 and entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            yield from _walk(path, depth - 1)


def find_hf_models(hub: Path) -> list[HfModel]:
    """Model folders of the Hugging Face cache that hold weights (a snapshot)."""
    if not hub.is_dir():
        return []
    out = []
    for entry in sorted(hub.iterdir()):
        repo = hf_repo_id(entry.name)
        if repo is None or not (entry / "snapshots").is_dir():
            continue
        size = sum(p.stat().st_size for p in (entry / "blobs").glob("*") if p.is_file()) \
            if (entry / "blobs").is_dir() else 0
        out.append(HfModel(repo_id=repo, size_gib=round(size / 2**30, 2)))
    return out


def detect(model_dirs: list[Path], env: dict[str, str] | None = None,
           run=subprocess.run) -> Machine:  # type: ignore[no-untyped-def]
    """Probe this machine; `model_dirs` are the folders searched for GGUF files."""
    gpus, why = probe_gpus(run)
    ollama = probe_ollama(ollama_url(env))
    ggufs = find_ggufs(model_dirs)
    hf = find_hf_models(hf_home(env))
    notes = [why] if why else []
    for kind, found in (("GGUF files", ggufs), ("Hugging Face models", hf)):
        if len(found) > MAX_FILES:
            notes.append(f"{len(found)} {kind} found; the first {MAX_FILES} were added")
    return Machine(gpus=gpus, ollama=ollama, ggufs=ggufs[:MAX_FILES], hf_models=hf[:MAX_FILES],
                   notes=notes)
