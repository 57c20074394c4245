"""The images of containerlab labs, built here from Debian's packages (no registry is needed).

One base, ``anylab-base``: Debian bookworm (minbase) with FRR, GoBGP, iproute2, nftables,
conntrack and Python, made by ``mmdebstrap --format=tar`` and ``docker import`` (about a
minute, once). Four role images on top of it, each a thin layer:

- ``anylab-router``: FRR routers (leaf, spine, transit): the base as it is;
- ``anylab-node``: cluster nodes: GoBGP or FRR as the BGP speaker, bfdd, the node agent
  (the project's ``lab`` package in ``/opt/anylab``);
- ``anylab-pod``: the pods' anycast server (the ``lab`` package, which checks the pod's spec,
  and the C server it starts, ``/opt/anylab/bin/podserver``);
- ``anylab-client``: clients, with the prober (``/opt/anylab/bin/prober``) and the ``lab``
  package.

A lab whose services run their own servers (``workload.packages``, e.g. NSD or nginx) gets
a base of its own with those Debian packages added, and its ``node`` and ``pod`` images on
that base (``lab_images``): the pods run the servers, the nodes' agents run ``exec``
readiness checks with the same programs. One such base per set of packages, built once.

Each tag is a hash of its inputs (suite and packages for the base; the base's tag and the
files added for a role), so ``build_images`` rebuilds only what changed. Every container
idles in a shell that ends on SIGTERM; the lab starts the programs in it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.backend.containerlab.tools import DOCKER, docker
from lab.errors import BackendError, CommandError
from lab.proc import run

Progress = Callable[[str], None]

DEBIAN_SUITE = "bookworm"
BASE_PACKAGES = ("frr", "gobgpd", "iproute2", "nftables", "conntrack", "ethtool", "procps",
                 "iputils-ping", "python3", "python3-jinja2")
IDLE_COMMAND = ["/bin/sh", "-c", "trap exit TERM; while :; do sleep 3600 & wait; done"]
IMAGE_LABEL = "anylab.image"
INPUTS_LABEL = "anylab.inputs"
IN_IMAGE_ROOT = "/opt/anylab"  # the project's programs inside the images
IN_IMAGE_PYTHON = "/usr/bin/python3"
IN_IMAGE_SERVER = f"{IN_IMAGE_ROOT}/bin/podserver"  # the C pod server (lab.apps.server)
IMAGE_PYTHON_VERSION = (3, 11)  # Debian bookworm's
ROLES = ("router", "node", "pod", "client")
PACKAGE_ROLES = frozenset({"node", "pod", "client"})  # those that carry the lab package
WORKLOAD_ROLES = ("node", "pod")  # on the base with the workloads' packages
MMDEBSTRAP_TIMEOUT_S = 900.0
KEEP_OLDER_BUILDS = 3  # per role, beside the current one
BUILD_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    role: str
    size: str
    created: str


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:12]


def base_tag(extra: Sequence[str] = ()) -> str:
    """The base image's tag; with ``extra`` Debian packages, the tag of a base with them."""
    inputs = [DEBIAN_SUITE.encode(), *(p.encode() for p in BASE_PACKAGES),
              json.dumps(IDLE_COMMAND).encode()]
    if extra:
        inputs += [b"extra", *(p.encode() for p in sorted(set(extra)))]
    return f"anylab-base:{_digest(inputs)}"


def _package_files() -> list[Path]:
    root = Path(__file__).resolve().parents[2]  # the lab package
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".py", ".j2"}
                  and "__pycache__" not in p.parts)


def _role_files(role: str) -> dict[str, Path]:
    """Files a role image adds: path inside /opt/anylab -> file here."""
    files: dict[str, Path] = {}
    if role in PACKAGE_ROLES:
        package_root = Path(__file__).resolve().parents[3]
        files.update({str(p.relative_to(package_root)): p for p in _package_files()})
    if role == "client":
        from lab.measure.probe.build import ensure_prober_built

        files["bin/prober"] = ensure_prober_built()
    if role == "pod":
        from lab.apps.server.build import ensure_server_built

        files[IN_IMAGE_SERVER.removeprefix(IN_IMAGE_ROOT + "/")] = ensure_server_built()
    return files


def role_tag(role: str, base: str | None = None) -> str:
    files = _role_files(role)
    inputs = [(base or base_tag()).encode(), role.encode()]
    for name in sorted(files):
        inputs += [name.encode(), files[name].read_bytes()]
    return f"anylab-{role}:{_digest(inputs)}"


def role_tags() -> dict[str, str]:
    return {role: role_tag(role) for role in ROLES}


def lab_tags(extra: Sequence[str]) -> dict[str, str]:
    """The images of a lab whose workloads need the Debian packages ``extra`` (none: the
    role images)."""
    tags = role_tags()
    if extra:
        base = base_tag(extra)
        tags.update({role: role_tag(role, base) for role in WORKLOAD_ROLES})
    return tags


def image_exists(tag: str) -> bool:
    try:
        return run([DOCKER, "image", "inspect", tag], timeout=30,
                   check=False).returncode == 0
    except CommandError:
        return False


