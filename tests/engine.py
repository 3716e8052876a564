"""A private Docker engine for the tests and the benchmarks, and the image built in it.

Debian's ``dockerd`` with its own data root, exec root, pidfile and socket, ``--bridge=none
--iptables=false``: it never touches an engine the user runs, and containers use ``--network
host``, so all traffic stays on loopback. The data root is cached outside the checkout (the base
image and the dependency layer survive between runs); a second run while one holds it gets a
throw-away one. Where the Dockerfile's base image cannot be pulled (no Docker Hub), a stand-in
with the official slim image's contract is built from Debian bookworm's Python 3.11 and tagged
under the ``FROM`` name inside this engine only; the Dockerfile itself is never changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import poll
from churn.config import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
STAND_IN_LABEL = "org.churn-serving.stand-in-recipe"
# Python 3.11 with venv (pip from ensurepip), the CA store and useradd; no documentation.
STAND_IN_PACKAGES = "python3,python3-venv,ca-certificates,passwd"
STAND_IN_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*")


class EngineError(RuntimeError):
    """The private engine could not start, or a docker command failed."""


def docker_client() -> str:
    """The client shipped beside Debian's dockerd: its API version matches the engine's."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineError("dockerd not found: `make system-deps` installs Debian's docker.io")
    beside = Path(dockerd).parent / "docker"
    return str(beside) if beside.exists() else shutil.which("docker") or "docker"


@dataclass
class Engine:
    """One running private dockerd; ``docker(...)`` runs the client against it."""

    data_root: Path
    exec_root: Path
    process: subprocess.Popen | None = None
    client: str = field(default_factory=docker_client)
    lock: int | None = None  # the cached data root's lock, held while this engine runs

    @property
    def env(self) -> dict[str, str]:
        # The legacy builder: Debian's client has no buildx, and it needs none.
        socket = f"unix://{self.exec_root / 'docker.sock'}"
        return {**os.environ, "DOCKER_HOST": socket, "DOCKER_BUILDKIT": "0"}

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(
            [self.client, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise EngineError(f"docker {' '.join(args[:3])}: {result.stderr.strip()}")
        return result.stdout.strip()

    def logs(self, container: str, timeout: float = 60) -> str:
        """`docker logs` of a container: its stdout (the access log) and its stderr (the rest)."""
        result = subprocess.run([self.client, "logs", container], env=self.env,
                                capture_output=True, text=True, timeout=timeout)  # fmt: skip
        return result.stdout + result.stderr

    def start(self, timeout: float = 60) -> None:
        self.exec_root.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        command = [
            shutil.which("dockerd") or "dockerd",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.exec_root / 'docker.pid'}",
            f"--host={self.env['DOCKER_HOST']}",
            "--bridge=none",
            "--iptables=false",
            # Its own namespaces too, should a system containerd be running and be picked up.
            "--containerd-namespace=churn-serving",
            "--containerd-plugins-namespace=churn-serving-plugins",
        ]
        log = self.exec_root / "dockerd.log"
        self.process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
        if not poll(self.answers, bool, timeout, 0.2):
            self.stop()
            tail = log.read_text()[-2000:]
            raise EngineError(f"the private dockerd did not start (needs root):\n{tail}")
        # Left by an interrupted run: stopped containers and untagged images only.
        self.docker("container", "prune", "--force")
        self.docker("image", "prune", "--force")

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            return True  # exited: stop polling, start() reports it
        return self.docker("version", "--format", "{{.Server.Version}}", check=False) != ""

    def stop(self, timeout: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(EngineError, subprocess.TimeoutExpired):
                running = self.docker("ps", "--quiet").split()
                if running:
                    self.docker("rm", "--force", *running, timeout=timeout)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.lock is not None:
            os.close(self.lock)
            self.lock = None
        # dockerd leaves its network namespace file mounted under the exec root.
        points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for point in sorted(points, reverse=True):
            if point.startswith(f"{self.exec_root}/"):
                subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
        shutil.rmtree(self.exec_root, ignore_errors=True)


def start_private_engine() -> Engine:
    """Start an engine on the cached data root, or on a throw-away one if another run has it."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    checkout = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:10]
    root = base / "churn-serving" / f"docker-{checkout}"  # per checkout: each its own cache
    root.mkdir(parents=True, exist_ok=True)
    lock: int | None = os.open(root / "lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        data_root = root / "data"
    except BlockingIOError:
        os.close(lock)
        lock, data_root = None, Path(tempfile.mkdtemp(prefix="churn-docker-data-"))
    # Short, because containerd's sockets live under it (a unix socket path has ~107 bytes).
    engine = Engine(data_root, Path(tempfile.mkdtemp(prefix="churn-docker-")), lock=lock)
    engine.start()
    return engine


def build_context(destination: Path) -> Path:
    """The checkout as a clean clone has it: tracked and new files, nothing git ignores."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for relative in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def build_image(engine: Engine, context: Path, tag: str) -> tuple[str, float]:
    """``docker build`` with the host's network (pip reaches the host's index); log, seconds."""
    started = time.monotonic()
    log = engine.docker("build", "--network=host", "--tag", tag, str(context), timeout=1200)
    return log, time.monotonic() - started


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
    index = os.environ.get("PIP_INDEX_URL")
    pip = shutil.which("pip3") or shutil.which("pip")
    if not index and pip:
        found = subprocess.run([pip, "config", "get", "global.index-url"], capture_output=True,
                               text=True)  # fmt: skip
        index = found.stdout.strip() if found.returncode == 0 else ""
    return "\n".join([*lines, *([f"index-url = {index}"] if index else [])]) + "\n"


def host_ca_bundle() -> Path:
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return Path("/etc/ssl/certs/ca-certificates.crt")


def ensure_base_image(engine: Engine, image: str) -> str:
    """Make ``image`` available in the engine; say how (pulled, cached or new stand-in)."""
    # Everything the stand-in depends on: a change rebuilds it, otherwise it is reused.
    digest = hashlib.sha256("\n".join([STAND_IN_PACKAGES, *STAND_IN_EXCLUDES,
                                       host_pip_settings()]).encode())  # fmt: skip
    digest.update(host_ca_bundle().read_bytes())
    recipe = digest.hexdigest()[:16]
    label = f'{{{{index .Config.Labels "{STAND_IN_LABEL}"}}}}'
    if engine.docker("image", "inspect", "--format", label, image, check=False) == recipe:
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
        pip_conf, tarball = Path(work) / "pip.conf", Path(work) / "base.tar"
        pip_conf.write_text(host_pip_settings())
        command = [
            mmdebstrap,
            "--variant=minbase",
            f"--include={STAND_IN_PACKAGES}",
            *(f"--dpkgopt=path-exclude={pattern}" for pattern in STAND_IN_EXCLUDES),
            # The official image keeps its Python under /usr/local: a venv there gives the
            # same `python`/`pip` on PATH and a prefix pip may install into.
            '--customize-hook=chroot "$1" python3 -m venv /usr/local',
            f'--customize-hook=cp {host_ca_bundle()} "$1/etc/ssl/certs/host-ca-bundle.crt"',
            f'--customize-hook=cp {pip_conf} "$1/etc/pip.conf"',
            "bookworm",
            str(tarball),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            raise EngineError(f"mmdebstrap failed:\n{result.stderr[-2000:]}")
        path = "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
        changes = [path, "ENV LANG=C.UTF-8", f"LABEL {STAND_IN_LABEL}={recipe}", 'CMD ["python3"]']
        options = [part for change in changes for part in ("--change", change)]
        engine.docker("import", *options, str(tarball), image, timeout=300)
