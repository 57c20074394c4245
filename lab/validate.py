"""Topology loading and validation: every problem at once, each with file, line, path and hint.

Two phases with a barrier between them, as a compiler would: the schema (pydantic) must hold
before cross-references can be checked.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lab import naming
from lab.errors import InputIssue, TopologyError
from lab.model import HINTS_BY_ERROR_TYPE, BgpSettings, Site, Topology
from lab.yamlsource import SourceDocument, read_yaml_file

MIN_HOLD_MS = 3000.0
MIN_BFD_INTERVAL_MS = 10.0

FIELD_HINTS = {
    "multiplier": "BFD declares a peer down after `multiplier` missed packets; use 2 or more "
                  "(3 is usual)",
    "ecmp": "ECMP width is the number of equal paths installed, 1-256",
    "spines": "a site has 1-16 spines",
    "leafs": "list leaf numbers (1-based), e.g. [1, 2], or 'all'",
    "port": "ports are 1-65535",
    "nodes": "a cluster has 1-999 nodes",
    "pods_per_node": "1-64 pods per node",
    "pod_cidr_size": "the per-node pod prefix length, 16-29 (Kubernetes' default is 24)",
    "speaker": "'gobgp' (kube-router model) or 'frr' (MetalLB FRR-mode model)",
    "protocol": "'udp' or 'tcp'",
    "traffic_policy": "'Local' (announce only with a ready local pod) or 'Cluster' (always)",
    "border": "'spines' (spines uplink to the WAN) or 'leafs' (dedicated border leafs)",
    "impairment_driver": "'auto', 'netem' or 'userspace'",
    "between": "two transit names, e.g. [us-east, eu-west]",
}


def load_topology(path: Path) -> tuple[Topology, SourceDocument]:
    """Read, parse and validate a topology file; raise TopologyError with every issue."""
    doc, issues = read_yaml_file(path)
    if issues:
        raise TopologyError(issues)
    return validate_document(doc), doc


def validate_document(doc: SourceDocument) -> Topology:
    if not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else type(doc.data).__name__
        raise TopologyError([doc.issue((), f"the document is a {kind}, not a mapping",
                                       "a topology is a mapping with `name:`, `transits:`, "
                                       "`sites:` ... (see topologies/two-sites-mini.yaml)")])
    try:
        topology = Topology.model_validate(doc.data)
    except ValidationError as exc:
        raise TopologyError(list(schema_issues(exc, doc, Topology))) from None
    issues = list(cross_reference_issues(topology, doc))
    if issues:
        raise TopologyError(issues)
    return topology


def schema_issues(exc: ValidationError, doc: SourceDocument,
                  root: type[BaseModel]) -> Iterator[InputIssue]:
    seen: set[tuple[str, str]] = set()
    for error in exc.errors(include_url=False):
        parts = _clean_location(error["loc"])
        message, hint = _describe(error, parts, root)
        key = (str(parts), message)
        if key in seen:
            continue
        seen.add(key)
        yield doc.issue(parts, message, hint)


def _clean_location(loc: Sequence[int | str]) -> list[str | int]:
    """Drop pydantic's union-branch labels (e.g. 'list[...]', 'literal[...]') from a location."""
    parts: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in {"function-before", "function-after",
                                                              "BfdSettings", "lax-or-strict"}):
            continue
        parts.append(part)
    return parts


def _describe(error: Any, parts: Sequence[str | int], root: type[BaseModel]) -> tuple[str, str]:
    kind = error["type"]
    field = next((p for p in reversed(parts) if isinstance(p, str)), "")
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
    hint = HINTS_BY_ERROR_TYPE.get(kind) or FIELD_HINTS.get(field, "")
    if not hint and kind in {"int_type", "int_parsing", "int_from_float"}:
        hint = "write a whole number"
    if not hint and kind in {"list_type", "tuple_type"}:
        hint = "write a YAML list, e.g. `- item` lines or `[a, b]`"
    if not hint and kind in {"model_type", "model_attributes_type", "dict_type"}:
        hint = "write a mapping of `key: value` lines"
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
    yield from _addressing(topo, doc)
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
                                f"the first one is at line {doc.line_of(first)}; names must be "
                                "unique")


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