def build_images(progress: Progress, force: bool = False) -> dict[str, str]:
    """Build the base and the role images that are missing (all with ``force``)."""
    base = base_tag()
    if force or not image_exists(base):
        _build_base(base, progress)
    tags = role_tags()
    for role, tag in tags.items():
        if force or not image_exists(tag):
            progress(f"building image {tag}")
            _build_role(role, tag, base)
    _remove_stale({base, *tags.values()})
    return tags


def lab_images(extra: Sequence[str], progress: Progress) -> dict[str, str]:
    """The lab's images (``lab_tags``), those with the workloads' packages built when
    missing (the role images are ``build_images``')."""
    tags = lab_tags(extra)
    if not extra:
        return tags
    base = base_tag(extra)
    if not image_exists(base):
        _build_base(base, progress, extra)
    for role in WORKLOAD_ROLES:
        if not image_exists(tags[role]):
            progress(f"building image {tags[role]}")
            _build_role(role, tags[role], base)
    return tags


def missing_programs(tag: str, programs: Sequence[str]) -> list[str]:
    """Those of ``programs`` (names or absolute paths) that the image does not have."""
    script = "; ".join(f"command -v {shlex.quote(p)} >/dev/null || echo {shlex.quote(p)}"
                       for p in programs)
    output = docker(["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", tag,
                     "-c", script], timeout=BUILD_TIMEOUT_S)
    return [line for line in output.splitlines() if line]


def _remove_stale(current: set[str]) -> None:
    """Builds of the project's images older than the newest few of each role (another
    checkout of the project may be using those), unless a container still uses them
    (Docker refuses those: they go at a later build)."""
    kept: dict[str, int] = {}
    stale = []
    for image in list_images():  # newest first
        if image.tag in current:
            continue
        kept[image.role] = kept.get(image.role, 0) + 1
        if kept[image.role] > KEEP_OLDER_BUILDS:
            stale.append(image.tag)
    if stale:
        docker(["rmi", *stale], timeout=BUILD_TIMEOUT_S, check=False)


def _build_base(tag: str, progress: Progress, extra: Sequence[str] = ()) -> None:
    added = f" and the workloads' {', '.join(extra)}" if extra else ""
    progress(f"building image {tag} from Debian's packages{added} (mmdebstrap: about a "
             "minute)")
    with tempfile.TemporaryDirectory(prefix="anylab-image-") as scratch:
        tarball = Path(scratch) / "rootfs.tar"
        try:
            run(["mmdebstrap", "--variant=minbase",
                 "--include=" + ",".join((*BASE_PACKAGES, *extra)),
                 "--format=tar", DEBIAN_SUITE, str(tarball)], timeout=MMDEBSTRAP_TIMEOUT_S)
        except CommandError as exc:
            hint = (f" (hint: the services' `workload.packages` must be Debian {DEBIAN_SUITE} "
                    f"package names; given: {', '.join(extra)})") if extra else ""
            raise BackendError(f"cannot build the base image: {exc}{hint}") from exc
        docker(["import", "--change", f"CMD {json.dumps(IDLE_COMMAND)}",
                "--change", f"LABEL {IMAGE_LABEL}=base {INPUTS_LABEL}={tag.split(':')[1]}",
                str(tarball), tag], timeout=BUILD_TIMEOUT_S)


def _build_role(role: str, tag: str, base: str) -> None:
    """A thin layer on the base (Docker's classic builder: a local base, no network)."""
    with tempfile.TemporaryDirectory(prefix="anylab-image-") as scratch:
        context = Path(scratch)
        for name, source in _role_files(role).items():
            target = context / "opt" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        (context / "opt").mkdir(exist_ok=True)
        _compile(context / "opt")
        (context / "Dockerfile").write_text(
            f"FROM {base}\n"
            f"COPY opt {IN_IMAGE_ROOT}\n"
            f"ENV PYTHONPATH={IN_IMAGE_ROOT}\n"
            f"LABEL {IMAGE_LABEL}={role} {INPUTS_LABEL}={tag.split(':')[1]}\n"
            f"CMD {json.dumps(IDLE_COMMAND)}\n", encoding="utf-8")
        env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        try:
            run([DOCKER, "build", "--quiet", "--tag", tag, str(context)],
                timeout=BUILD_TIMEOUT_S, env=env)
        except CommandError as exc:
            raise BackendError(f"cannot build image {tag}: {exc}") from exc


def _compile(folder: Path) -> None:
    """Byte-compile the Python files for the image's interpreter (the same 3.11 bytecode as
    this one): without it every container compiles the modules it imports on every start,
    dozens of times per `up`. Hash-based, unchecked: the image never changes its sources."""
    if not any(folder.rglob("*.py")):
        return
    if sys.version_info[:2] != IMAGE_PYTHON_VERSION:
        return  # another bytecode: the containers compile for themselves
    try:
        run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode",
             "unchecked-hash", str(folder)], timeout=BUILD_TIMEOUT_S)
    except CommandError as exc:
        raise BackendError(f"cannot byte-compile the image's programs: {exc}") from exc


def list_images() -> list[ImageInfo]:
    """The project's images on this machine (newest first)."""
    lines = docker(["images", "--filter", f"label={IMAGE_LABEL}", "--format",
                    "{{json .}}"]).splitlines()
    images = []
    for line in lines:
        item = json.loads(line)
        images.append(ImageInfo(f"{item['Repository']}:{item['Tag']}",
                                item["Repository"].removeprefix("anylab-"),
                                item["Size"], item["CreatedSince"]))
    return images
