"""Topology loading and validation: every problem at once, each with file, line, path and hint.

Two phases with a barrier between them, as a compiler would: the schema (pydantic) must hold
before cross-references can be checked.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lab.errors import InputIssue, TopologyError
from lab.plan import naming
from lab.plan.model import HEALTH_PORT, RolloutPlan
from lab.plan.planner import resolve_timers
from lab.source.yamldoc import SourceDocument, format_path, read_yaml_file
from lab.topology.model import (
    HINTS_BY_ERROR_TYPE,
    BgpSettings,
    Family,
    Service,
    Site,
    Topology,
)

MIN_HOLD_MS = 3000.0
MIN_BFD_INTERVAL_MS = 10.0
MAX_BFD_INTERVAL_MS = 60000.0

FIELD_HINTS = {
    "multiplier": "BFD declares a peer down after `multiplier` missed packets; use 2 or more "
                  "(3 is usual)",
    "ecmp": "ECMP width is the number of equal paths installed, 1-256",
    "spines": "a site has 1-16 spines",
    "fabric.leafs": "a site has 1-128 leafs",
    "fabric.border_leafs": "1-8 border leafs (used with `border: leafs`)",
    "leafs": "list leaf numbers (1-based), e.g. [1, 2], or 'all'",
    "leafs_per_node": "1 (one leaf per node) or 2 (each node on a pair of leafs: 1-2, 3-4, ...)",
    "services.clusters": "list cluster names, e.g. [nyc-k8s], or 'all'",
    "asn": "an AS number 1-4294967294; leave it out to have one allocated",
    "bfd": "`bfd: false` turns BFD off; or a mapping such as {interval: 300ms, multiplier: 3}",
    "failure_threshold": "1-100 failed probes before a pod is not ready",
    "success_threshold": "1-100 passed probes before a pod is ready again",
    "port": "ports are 1-65535",
    "nodes": "a cluster has 1-999 nodes",
    "pods_per_node": "1-64 pods per node",
    "pod_cidr_size": "the per-node pod prefix length, 16-29 (Kubernetes' default is 24)",
    "pod_cidr_size6": "the per-node IPv6 pod prefix length, 48-120 (Kubernetes' default is 64)",
    "families": "a list of address families: [ipv4], [ipv6] or [ipv4, ipv6]",
    "speaker": "'kube-router' (GoBGP; also 'gobgp') or 'metallb' (FRR mode; also 'frr')",
    "announce_with": "'ready-endpoint' (announce while a local pod is ready) or "
                     "'local-endpoint' (while a local pod exists, ready or not)",
    "graceful_restart": "`graceful_restart: true` (the speaker's defaults) or a mapping such "
                        "as {restart_time: 90s, deferral_time: 360s}",
    "drain.method": "'withdraw' (the node withdraws its VIPs), 'gshut' (RFC 8326 community: "
                    "the leaf sets local preference 0) or 'prepend' (the node's AS, `prepend` "
                    "times)",
    "drain.prepend": "how many times the node prepends its AS, 1-10",
    "protocol": "'udp' or 'tcp'",
    "traffic_policy": "'Local' (announce only with a ready local pod) or 'Cluster' (always)",
    "load_balancing": "'random' (kube-proxy's pick per new flow) or 'consistent' (a table of "
                      "slots every node builds alike: a moved flow keeps its pod)",
    "border": "'spines' (spines uplink to the WAN) or 'leafs' (dedicated border leafs)",
    "impairment_driver": "'auto', 'netem' or 'userspace'",
    "backend": "'netns' (namespaces on this machine), 'containerlab' (containers on Docker) "
               "or 'mininet' (Mininet hosts)",
    "between": "two transit names, e.g. [us-east, eu-west]",
}
NAME_FIELDS = frozenset({"name", "transit", "between", "services.clusters"})
_VALIDATOR_LABELS = frozenset({"function-before", "function-after", "function-wrap",
                               "lax-or-strict"})


def load_topology(path: Path) -> tuple[Topology, SourceDocument]:
    """Read, parse and validate a topology file; raise TopologyError with every issue."""
    doc, issues = read_yaml_file(path)
    if issues:
        raise TopologyError(issues)
    return validate_document(doc), doc


def validate_document(doc: SourceDocument) -> Topology:
    if not isinstance(doc.data, dict):
        raise TopologyError([doc.issue((), f"the document is {_kind(doc.data)}, not a mapping",
                                       "a topology is a mapping with `name:`, `transits:`, "
                                       "`sites:` ... (see topologies/two-sites-mini.yaml)")])
    try:
        topology = Topology.model_validate(doc.data)
    except ValidationError as exc:
        raise TopologyError(_by_line(schema_issues(exc, doc, Topology))) from None
    issues = _by_line(cross_reference_issues(topology, doc))
    if issues:
        raise TopologyError(issues)
    return topology


def _by_line(issues: Iterable[InputIssue]) -> list[InputIssue]:
    """File order (stable, so issues on one line keep the order they were found in)."""
    return sorted(issues, key=lambda issue: issue.line if issue.line is not None else 0)


def _kind(value: object) -> str:
    """How a YAML value reads to a user: 'a list', 'a number', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, date):
        return "a date"
    return f"a {type(value).__name__}"


