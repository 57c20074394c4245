"""`anylab images` and `anylab export`: the containerlab backend's images and topology files."""

from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath
from typing import Any

from rich.console import Console
from rich.table import Table

from lab import pipeline
from lab.backend.names import check_lab_name
from lab.errors import InputError, InputIssue

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def cmd_images(args: argparse.Namespace) -> int:
    from lab.backend.containerlab import images, tools

    if args.action == "build":
        with err.status("images", spinner="dots") as spinner:
            def progress(message: str) -> None:
                spinner.update(message)
                err.log(message)

            tools.install_packages(progress)
            tools.start_engine(progress)
            tags = images.build_images(progress, force=args.force)
        for role, tag in tags.items():
            out.print(f"{role:8} {tag}")
        return 0
    table = Table(title="anycast-lab images", title_justify="left")
    for column in ("image", "role", "size", "created"):
        table.add_column(column)
    current = set(images.role_tags().values()) | {images.base_tag()}
    for image in images.list_images():
        mark = "" if image.tag in current else " (stale)"
        table.add_row(image.tag + mark, image.role, image.size, image.created)
    out.print(table)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lab.backend import workloads
    from lab.backend.containerlab import images
    from lab.backend.containerlab.deploy import write_export
    from lab.backend.containerlab.split import check_hosts
    from lab.backend.names import lab_dir

    plan, rendered = pipeline.render(Path(args.file))
    lab = check_lab_name(args.name or plan.topology)
    tags = images.lab_tags(workloads.packages(plan))
    tags.update(_image_overrides(args.image, tags))
    folder = Path(args.output)
    lab_root = PurePosixPath(lab_dir(lab))
    hosts = check_hosts(args.split.split(",")) if args.split else []
    path = write_export(lab, plan, folder, tags, lab_root, emulated=not args.netem,
                        hosts=hosts)
    for node, files in rendered.files.items():
        node_folder = folder / "nodes" / node
        node_folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (node_folder / name).write_text(text, encoding="utf-8")
    if hosts:
        for index, host in enumerate(hosts, 1):
            out.print(f"host {index} ({host}): {folder / f'{lab}-h{index}.clab.yml'}")
        out.print(f"the node folders beside them: {folder / 'nodes'}, {folder / 'pods'}")
    else:
        out.print(f"wrote {path} and the node folders beside it")
    return 0


def _image_overrides(pairs: list[str], roles: dict[str, str]) -> dict[str, str]:
    overrides, issues = {}, []
    for pair in pairs:
        role, _, image = pair.partition("=")
        if role not in roles or not image:
            issues.append(InputIssue("--image", None, pair, f"not ROLE=IMAGE with a role of "
                                     f"{', '.join(roles)}", "e.g. --image router=frr:8.4"))
            continue
        overrides[role] = image
    if issues:
        raise InputError(issues)
    return overrides


def add_container_commands(sub: Any, fmt: type[argparse.HelpFormatter], examples: Any) -> None:
    p = sub.add_parser("images", help="the containerlab backend's images: build or list",
                       formatter_class=fmt,
                       description="Build the images from Debian's packages and the project's "
                       "programs (only those whose inputs changed), or list them.",
                       epilog=examples("anylab images build", "anylab images list"))
    p.add_argument("action", choices=["build", "list"])
    p.add_argument("--force", action="store_true", help="rebuild every image")
    p.set_defaults(handler=cmd_images)

    p = sub.add_parser("export", help="write a lab as a containerlab topology",
                       formatter_class=fmt,
                       description="Write LAB.clab.yml and every node's files into DIR: the "
                       "topology `anylab up --backend containerlab` deploys.",
                       epilog=examples("anylab export containerlab topologies/three-sites.yaml "
                                       "-o build/clab",
                                       "anylab export containerlab topologies/two-sites-mini.yaml"
                                       " -o build/mini --image router=quay.io/frrouting/frr:8.4.4"))
    p.add_argument("format", choices=["containerlab"])
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--name", help="lab name (default: the topology's name)")
    p.add_argument("--image", action="append", default=[], metavar="ROLE=IMAGE",
                   help="use IMAGE for a role (router, node, pod, client)")
    p.add_argument("--split", metavar="HOST,HOST[,...]",
                   help="one topology file per host (sites go to the hosts in turn), joined "
                   "by containerlab vxlan links to these addresses (docs/containerlab.md)")
    p.add_argument("--netem", action="store_true",
                   help="links keep their delays by netem on the nodes (machines with "
                   "sch_netem) instead of going through the link emulator node")
    p.set_defaults(handler=cmd_export)
