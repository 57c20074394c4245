"""What the containerlab backend needs on this machine, set up on first use: Debian's Docker
engine (started here when it is not running), the containerlab binary built from its pinned
Go module, and the images (``lab.backend.containerlab.images``).

The engine this module starts leaves the host network alone as far as Docker allows: no
``docker0`` bridge, no iptables rules, no IP forwarding switched on (the lab's containers
need none: they run with ``network-mode: none`` and get only their lab links). A running
engine started otherwise is used as it is.

containerlab 0.79.0 refuses to deploy on a kernel without loadable-module support (no
``/proc/modules``): it checks for ``ip_tables`` there before it looks for built-in modules.
The build applies a one-line change to ``utils/kernel_module.go`` (a missing /proc/modules
means "not loaded", so the built-in check and the loader's own "no module support" path
decide, as they do on other kernels). It changes nothing on kernels that have modules.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

from lab.backend import tooling
from lab.backend.tooling import Progress, tools_dir
from lab.errors import BackendError, CommandError
from lab.netns import NETNS_DIR
from lab.proc import run

CONTAINERLAB_MODULE = "github.com/srl-labs/containerlab"
CONTAINERLAB_VERSION = "v0.79.0"
DOCKER = "/usr/bin/docker"  # Debian's client, the engine's own version
DOCKERD = "/usr/sbin/dockerd"
NSENTER = "/usr/bin/nsenter"
DOCKERD_PIDFILE = Path("/run/anylab-dockerd.pid")
DOCKERD_LOG = Path("/var/log/anylab-dockerd.log")
DOCKERD_ARGS = ("--bridge=none", "--iptables=false", "--ip6tables=false",
                "--ip-forward=false", "--ip-masq=false")
DEBIAN_PACKAGES = {DOCKERD: "docker.io", DOCKER: "docker.io", "/usr/bin/mmdebstrap": "mmdebstrap"}
ENGINE_START_S = 60.0
GO_BUILD_TIMEOUT_S = 1800.0
KERNEL_MODULE_FILE = "utils/kernel_module.go"
KERNEL_MODULE_OLD = "\tloaded, err := isKernelModuleLoadable(name)\n\tif err != nil {\n"
KERNEL_MODULE_NEW = ("\tloaded, err := isKernelModuleLoadable(name)\n"
                     "\tif os.IsNotExist(err) { // no /proc/modules: no loadable-module support\n"
                     "\t\tloaded, err = false, nil\n\t}\n\tif err != nil {\n")
# containerlab asks the Internet for a newer release on every deploy unless told not to
CLAB_ENV = {"CLAB_VERSION_CHECK": "disable"}


def containerlab_binary() -> Path:
    return tools_dir() / "bin" / f"containerlab-{CONTAINERLAB_VERSION}"


def containerlab_source() -> Path:
    return tools_dir() / "src" / f"containerlab-{CONTAINERLAB_VERSION}"


def clab_schema() -> Path:
    """The JSON schema of topology files that containerlab ships in its source."""
    return containerlab_source() / "schemas" / "clab.schema.json"


def install_packages(progress: Progress) -> None:
    """Debian's docker.io and mmdebstrap, when missing."""
    tooling.install_packages(DEBIAN_PACKAGES, progress)


def engine_running() -> bool:
    if not Path(DOCKER).exists():
        return False
    try:
        return run([DOCKER, "info", "--format", "{{.ServerVersion}}"], timeout=20,
                   check=False).returncode == 0
    except CommandError:
        return False


def start_engine(progress: Progress) -> None:
    """Start dockerd (pidfile, log) unless an engine answers already."""
    if engine_running():
        return
    progress(f"starting the Docker engine (log: {DOCKERD_LOG})")
    DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    # dockerd outlives this process: `setsid --fork` detaches it, so no child is left
    # unwaited here
    with DOCKERD_LOG.open("ab") as log:
        subprocess.run(["setsid", "--fork", DOCKERD, f"--pidfile={DOCKERD_PIDFILE}",
                        *DOCKERD_ARGS], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=subprocess.STDOUT, close_fds=True, check=True, timeout=30)
    deadline = time.monotonic() + ENGINE_START_S
    while time.monotonic() < deadline:
        if engine_running():
            return
        time.sleep(0.5)
    tail = DOCKERD_LOG.read_text(errors="replace")[-1500:]
    raise BackendError(f"the Docker engine did not start in {ENGINE_START_S:.0f} s:\n{tail}")