def _unknown(name: str, known: Sequence[str], what: str, parts: Sequence[str | int],
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
                yield _unknown(uplink.transit, transits, "transit", parts, doc)
            elif uplink.transit in seen:
                yield doc.issue(parts, f"site {site.name!r} has two uplinks to {uplink.transit!r}",
                                "list each transit once per site")
            seen.add(uplink.transit)
    pairs: dict[frozenset[str], int] = {}
    for i, link in enumerate(topo.wan_links):
        for k, end in enumerate(link.between):
            if end not in transits:
                yield _unknown(end, transits, "transit", ["wan_links", i, "between", k], doc)
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
            yield _unknown(client.transit, transits, "transit", ["clients", i, "transit"], doc)
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
    """Node names double as interface names: check length and collisions across kinds."""
    owners: dict[str, list[str | int]] = {}
    candidates: list[tuple[str, list[str | int]]] = []
    for i, transit in enumerate(topo.transits):
        candidates.append((transit.name, ["transits", i, "name"]))
    for i, client in enumerate(topo.clients):
        candidates.append((client.name, ["clients", i, "name"]))
    for i, site in enumerate(topo.sites):
        fabric = site.fabric
        longest = [naming.spine_name(site.name, fabric.spines),
                   naming.leaf_name(site.name, fabric.leafs)]
        if fabric.border == "leafs":
            longest.append(naming.border_name(site.name, fabric.border_leafs))
        candidates += [(n, ["sites", i, "name"]) for n in longest]
        for j, cluster in enumerate(site.clusters):
            candidates.append((naming.k8s_node_name(cluster.name, cluster.nodes),
                               ["sites", i, "clusters", j, "name"]))
    reported: set[tuple[str | int, ...]] = set()
    for name, parts in candidates:
        if tuple(parts) in reported:
            continue
        if len(name) > naming.IFNAME_MAX:
            reported.add(tuple(parts))
            yield doc.issue(parts, f"the generated node name {name!r} is {len(name)} characters; "
                            f"interface names allow {naming.IFNAME_MAX}",
                            "use a shorter name (sites up to ~10 characters, clusters up to ~9)")
        elif name in owners and not _same_kind(owners[name], parts):
            yield doc.issue(parts, f"the node name {name!r} is also generated by "
                            f"{'.'.join(map(str, owners[name]))}", "rename one of them")
        owners.setdefault(name, parts)
    yield from _all_generated_collisions(topo, doc)


def _same_kind(a: Sequence[str | int], b: Sequence[str | int]) -> bool:
    """Two paths in the same list (e.g. two sites): their clash is reported as a duplicate."""
    return len(a) == len(b) and a[0] == b[0] and a[-1] == b[-1]


def _all_generated_collisions(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    explicit = {t.name for t in topo.transits} | {c.name for c in topo.clients}
    for i, site in enumerate(topo.sites):
        generated = [naming.spine_name(site.name, k + 1) for k in range(site.fabric.spines)]
        generated += [naming.leaf_name(site.name, k + 1) for k in range(site.fabric.leafs)]
        for j, cluster in enumerate(site.clusters):
            names = [naming.k8s_node_name(cluster.name, k + 1) for k in range(cluster.nodes)]
            clash = sorted(explicit.intersection(names))
            if clash:
                yield doc.issue(["sites", i, "clusters", j, "name"],
                                f"node name {clash[0]!r} collides with a transit or client",
                                "rename the cluster or the other node")
        clash = sorted(explicit.intersection(generated))
        if clash:
            yield doc.issue(["sites", i, "name"],
                            f"node name {clash[0]!r} collides with a transit or client",
                            "rename the site or the other node")


def _timers(bgp: BgpSettings, parts: list[str | int], doc: SourceDocument) -> Iterator[InputIssue]:
    for field in ("keepalive", "hold", "connect_retry"):
        value = getattr(bgp, field)
        if value is not None and value % 1000:
            yield doc.issue([*parts, field], f"BGP timers are whole seconds, not {value:g} ms",
                            "write e.g. '3s' or '9s'")
    if bgp.hold is not None and bgp.hold < MIN_HOLD_MS:
        yield doc.issue([*parts, "hold"], f"hold time {bgp.hold / 1000:g}s is below 3 s",
                        "BGP requires a hold time of 0 or at least 3 s (RFC 4271); use '3s' "
                        "or more")
    if bgp.keepalive is not None and bgp.keepalive < 1000:
        yield doc.issue([*parts, "keepalive"], "keepalive must be at least 1 s", "write e.g. '3s'")
    if bgp.keepalive is not None and bgp.hold is not None and bgp.keepalive * 3 > bgp.hold:
        yield doc.issue([*parts, "keepalive"],
                        f"keepalive {bgp.keepalive / 1000:g}s is more than a third of hold "
                        f"{bgp.hold / 1000:g}s", "keep keepalive <= hold / 3, e.g. 3s / 9s")
    if bgp.connect_retry is not None and bgp.connect_retry < 1000:
        yield doc.issue([*parts, "connect_retry"], "connect_retry must be at least 1 s",
                        "write e.g. '5s'")
    if bgp.bfd and bgp.bfd.enabled:
        if bgp.bfd.interval < MIN_BFD_INTERVAL_MS or bgp.bfd.interval > 60000:
            yield doc.issue([*parts, "bfd", "interval"],
                            f"BFD interval {bgp.bfd.interval:g} ms is outside 10 ms - 60 s",
                            "FRR's bfdd accepts 10 ms to 60 s; 300ms is common")
        if bgp.bfd.interval % 1:
            yield doc.issue([*parts, "bfd", "interval"], "BFD intervals are whole milliseconds",
                            "write e.g. '300ms'")


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
    pools = topo.addressing.model_dump()
    names = list(pools)
    for a_index, a in enumerate(names):
        for b in names[a_index + 1:]:
            if pools[a].overlaps(pools[b]):
                yield doc.issue(["addressing", b], f"pool {b} ({pools[b]}) overlaps pool {a} "
                                f"({pools[a]})", "give each pool its own range")
    needs = _pool_needs(topo)
    for pool, need in needs.items():
        have = pools[pool].num_addresses
        if need > have:
            yield doc.issue(["addressing", pool], f"pool {pool} ({pools[pool]}) has {have} "
                            f"addresses but the topology needs {need}", "use a larger prefix")
    for i, service in enumerate(topo.services):
        for pool, network in pools.items():
            if service.vip in network:
                yield doc.issue(["services", i, "vip"], f"VIP {service.vip} is inside the "
                                f"{pool} pool {network}",
                                "choose a VIP outside the infrastructure pools, e.g. from "
                                "192.0.2.0/24 or 203.0.113.0/24")
        if service.vip.is_loopback or service.vip.is_multicast or service.vip.is_unspecified:
            yield doc.issue(["services", i, "vip"], f"VIP {service.vip} is not a unicast address",
                            "choose a routable unicast address")


def _pool_needs(topo: Topology) -> dict[str, int]:
    routers = len(topo.transits)
    fabric_links = 0
    wan_links = len(topo.wan_links)
    pods = 0
    for site in topo.sites:
        borders = site.fabric.border_leafs if site.fabric.border == "leafs" else 0
        routers += site.fabric.spines + site.fabric.leafs + borders
        fabric_links += site.fabric.spines * (site.fabric.leafs + borders)
        uplinkers = borders or site.fabric.spines
        wan_links += uplinkers * len(site.uplinks)
        for cluster in site.clusters:
            fabric_links += cluster.nodes
            pods += cluster.nodes * 2 ** (32 - cluster.pod_cidr_size)
    return {"loopbacks": routers, "fabric": 2 * fabric_links, "wan": 2 * wan_links,
            "pods": pods, "clients": 2 * len(topo.clients)}


def _services(topo: Topology, doc: SourceDocument) -> Iterator[InputIssue]:
    clusters = [c.name for s in topo.sites for c in s.clusters]
    seen: dict[tuple[str, str, int], int] = {}
    for i, service in enumerate(topo.services):
        if service.clusters != "all":
            for k, name in enumerate(service.clusters):
                if name not in clusters:
                    yield _unknown(name, clusters, "cluster", ["services", i, "clusters", k], doc)
        elif not clusters:
            yield doc.issue(["services", i, "clusters"], "no cluster can serve this service",
                            "add a cluster to a site")
        key = (str(service.vip), service.protocol, service.port)
        if key in seen:
            yield doc.issue(["services", i], f"{service.protocol}/{service.port} on "
                            f"{service.vip} is already used by services[{seen[key]}]",
                            "give the service its own port or VIP")
        seen.setdefault(key, i)


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


def vip_pools(topo: Topology) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(f"{s.vip}/32") for s in topo.services]