def schema_issues(exc: ValidationError, doc: SourceDocument,
                  root: type[BaseModel]) -> Iterator[InputIssue]:
    located = [(error, *_clean_location(error["loc"], doc.data))
               for error in exc.errors(include_url=False)]
    # A union such as `list[int] | Literal['all']` reports one error per branch. When the input
    # is a list with bad items, the items' errors are enough; when the input fits no branch,
    # the branches' errors at one place are merged into one "expected A or B" issue.
    below = {tuple(parts[:k]) for _, parts, branched in located if branched
             for k in range(len(parts))}
    groups: dict[tuple[tuple[str | int, ...], object], list[Any]] = {}
    for error, parts, branched in located:
        if branched and tuple(parts) in below:
            continue
        key = (tuple(parts), "union" if branched else id(error))
        groups.setdefault(key, []).append(error)
    seen: set[tuple[str, str]] = set()
    for (where, _), errors in groups.items():
        message, hint = _describe(errors[0], where, root)
        if len(errors) > 1:
            expected = " or ".join(dict.fromkeys(_expected(e) for e in errors))
            message = f"expected {expected}, not {_kind(errors[0]['input'])}"
        if (str(where), message) in seen:
            continue
        seen.add((str(where), message))
        yield doc.issue(where, message, hint)


def _expected(error: Any) -> str:
    kind = error["type"]
    if kind in {"list_type", "tuple_type"}:
        return "a list"
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return "a mapping"
    if kind == "literal_error":
        return str(error.get("ctx", {}).get("expected", "a listed value"))
    return str(error["msg"])


def _clean_location(loc: Sequence[int | str], data: Any) -> tuple[list[str | int], bool]:
    """Drop pydantic's union-branch and validator labels (e.g. 'list[...]', 'literal[...]')
    from a location, and say whether any were dropped. A part that is a key in the user's
    data is always kept, whatever it looks like (an unknown key may well be 'x[1]')."""
    parts: list[str | int] = []
    branched = False
    node = data
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]
        elif isinstance(part, str) and ("[" in part or part in _VALIDATOR_LABELS
                                        or part[:1].isupper()):
            branched = True
            continue
        else:
            node = None
        parts.append(part)
    return parts, branched


