"""The Dockerfile's base image in the private engine: pulled, or a stand-in built from Debian.

Docker Hub cannot be reached from every machine that runs the tests. When the Dockerfile's
``FROM`` image cannot be pulled, a stand-in is built from Debian bookworm's own Python 3.11
(mmdebstrap, then ``docker import``) with the contract of the official slim image: ``python``
and ``pip`` on PATH, pip installing into a writable prefix (a venv at /usr/local, where the
official image keeps its Python), ``useradd`` present. It is tagged under the ``FROM`` name only
inside the private engine, and pip in it uses the host's CA bundle and index, so a build reaches
the same package index the host does. The Dockerfile itself is never changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.engine import DOCKERFILE, Engine, EngineError

STAND_IN_LABEL = "org.churn-serving.stand-in-recipe"
# What mmdebstrap puts in the stand-in: Python 3.11 with venv (pip comes from ensurepip),
# the CA store and useradd (passwd); documentation left out.
STAND_IN_PACKAGES = "python3,python3-venv,ca-certificates,passwd"
STAND_IN_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*")
HOST_PIP_CONF = "/etc/pip.conf"  # inside the stand-in


def base_images(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The images the Dockerfile's stages start FROM (stage names are not images)."""
    stages: set[str] = set()
    images: list[str] = []
    for line in dockerfile.read_text().splitlines():
        match = re.match(r"\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            image, stage = match.groups()
            if image not in stages and image not in images:
                images.append(image)
            if stage:
                stages.add(stage)
    return images


def host_pip_settings() -> str:
    """A pip.conf for the stand-in: the host's index and its CA bundle (copied in beside it)."""
    lines = ["[global]", "cert = /etc/ssl/certs/host-ca-bundle.crt"]
    index = os.environ.get("PIP_INDEX_URL") or _pip_config("global.index-url")
    if index:
        lines.append(f"index-url = {index}")
    return "\n".join(lines) + "\n"


def host_ca_bundle() -> Path:
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return Path("/etc/ssl/certs/ca-certificates.crt")


def _pip_config(key: str) -> str:
    pip = shutil.which("pip3") or shutil.which("pip")
    if pip is None:
        return ""
    result = subprocess.run([pip, "config", "get", key], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else ""


def stand_in_recipe() -> str:
    """Everything the stand-in depends on: a change rebuilds it, otherwise it is reused."""
    parts = [STAND_IN_PACKAGES, *STAND_IN_EXCLUDES, host_pip_settings()]
    digest = hashlib.sha256("\n".join(parts).encode())
    digest.update(host_ca_bundle().read_bytes())
    return digest.hexdigest()[:16]


def ensure_base_image(engine: Engine, image: str) -> str:
    """Make ``image`` available in the engine; say how (pulled, cached or new stand-in)."""
    recipe = stand_in_recipe()
    label = f'{{{{index .Config.Labels "{STAND_IN_LABEL}"}}}}'
    present = engine.docker("image", "inspect", "--format", label, image, check=False)
    if present == recipe:
        return f"{image}: stand-in from Debian bookworm (cached in the private engine)"
    if engine.docker("pull", "--quiet", image, timeout=300, check=False):
        return f"{image}: pulled"
    started = time.monotonic()
    build_stand_in(engine, image, recipe)
    return (
        f"{image}: cannot be pulled here; a stand-in built from Debian bookworm's Python 3.11 "
        f"(mmdebstrap, {time.monotonic() - started:.0f} s) is tagged {image} only inside the "
        "private test engine"
    )


def build_stand_in(engine: Engine, image: str, recipe: str) -> None:
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise EngineError(f"{image} cannot be pulled and mmdebstrap is missing: make system-deps")
    with tempfile.TemporaryDirectory(prefix="churn-stand-in-") as work:
        pip_conf = Path(work) / "pip.conf"
        pip_conf.write_text(host_pip_settings())
        tarball = Path(work) / "base.tar"
        command = [
            mmdebstrap,
            "--variant=minbase",
            f"--include={STAND_IN_PACKAGES}",
            *(f"--dpkgopt=path-exclude={pattern}" for pattern in STAND_IN_EXCLUDES),
            # The official image keeps its Python under /usr/local: a venv there gives the
            # same `python`/`pip` on PATH and a prefix pip may install into.
            '--customize-hook=chroot "$1" python3 -m venv /usr/local',
            f'--customize-hook=cp {host_ca_bundle()} "$1/etc/ssl/certs/host-ca-bundle.crt"',
            f'--customize-hook=cp {pip_conf} "$1{HOST_PIP_CONF}"',
            "bookworm",
            str(tarball),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise EngineError(f"mmdebstrap failed:\n{result.stderr[-2000:]}")
        engine.docker(
            "import",
            "--change",
            "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            f"LABEL {STAND_IN_LABEL}={recipe}",
            "--change",
            'CMD ["python3"]',
            str(tarball),
            image,
            timeout=300,
        )