def _go() -> str:
    for candidate in (shutil.which("go"), "/usr/local/go/bin/go", "/usr/lib/go/bin/go"):
        if candidate and Path(candidate).exists():
            return candidate
    raise BackendError("Go is needed to build containerlab and was not found")


def build_containerlab(progress: Progress) -> Path:
    """Build the pinned containerlab into the tool folder (once)."""
    binary = containerlab_binary()
    if binary.exists():
        return binary
    progress(f"building containerlab {CONTAINERLAB_VERSION} from the Go module proxy "
             "(a few minutes, once)")
    go = _go()
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    try:
        result = run([go, "mod", "download", "-json",
                      f"{CONTAINERLAB_MODULE}@{CONTAINERLAB_VERSION}"], timeout=600, env=env)
        module_dir = Path(json.loads(result.stdout)["Dir"])
    except (CommandError, ValueError, KeyError) as exc:
        raise BackendError(f"cannot download containerlab {CONTAINERLAB_VERSION}: {exc}"
                           ) from exc
    source = containerlab_source()
    staging = source.with_name(source.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(module_dir, staging)
    for path in [staging, *staging.rglob("*")]:  # the module cache is read-only
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    patch_kernel_module_check(staging / KERNEL_MODULE_FILE)
    shutil.rmtree(source, ignore_errors=True)
    staging.rename(source)
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(binary.name + ".tmp")
    try:
        run([go, "build", "-trimpath", "-o", str(partial), "."], timeout=GO_BUILD_TIMEOUT_S,
            env=env, cwd=source)
    except CommandError as exc:
        raise BackendError(f"cannot build containerlab: {exc}") from exc
    partial.rename(binary)
    return binary


def patch_kernel_module_check(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if KERNEL_MODULE_NEW in text:
        return
    if text.count(KERNEL_MODULE_OLD) != 1:
        raise BackendError(f"{path}: the kernel-module check is not where containerlab "
                           f"{CONTAINERLAB_VERSION} has it; the patch needs a review")
    path.write_text(text.replace(KERNEL_MODULE_OLD, KERNEL_MODULE_NEW), encoding="utf-8")


def ensure_tools(progress: Progress) -> None:
    """Everything the backend needs, each step only when missing: Debian's docker.io and
    mmdebstrap, a running engine, containerlab, the images."""
    from lab.backend.containerlab.images import build_images

    install_packages(progress)
    start_engine(progress)
    build_containerlab(progress)
    build_images(progress)


def containerlab(args: list[str], timeout: float, cwd: Path | None = None,
                 netns: str | None = None) -> str:
    """Run containerlab (in network namespace ``netns``, a name under /run/netns); its
    output (stdout and stderr)."""
    env = {**os.environ, **CLAB_ENV}
    inside = [NSENTER, f"--net={NETNS_DIR / netns}", "--"] if netns else []
    try:
        result = run([*inside, str(containerlab_binary()), *args], timeout=timeout, env=env,
                     cwd=cwd)
    except CommandError as exc:
        raise BackendError(f"containerlab {' '.join(args[:1])} failed: {exc}") from exc
    return result.stdout + result.stderr


def docker(args: list[str], timeout: float = 60.0, check: bool = True) -> str:
    try:
        result = run([DOCKER, *args], timeout=timeout, check=check)
    except CommandError as exc:
        raise BackendError(f"docker {args[0]} failed: {exc}") from exc
    return result.stdout


if __name__ == "__main__":
    raise SystemExit(tooling.setup_main("containerlab", ensure_tools,
                                        lambda: str(containerlab_binary())))