def _describe(error: Any, parts: Sequence[str | int], root: type[BaseModel]) -> tuple[str, str]:
    kind = error["type"]
    names = [p for p in parts if isinstance(p, str)]
    field = names[-1] if names else ""
    qualified = ".".join(names[-2:])
    if kind == "extra_forbidden":
        allowed = _allowed_keys(root, parts[:-1])
        close = difflib.get_close_matches(str(parts[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        hint = (hint + " " if hint else "") + "allowed keys: " + ", ".join(sorted(allowed))
        return f"unknown key {parts[-1]!r}", hint
    if kind == "missing":
        return f"required key {field!r} is missing", f"add `{field}:`"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind in {"too_short", "too_long"}:  # pydantic's own text only: user values stay as is
        message = message.replace(" after validation", "").replace("Tuple should", "List should")
    if kind in {"list_type", "tuple_type"}:
        message = f"expected a list, not {_kind(error['input'])}"
    elif kind in {"model_type", "model_attributes_type", "dict_type"}:
        message = f"expected a mapping of `key: value` lines, not {_kind(error['input'])}"
    elif kind == "string_type":
        message = f"expected text, not {_kind(error['input'])}"
    elif kind == "string_too_short" and error["input"] == "":
        message = "the value is empty"
    hint = (HINTS_BY_ERROR_TYPE.get(kind) or FIELD_HINTS.get(qualified)
            or FIELD_HINTS.get(field, ""))
    if kind in {"string_type", "string_too_short", "string_too_long"} and (
            field in NAME_FIELDS or qualified in NAME_FIELDS):
        hint = HINTS_BY_ERROR_TYPE["name"]
    if not hint and kind in {"int_type", "int_parsing", "int_from_float"}:
        hint = "write a whole number"
    if not hint and kind in {"bool_type", "bool_parsing"}:
        hint = "write true or false"
    if not hint and kind in {"list_type", "tuple_type"}:
        hint = "write a YAML list, e.g. `- item` lines or `[a, b]`"
    if not hint and kind in {"model_type", "model_attributes_type", "dict_type"}:
        allowed = _allowed_keys(root, parts)
        hint = ("write `key: value` lines; allowed keys: " + ", ".join(sorted(allowed))
                if allowed else "write a mapping of `key: value` lines")
    if not hint and kind in {"string_type"}:
        hint = "quote the value"
    if not hint and kind == "too_short":
        hint = "add at least one entry"
    return message, hint


def _allowed_keys(root: type[BaseModel], parts: Sequence[str | int]) -> list[str]:
    model: Any = root
    for part in parts:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        field = fields.get(part) if isinstance(fields, dict) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
    return list(model.model_fields) if isinstance(model, type) and issubclass(
        model, BaseModel) else []


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as list[Site] or Literal[False] | Bfd."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- cross-reference checks


def cross_reference_issues(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    yield from _duplicate_names(topo, doc)
    yield from _references(topo, doc)
    yield from _generated_names(topo, doc)
    yield from _timers(topo.defaults.bgp, ["defaults", "bgp"], doc)
    for i, site in enumerate(topo.sites):
        yield from _timers(site.bgp, ["sites", i, "bgp"], doc)
        yield from _site_fabric(site, i, doc)
    yield from _cluster_sessions(topo, doc)
    yield from _keepalive_vs_hold(topo, doc)
    yield from _addressing(topo, doc)
    yield from _families(topo, doc)
    yield from _services(topo, doc)
    yield from _raw_lines(topo, doc)


def _dupes(values: Iterable[tuple[str, Sequence[str | int]]], what: str,
           doc: SourceDocument) -> Iterator[InputIssue]:
    items = list(values)
    counts = Counter(name for name, _ in items)
    for name, parts in items:
        if counts[name] > 1:
            first = next(p for n, p in items if n == name)
            if list(parts) != list(first):
                yield doc.issue(parts, f"duplicate {what} name {name!r}",
                                f"the first is {format_path(first)} (line {doc.line_of(first)}); "
                                f"{what} names must be unique")


def _duplicate_names(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    yield from _dupes(((s.name, ["sites", i, "name"]) for i, s in enumerate(topo.sites)),
                      "site", doc)
    yield from _dupes(((t.name, ["transits", i, "name"]) for i, t in enumerate(topo.transits)),
                      "transit", doc)
    yield from _dupes(((c.name, ["clients", i, "name"]) for i, c in enumerate(topo.clients)),
                      "client", doc)
    yield from _dupes(((c.name, ["sites", i, "clusters", j, "name"])
                       for i, s in enumerate(topo.sites) for j, c in enumerate(s.clusters)),
                      "cluster", doc)
    yield from _dupes(((s.name, ["services", i, "name"]) for i, s in enumerate(topo.services)),
                      "service", doc)


def unknown_issue(name: str, known: Sequence[str], what: str, parts: Sequence[str | int],
             doc: SourceDocument) -> InputIssue:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    unique = sorted(set(known))
    hint += f"known {what}s: {', '.join(unique) if unique else '(none)'}"
    return doc.issue(parts, f"unknown {what} {name!r}", hint)


def _references(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    transits = [t.name for t in topo.transits]
    for i, site in enumerate(topo.sites):
        seen: set[str] = set()
        for j, uplink in enumerate(site.uplinks):
            parts: list[str | int] = ["sites", i, "uplinks", j, "transit"]
            if uplink.transit not in transits:
                yield unknown_issue(uplink.transit, transits, "transit", parts, doc)
            elif uplink.transit in seen:
                yield doc.issue(parts, f"site {site.name!r} has two uplinks to {uplink.transit!r}",
                                "list each transit once per site")
            seen.add(uplink.transit)
    pairs: dict[frozenset[str], int] = {}
    for i, link in enumerate(topo.wan_links):
        for k, end in enumerate(link.between):
            if end not in transits:
                yield unknown_issue(end, transits, "transit", ["wan_links", i, "between", k], doc)
        if link.between[0] == link.between[1]:
            yield doc.issue(["wan_links", i, "between"], "a WAN link cannot loop to itself",
                            "name two different transits")
            continue
        pair = frozenset(link.between)
        if pair in pairs:
            yield doc.issue(["wan_links", i, "between"],
                            f"duplicate WAN link {link.between[0]} - {link.between[1]}",
                            f"the first one is wan_links[{pairs[pair]}]; one link per pair")
        pairs.setdefault(pair, i)
    for i, client in enumerate(topo.clients):
        if client.transit not in transits:
            yield unknown_issue(client.transit, transits, "transit", ["clients", i, "transit"], doc)
    yield from _wan_connected(topo, doc, pairs)


def _wan_connected(topo: Topology, doc: SourceDocument,
                   pairs: dict[frozenset[str], int]) -> Iterator[InputIssue]:
    names = [t.name for t in topo.transits]
    if len(names) < 2:
        return
    reached = {names[0]}
    frontier = [names[0]]
    while frontier:
        here = frontier.pop()
        for pair in pairs:
            if here in pair:
                for other in pair - {here}:
                    if other not in reached:
                        reached.add(other)
                        frontier.append(other)
    for i, transit in enumerate(topo.transits):
        if transit.name not in reached:
            yield doc.issue(["transits", i, "name"],
                            f"transit {transit.name!r} is not connected to {names[0]!r} by "
                            "wan_links", "add a wan_links entry that joins it to the others")


def _generated_names(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    """Node names double as interface names: check their length, then collisions."""
    # (the longest node name built from a name, that name, where it is written)
    candidates: list[tuple[str, str, list[str | int]]] = []
    for i, transit in enumerate(topo.transits):
        candidates.append((transit.name, transit.name, ["transits", i, "name"]))
    for i, client in enumerate(topo.clients):
        candidates.append((client.name, client.name, ["clients", i, "name"]))
    for i, site in enumerate(topo.sites):
        fabric = site.fabric
        longest = [naming.spine_name(site.name, fabric.spines),
                   naming.leaf_name(site.name, fabric.leafs)]
        if fabric.border == "leafs":
            longest.append(naming.border_name(site.name, fabric.border_leafs))
        candidates += [(n, site.name, ["sites", i, "name"]) for n in longest]
        for j, cluster in enumerate(site.clusters):
            candidates.append((naming.k8s_node_name(cluster.name, cluster.nodes), cluster.name,
                               ["sites", i, "clusters", j, "name"]))
    reported: set[tuple[str | int, ...]] = set()
    for name, base, parts in candidates:
        if tuple(parts) in reported or len(name) <= naming.IFNAME_MAX:
            continue
        reported.add(tuple(parts))
        suffix = name[len(base):]
        limit = naming.IFNAME_MAX - len(suffix)
        if suffix:
            message = (f"the generated node name {name!r} is {len(name)} characters; "
                       f"interface names allow {naming.IFNAME_MAX}")
            hint = f"shorten the name to at most {limit} characters (node names add {suffix!r})"
        else:
            message = (f"the name {name!r} is {len(name)} characters; it is also an interface "
                       f"name, which allows {naming.IFNAME_MAX}")
            hint = f"shorten the name to at most {limit} characters"
        yield doc.issue(parts, message, hint)
    yield from _name_collisions(topo, doc)


def _name_collisions(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    """Transits, clients and generated routers/nodes share one namespace of node names.
    (Clashes within one kind are reported as duplicate names.)"""
    explicit: dict[str, list[str | int]] = {}
    for i, transit in enumerate(topo.transits):
        explicit.setdefault(transit.name, ["transits", i])
    for i, client in enumerate(topo.clients):
        other = explicit.get(client.name)
        if other is not None and other[0] == "transits":
            yield doc.issue(["clients", i, "name"],
                            f"client name {client.name!r} is also the name of "
                            f"{format_path(other)}",
                            "transits and clients share one namespace; rename one of them")
        explicit.setdefault(client.name, ["clients", i])
    for i, site in enumerate(topo.sites):
        fabric = site.fabric
        routers = [naming.spine_name(site.name, k + 1) for k in range(fabric.spines)]
        routers += [naming.leaf_name(site.name, k + 1) for k in range(fabric.leafs)]
        if fabric.border == "leafs":
            routers += [naming.border_name(site.name, k + 1) for k in range(fabric.border_leafs)]
        yield from _clash(routers, explicit, ["sites", i, "name"], "site", doc)
        for j, cluster in enumerate(site.clusters):
            nodes = [naming.k8s_node_name(cluster.name, k + 1) for k in range(cluster.nodes)]
            yield from _clash(nodes, explicit, ["sites", i, "clusters", j, "name"], "cluster", doc)


def _clash(generated: Sequence[str], explicit: dict[str, list[str | int]],
           parts: list[str | int], what: str, doc: SourceDocument) -> Iterator[InputIssue]:
    name = next((n for n in generated if n in explicit), None)
    if name is not None:
        other = format_path(explicit[name])
        yield doc.issue(parts, f"the generated node name {name!r} is also the name of {other}",
                        f"rename the {what} or {other}")


def _timers(bgp: BgpSettings, parts: list[str | int], doc: SourceDocument) -> Iterator[InputIssue]:
    for field, floor in (("keepalive", 1000.0), ("hold", MIN_HOLD_MS), ("connect_retry", 1000.0)):
        value = getattr(bgp, field)
        # values below the floor get their own message below
        if value is not None and value >= floor and value % 1000:
            yield doc.issue([*parts, field], f"BGP timers are whole seconds, not {value:g} ms",
                            "write e.g. '3s' or '9s'")
    if bgp.hold is not None and bgp.hold < MIN_HOLD_MS:
        yield doc.issue([*parts, "hold"], f"hold time {bgp.hold / 1000:g}s is below 3 s",
                        "use '3s' or more (RFC 4271: a hold time is 0 or at least 3 s, and this "
                        "lab does not support 0)")
    if bgp.keepalive is not None and bgp.keepalive < 1000:
        yield doc.issue([*parts, "keepalive"],
                        f"keepalive {bgp.keepalive:g} ms is below 1 s", "write e.g. '3s'")
    if bgp.connect_retry is not None and bgp.connect_retry < 1000:
        yield doc.issue([*parts, "connect_retry"],
                        f"connect_retry {bgp.connect_retry:g} ms is below 1 s", "write e.g. '5s'")
    if bgp.bfd and bgp.bfd.enabled:
        yield from _bfd_interval(bgp.bfd.interval, [*parts, "bfd", "interval"], doc)


def _bfd_interval(value: float, parts: list[str | int],
                  doc: SourceDocument) -> Iterator[InputIssue]:
    if value < MIN_BFD_INTERVAL_MS or value > MAX_BFD_INTERVAL_MS:
        yield doc.issue(parts, f"BFD interval {value:g} ms is outside 10 ms - 60 s",
                        "FRR's bfdd accepts 10 ms to 60 s; 300ms is common")
    elif value % 1:
        yield doc.issue(parts, "BFD intervals are whole milliseconds", "write e.g. '300ms'")


def _cluster_sessions(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    """A cluster's node-session timers, its rollout strategy, and its BFD profile: MetalLB's,
    on sessions that run BFD (the leaf's end is the node sessions' ``bgp.bfd``)."""
    for i, site in enumerate(topo.sites):
        for j, cluster in enumerate(site.clusters):
            parts: list[str | int] = ["sites", i, "clusters", j]
            yield from _timers(cluster.bgp, [*parts, "bgp"], doc)
            if RolloutPlan(cluster.rollout.max_surge,
                           cluster.rollout.max_unavailable).replaces_nothing:
                yield doc.issue([*parts, "rollout", "max_unavailable"],
                                "max_surge and max_unavailable are both 0: no pod could ever "
                                "be replaced", "allow one of them, e.g. `max_surge: 1`")
            profile = cluster.bfd_profile
            if profile is None:
                continue
            if cluster.daemon != "frr":
                yield doc.issue([*parts, "bfd_profile"],
                                f"bfd_profile is MetalLB's BFDProfile; {cluster.name}'s speaker "
                                f"is {cluster.speaker}",
                                "use `speaker: metallb`, or set the node sessions' BFD with "
                                "`bgp: {bfd: {interval: 300ms, multiplier: 3}}`")
            elif resolve_timers(topo.defaults.bgp, site.bgp, cluster.bgp).bfd is None:
                yield doc.issue([*parts, "bfd_profile"],
                                "the node sessions run no BFD (`bgp.bfd` is off), so the "
                                "leaf's end has none for the profile to talk to",
                                "remove bfd_profile, or turn BFD on for the node sessions")
            for field in ("receive_interval", "transmit_interval", "echo_interval"):
                yield from _bfd_interval(getattr(profile, field),
                                         [*parts, "bfd_profile", field], doc)


def _keepalive_vs_hold(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    """keepalive <= hold / 3, checked on the values in force: a site that sets only `hold`
    still uses the keepalive of `defaults` (or the built-in one)."""
    scopes: list[tuple[list[str | int], list[BgpSettings]]] = [
        (["defaults", "bgp"], [topo.defaults.bgp])]
    scopes += [(["sites", i, "bgp"], [topo.defaults.bgp, site.bgp])
               for i, site in enumerate(topo.sites)]
    for parts, layers in scopes:
        own = layers[-1]
        if own.keepalive is None and own.hold is None:
            continue  # inherits both: reported where they are set
        timers = resolve_timers(*layers)
        if timers.keepalive_s * 3 <= timers.hold_s:
            continue
        field = "keepalive" if own.keepalive is not None else "hold"
        origins = [f"{name} {value}s comes from {_timer_origin(name, layers, scopes[0][0])}"
                   for name, value in (("keepalive", timers.keepalive_s),
                                       ("hold", timers.hold_s))
                   if getattr(own, name) is None]
        yield doc.issue([*parts, field], f"keepalive {timers.keepalive_s}s is more than a third "
                        f"of hold {timers.hold_s}s",
                        "keep keepalive <= hold / 3, e.g. 3s / 9s"
                        + "".join(f"; {origin}" for origin in origins))


def _timer_origin(name: str, layers: Sequence[BgpSettings],
                  defaults_parts: Sequence[str | int]) -> str:
    if len(layers) > 1 and getattr(layers[0], name) is not None:
        return format_path([*defaults_parts, name])
    return "the built-in default"


def _site_fabric(site: Site, i: int, doc: SourceDocument) -> Iterator[InputIssue]:
    if site.fabric.border == "spines" and "border_leafs" in _raw_keys(doc, ["sites", i, "fabric"]):
        yield doc.issue(["sites", i, "fabric", "border_leafs"],
                        "border_leafs is only used with `border: leafs`",
                        "remove it or set `border: leafs`")
    for j, cluster in enumerate(site.clusters):
        if cluster.leafs != "all":
            for k, leaf in enumerate(cluster.leafs):
                if leaf > site.fabric.leafs:
                    yield doc.issue(["sites", i, "clusters", j, "leafs", k],
                                    f"leaf {leaf} does not exist: site {site.name!r} has "
                                    f"{site.fabric.leafs} leafs",
                                    f"use numbers 1-{site.fabric.leafs} or 'all'")
            if len(set(cluster.leafs)) != len(cluster.leafs):
                yield doc.issue(["sites", i, "clusters", j, "leafs"], "a leaf is listed twice",
                                "list each leaf once")
        usable = site.fabric.leafs if cluster.leafs == "all" else len(cluster.leafs)
        if cluster.leafs_per_node == 2 and usable < 2:
            yield doc.issue(["sites", i, "clusters", j, "leafs_per_node"],
                            f"a dual-homed node needs two leafs; cluster {cluster.name!r} has "
                            f"{usable}", "give the site (or the cluster's `leafs`) two or more "
                                         "leafs, or set `leafs_per_node: 1`")
        room = 2 ** (32 - cluster.pod_cidr_size) - 3
        if cluster.pods_per_node > room:
            yield doc.issue(["sites", i, "clusters", j, "pod_cidr_size"],
                            f"a /{cluster.pod_cidr_size} holds {max(room, 0)} pods, not "
                            f"{cluster.pods_per_node}",
                            "use a shorter prefix length (a larger pod CIDR)")
        probe = cluster.readiness
        if probe.timeout > probe.period:
            yield doc.issue(["sites", i, "clusters", j, "readiness", "timeout"],
                            "the readiness timeout is longer than its period",
                            "keep timeout <= period")


def _raw_keys(doc: SourceDocument, parts: Sequence[str | int]) -> set[str]:
    node: Any = doc.data
    for part in parts:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return set()
    return set(node) if isinstance(node, dict) else set()


def _addressing(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    v4_pools = {name: net for name, net in topo.addressing.model_dump().items() if name != "ipv6"}
    v6_pools = topo.addressing.ipv6.model_dump() if "ipv6" in topo.families else {}
    for parts, pools in ((["addressing"], v4_pools), (["addressing", "ipv6"], v6_pools)):
        yield from _pools_apart(pools, parts, doc)
    for pool, need in _pool_needs(topo).items():
        v6 = pool.endswith("6")
        name = pool.removesuffix("6") if v6 else pool
        network = (v6_pools if v6 else v4_pools).get(name)
        if network is None:
            continue
        have = network.num_addresses
        if need > have:
            parts = ["addressing", "ipv6", name] if v6 else ["addressing", name]
            yield doc.issue(parts, f"pool {format_path(parts[1:])} ({network}) has {have} "
                            f"addresses but the topology needs {need}", "use a larger prefix")
    for i, service in enumerate(topo.services):
        for field, vip, pools in (("vip", service.vip, v4_pools), ("vip6", service.vip6, v6_pools)):
            if vip is None:
                continue
            for pool, network in pools.items():
                if vip in network:
                    example = ("192.0.2.0/24 or 203.0.113.0/24" if field == "vip"
                               else "2001:db8::/32 outside the pools, e.g. 2001:db8:53::53")
                    yield doc.issue(["services", i, field], f"VIP {vip} is inside the "
                                    f"{pool} pool {network}",
                                    f"choose a VIP outside the infrastructure pools, e.g. from "
                                    f"{example}")
            if vip.is_loopback or vip.is_multicast or vip.is_unspecified or vip.is_link_local:
                yield doc.issue(["services", i, field], f"VIP {vip} is not a unicast address",
                                "choose a routable unicast address")


def _pools_apart(pools: dict[str, Any], parts: Sequence[str | int],
                 doc: SourceDocument) -> Iterator[InputIssue]:
    names = list(pools)
    for a_index, a in enumerate(names):
        for b in names[a_index + 1:]:
            if pools[a].overlaps(pools[b]):
                where = format_path([*parts[1:], b])
                yield doc.issue([*parts, b], f"pool {where} ({pools[b]}) overlaps pool "
                                f"{format_path([*parts[1:], a])} ({pools[a]})",
                                "give each pool its own range")


def _families(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    """A link may carry IPv6 only in a lab that has it (a service with a `vip6`)."""
    if "ipv6" in topo.families:
        return
    listed: list[tuple[list[str | int], list[Family] | None]] = []
    listed += [(["wan_links", i, "families"], w.families) for i, w in enumerate(topo.wan_links)]
    listed += [(["sites", i, "uplinks", j, "families"], u.families)
               for i, s in enumerate(topo.sites) for j, u in enumerate(s.uplinks)]
    listed += [(["clients", i, "families"], c.families) for i, c in enumerate(topo.clients)]
    for parts, families in listed:
        if families is not None and "ipv6" in families:
            yield doc.issue(parts, "this lab carries no IPv6: no service has an IPv6 VIP",
                            "give a service a `vip6:` (the lab becomes dual-stack) or list "
                            "only ipv4")


def _pool_needs(topo: Topology) -> dict[str, int]:
    """Addresses each pool must hold (IPv6 pools with a trailing 6)."""
    routers = len(topo.transits)
    fabric_links = 0
    wan_links = len(topo.wan_links)
    pods = pods6 = 0
    for site in topo.sites:
        borders = site.fabric.border_leafs if site.fabric.border == "leafs" else 0
        routers += site.fabric.spines + site.fabric.leafs + borders
        fabric_links += site.fabric.spines * (site.fabric.leafs + borders)
        uplinkers = borders or site.fabric.spines
        wan_links += uplinkers * len(site.uplinks)
        for cluster in site.clusters:
            fabric_links += cluster.nodes
            pods += cluster.nodes * 2 ** (32 - cluster.pod_cidr_size)
            pods6 += cluster.nodes * 2 ** (128 - cluster.pod_cidr_size6)
    needs = {"loopbacks": routers, "fabric": 2 * fabric_links, "wan": 2 * wan_links,
             "pods": pods, "clients": 2 * len(topo.clients)}
    return needs | {f"{name}6": needs[name] for name in needs if name != "pods"} | {
        "pods6": pods6}


def _services(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    clusters = [c.name for s in topo.sites for c in s.clusters]
    seen: dict[tuple[str, str, int], int] = {}
    for i, service in enumerate(topo.services):
        if service.clusters != "all":
            for k, name in enumerate(service.clusters):
                if name not in clusters:
                    yield unknown_issue(name, clusters, "cluster",
                                        ["services", i, "clusters", k], doc)
        elif not clusters:
            yield doc.issue(["services", i, "clusters"], "no cluster can serve this service",
                            "add a cluster to a site")
        for vip in service.vips:
            key = (str(vip), service.protocol, service.port)
            if key in seen:
                yield doc.issue(["services", i], f"{service.protocol}/{service.port} on "
                                f"{vip} is already used by services[{seen[key]}]",
                                "give the service its own port or VIP")
            seen.setdefault(key, i)
        yield from _workload(service, ["services", i], doc)


def _workload(service: Service, parts: list[str | int], doc: SourceDocument
              ) -> Iterator[InputIssue]:
    """A service's own server and its probe must speak one protocol."""
    if service.workload is not None and service.probe.kind == "echo":
        yield doc.issue([*parts, "probe"], "a service with its own `workload:` is probed in "
                        "its protocol; the echo probe needs the built-in server",
                        "add e.g. `probe: {dns: {name: www.example.test, identity: nsid}}`")
    for kind in ("http", "connect"):
        if getattr(service.probe, kind) is not None and service.protocol != "tcp":
            yield doc.issue([*parts, "probe", kind], f"{kind} probes are made over TCP",
                            "set `protocol: tcp`")
    if service.probe.http is not None and service.workload is None:
        yield doc.issue([*parts, "probe", "http"], "the built-in server does not speak HTTP",
                        "add a `workload:` that runs an HTTP server, or probe with "
                        "`probe: {connect: {}}`")
    if service.probe.dns is not None:
        if service.protocol != "udp":
            yield doc.issue([*parts, "probe", "dns"], "DNS probes are sent over UDP",
                            "set `protocol: udp`")
        if service.workload is None:
            yield doc.issue([*parts, "probe", "dns"], "the built-in server answers echo probes "
                            "only", "add a `workload:` that runs a DNS server, or remove "
                            "`probe:`")
    if service.workload is not None and service.protocol == "tcp" \
            and service.port == HEALTH_PORT:
        yield doc.issue([*parts, "port"], f"port {HEALTH_PORT} is the pods' health port "
                        "(the built-in server's)", "choose another port")


def _raw_lines(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    sources: list[tuple[list[str | int], Any]] = [(["frr_raw"], topo.frr_raw)]
    sources += [(["sites", i, "frr_raw"], s.frr_raw) for i, s in enumerate(topo.sites)]
    for parts, raw in sources:
        for role, lines in raw.model_dump().items():
            for k, line in enumerate(lines):
                if "\n" in line or "\r" in line:
                    yield doc.issue([*parts, role, k], "a raw FRR line contains a line break",
                                    "give each configuration line its own list item")


def check_files(paths: Sequence[Path]) -> list[InputIssue]:
    """Validate several files, returning every issue of every file."""
    issues: list[InputIssue] = []
    for path in paths:
        try:
            load_topology(path)
        except TopologyError as exc:
            issues.extend(exc.issues)
    return issues
