"""Shell completion (argcomplete): `anylab completion bash|zsh` prints the script; the
completions themselves come from the CLI's own parser, so they never go stale: commands,
options, topology and scenario files, run directories, lab names, and the node names of a
running lab."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from argcomplete.completers import DirectoriesCompleter, FilesCompleter
from argcomplete.shell_integration import shellcode

from lab.errors import LabError

SHELLS = ("bash", "zsh")
YAML_FILES = FilesCompleter(allowednames=("yaml", "yml"))
RUN_DIRECTORIES = DirectoriesCompleter()
YAML_DESTS = {"file", "files", "scenario", "topology"}
RUN_DESTS = {"base", "new", "runs"}


def lab_names(**_kwargs: Any) -> list[str]:
    from lab.backend.names import state_labs

    with contextlib.suppress(OSError):  # the state folder is root's: nothing to offer
        return sorted(state_labs())
    return []


def node_names(parsed_args: argparse.Namespace, **_kwargs: Any) -> list[str]:
    """Nodes and pods of the lab named by --name (or the only lab)."""
    from lab.backend.labs import plan_of, resolve_name
    from lab.backend.state import load_state

    try:
        plan = plan_of(load_state(resolve_name(getattr(parsed_args, "name", None))))
    except (LabError, OSError):
        return []
    return [n.name for n in plan.nodes] + [p.name for p in plan.pods()]


def attach_completers(parser: argparse.ArgumentParser) -> None:
    """Give every argument of every command the completer its value calls for."""
    for action in parser._actions:  # argparse has no public walk over its arguments
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                attach_completers(sub)
        elif action.dest == "name":
            action.completer = lab_names  # type: ignore[attr-defined]
        elif action.dest == "node":
            action.completer = node_names  # type: ignore[attr-defined]
        elif action.dest in YAML_DESTS:
            action.completer = YAML_FILES  # type: ignore[attr-defined]
        elif action.dest in RUN_DESTS:
            action.completer = RUN_DIRECTORIES  # type: ignore[attr-defined]


def cmd_completion(args: argparse.Namespace) -> int:
    print(shellcode(["anylab"], True, args.shell))  # (executables, use_defaults, shell)
    return 0


def add_completion_command(sub: Any, fmt: type[argparse.HelpFormatter], examples: Any) -> None:
    p = sub.add_parser("completion", help="the shell completion script (bash or zsh)",
                       formatter_class=fmt,
                       description="Print the completion script for a shell: commands, "
                       "options, topology and scenario files, run directories, lab names and "
                       "the node names of a running lab complete with Tab.",
                       epilog=examples('eval "$(anylab completion bash)"   # in ~/.bashrc',
                                       'eval "$(anylab completion zsh)"    # in ~/.zshrc'))
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(handler=cmd_completion)
