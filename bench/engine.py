"""A private Docker engine for the tests and the benchmarks, and the image built in it.

The engine is Debian's ``dockerd`` started with its own data root, exec root, pidfile and socket,
``--bridge=none --iptables=false``: it never touches an engine the user runs, and containers use
``--network host``, so all traffic stays on loopback. Its data root lives in a cache folder
outside the checkout, so the base image and the dependency layer survive from one test run to
the next; a second run while one holds that folder gets a throw-away data root instead.

The base image, pulled or stood in for, comes from bench/stand_in.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
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


class EngineError(RuntimeError):
    """The private engine could not start, or a docker command failed."""


def cache_root() -> Path:
    """Per checkout, so two checkouts on one machine each keep their own engine cache."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    checkout = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:10]
    return base / "churn-serving" / f"docker-{checkout}"


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
    _lock: int | None = None

    @property
    def socket(self) -> Path:
        return self.exec_root / "docker.sock"

    @property
    def env(self) -> dict[str, str]:
        # The legacy builder: Debian's client has no buildx, and it needs none.
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(
            [self.client, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise EngineError(f"docker {' '.join(args[:3])}: {result.stderr.strip()}")
        return result.stdout.strip()

    def logs(self, container: str, timeout: float = 60) -> str:
        """`docker logs` of a container: its stdout (the access log) and its stderr (the rest)."""
        result = subprocess.run(
            [self.client, "logs", container],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result.stdout + result.stderr

    def start(self, timeout: float = 60) -> None:
        self.exec_root.mkdir(parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        command = [
            shutil.which("dockerd") or "dockerd",
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.exec_root / 'docker.pid'}",
            f"--host=unix://{self.socket}",
            "--bridge=none",
            "--iptables=false",
            # Its own namespaces too, should a system containerd be running and be picked up.
            "--containerd-namespace=churn-serving",
            "--containerd-plugins-namespace=churn-serving-plugins",
        ]
        log = (self.exec_root / "dockerd.log").open("w")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        up = poll(self._answers, bool, timeout, 0.2)
        if not up:
            self.stop()
            tail = (self.exec_root / "dockerd.log").read_text()[-2000:]
            raise EngineError(f"the private dockerd did not start (needs root):\n{tail}")
        # Left by an interrupted run: stopped containers and untagged images only.
        self.docker("container", "prune", "--force")
        self.docker("image", "prune", "--force")

    def _answers(self) -> bool:
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
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
        self._unmount_leftovers()
        shutil.rmtree(self.exec_root, ignore_errors=True)

    def _unmount_leftovers(self) -> None:
        """dockerd leaves its network namespace file mounted under the exec root."""
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        points = [line.split()[1] for line in mounts if len(line.split()) > 1]
        for point in sorted(points, reverse=True):
            if point.startswith(f"{self.exec_root}/"):
                subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


def start_private_engine() -> Engine:
    """Start an engine on the cached data root, or on a throw-away one if another run has it."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    lock = os.open(root / "lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        data_root = root / "data"
    except BlockingIOError:
        os.close(lock)
        lock = None
        data_root = Path(tempfile.mkdtemp(prefix="churn-docker-data-"))
    # Short, because containerd's sockets live under it (a unix socket path has ~107 bytes).
    exec_root = Path(tempfile.mkdtemp(prefix="churn-docker-"))
    engine = Engine(data_root=data_root, exec_root=exec_root, _lock=lock)
    engine.start()
    return engine


def build_context(destination: Path) -> Path:
    """The checkout as a clean clone has it: tracked and new files, nothing git ignores."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
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
