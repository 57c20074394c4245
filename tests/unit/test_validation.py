"""Topology validation: schema and cross-reference checks, with lines, paths and hints."""

from __future__ import annotations

import copy
import ipaddress
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.errors import InputIssue, TopologyError
from lab.source.yamldoc import parse_yaml_text
from lab.topology.model import Topology
from lab.topology.validate import check_files, load_topology, validate_document

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "topologies").glob("*.yaml"))

MINI: dict[str, Any] = {
    "name": "lab",
    "transits": [{"name": "east"}, {"name": "west"}],
    "wan_links": [{"between": ["east", "west"], "delay": "10ms"}],
    "sites": [
        {"name": "alpha", "uplinks": [{"transit": "east"}],
         "fabric": {"spines": 1, "leafs": 2},
         "clusters": [{"name": "alpha-k8s", "nodes": 2}]},
        {"name": "beta", "uplinks": [{"transit": "west"}],
         "clusters": [{"name": "beta-k8s", "nodes": 2}]},
    ],
    "services": [{"name": "dns", "vip": "192.0.2.53", "port": 53}],
    "clients": [{"name": "east-c1", "transit": "east"}],
}


def mini(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINI)
    data.update(changes)
    return data


def validate_text(text: str) -> Topology:
    doc, issues = parse_yaml_text(text, "t.yaml")
    if issues:
        raise TopologyError(issues)
    return validate_document(doc)


def validate_data(data: Any) -> Topology:
    return validate_text(yaml.safe_dump(data, sort_keys=False))


def issues_of(data: Any) -> list[InputIssue]:
    with pytest.raises(TopologyError) as caught:
        validate_data(data)
    return list(caught.value.issues)


def issues_of_text(text: str) -> list[InputIssue]:
    with pytest.raises(TopologyError) as caught:
        validate_text(text)
    return list(caught.value.issues)


def paths(issues: list[InputIssue]) -> list[str]:
    return [issue.path for issue in issues]


# ------------------------------------------------------------------- shipped topologies


def test_there_are_shipped_topologies() -> None:
    assert len(SHIPPED) >= 2


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_topology_validates(path: Path) -> None:
    topology, doc = load_topology(path)
    assert topology.name == path.stem
    assert doc.file == str(path)
    assert doc.line_of(["sites", 0, "name"]) is not None


def test_check_files_finds_nothing_in_shipped_topologies() -> None:
    assert check_files(SHIPPED) == []


def test_three_sites_values_are_converted() -> None:
    topology, _ = load_topology(REPO / "topologies" / "three-sites.yaml")
    assert [s.name for s in topology.sites] == ["nyc", "ams", "sin"]
    assert topology.defaults.bgp.keepalive == 3000.0
    assert topology.defaults.bgp.hold == 9000.0
    assert topology.defaults.bgp.bfd is not None
    assert topology.defaults.bgp.bfd.interval == 300.0
    assert topology.wan_links[0].delay == 38.0
    assert topology.services[0].vip == ipaddress.IPv4Address("192.0.2.53")
    assert topology.sites[0].clusters[0].leafs == "all"


def test_mini_reference_is_valid() -> None:
    assert validate_data(mini()).name == "lab"


def test_check_files_collects_issues_of_every_file(tmp_path: Path) -> None:
    good = SHIPPED[0]
    bad1 = tmp_path / "a.yaml"
    bad1.write_text("name: Bad\n", encoding="utf-8")
    bad2 = tmp_path / "b.yaml"
    bad2.write_text("- 1\n", encoding="utf-8")
    issues = check_files([bad1, good, bad2, tmp_path / "missing.yaml"])
    assert {i.file for i in issues} == {str(bad1), str(bad2), str(tmp_path / "missing.yaml")}
    assert len(issues) == 3 + 1 + 1  # name, transits, sites; the list; not found


# ----------------------------------------------------------------- documents and phases


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- a\n", "a list"), ("hello\n", "text"), ("42\n", "a number"), ("1.5\n", "a number"),
     ("true\n", "true/false"), ("~\n", "null"), ("2024-01-31\n", "a date")],
)
def test_document_must_be_a_mapping(text: str, kind: str) -> None:
    (issue,) = issues_of_text(text)
    assert issue.message == f"the document is {kind}, not a mapping"
    assert issue.line == 1
    assert issue.path == ""
    assert "two-sites-mini" in issue.hint


def test_cross_reference_checks_wait_for_a_valid_schema() -> None:
    # the unknown transit would be a cross-reference issue, but the schema fails first
    data = mini(name="Bad")
    data["sites"][0]["uplinks"][0]["transit"] = "nowhere"
    assert paths(issues_of(data)) == ["name"]


def test_all_schema_issues_at_once() -> None:
    data = mini(name="Bad", colour="red")
    data["sites"][1]["fabric"] = {"spines": 0}
    data["services"][0]["port"] = 0
    assert paths(issues_of(data)) == ["name", "sites[1].fabric.spines", "services[0].port",
                                      "colour"]


def test_issues_are_sorted_by_line() -> None:
    text = yaml.safe_dump(mini(zz_unknown=1, name="Bad"), sort_keys=False)
    issues = issues_of_text(text)
    assert [i.path for i in issues] == ["name", "zz_unknown"]
    assert issues[0].line is not None and issues[1].line is not None
    assert issues[0].line < issues[1].line


def test_error_text_lists_every_issue() -> None:
    with pytest.raises(TopologyError) as caught:
        validate_data(mini(name="Bad", colour="red"))
    text = str(caught.value)
    assert text.splitlines()[0] == "2 problems in topology input"
    assert "t.yaml:1: name: 'Bad' is not a valid name" in text


# ---------------------------------------------------------------------- line numbers


BLOCK = """\
name: lab
transits:
  - name: east
sites:
  - name: alpha
    uplinks:
      - transit: east
    clusters:
      - name: alpha-k8s
        nodes: 0
      - name: alpha-k9s
        nodes: 2
        leafs: [1, 0]
"""


def test_schema_issue_lines_for_nested_keys_and_list_items() -> None:
    issues = issues_of_text(BLOCK)
    assert [(i.line, i.path) for i in issues] == [
        (10, "sites[0].clusters[0].nodes"),
        (13, "sites[0].clusters[1].leafs[1]"),
    ]


def test_missing_key_is_reported_at_its_parent() -> None:
    text = BLOCK.replace("        nodes: 0\n", "").replace("[1, 0]", "[1]")
    (issue,) = issues_of_text(text)
    assert (issue.line, issue.path, issue.message) == (
        9, "sites[0].clusters[0].nodes", "required key 'nodes' is missing")
    assert issue.hint == "add `nodes:`"


def test_cross_reference_issue_lines() -> None:
    text = BLOCK.replace("nodes: 0", "nodes: 1").replace("[1, 0]", "[1, 9]")
    text += "clients:\n  - name: c1\n    transit: west\n"
    issues = issues_of_text(text)
    assert [(i.line, i.path) for i in issues] == [
        (13, "sites[0].clusters[1].leafs[1]"),
        (16, "clients[0].transit"),
    ]


# ---------------------------------------------------------------------------- unions


def test_union_of_list_and_all_reports_only_the_bad_items() -> None:
    data = mini()
    data["sites"][0]["clusters"][0]["leafs"] = [0, "x", 1]
    issues = issues_of(data)
    assert paths(issues) == ["sites[0].clusters[0].leafs[0]", "sites[0].clusters[0].leafs[1]"]
    assert all("'all'" not in i.message for i in issues)


@pytest.mark.parametrize("value", ["some", 3, {"a": 1}, True])
def test_union_that_fits_no_branch_is_one_issue(value: Any) -> None:
    data = mini()
    data["sites"][0]["clusters"][0]["leafs"] = value
    (issue,) = issues_of(data)
    assert issue.path == "sites[0].clusters[0].leafs"
    assert issue.message.startswith("expected a list or 'all', not ")
    assert "leaf numbers" in issue.hint


def test_service_clusters_union() -> None:
    data = mini()
    data["services"][0]["clusters"] = "alpha-k8s"
    (issue,) = issues_of(data)
    assert (issue.path, issue.message) == ("services[0].clusters",
                                           "expected a list or 'all', not text")
    assert "cluster names" in issue.hint


def test_services_clusters_all_and_list_are_valid() -> None:
    data = mini()
    data["services"][0]["clusters"] = ["alpha-k8s", "beta-k8s"]
    assert validate_data(data).services[0].clusters == ["alpha-k8s", "beta-k8s"]
    data["services"][0]["clusters"] = "all"
    assert validate_data(data).services[0].clusters == "all"


# ---------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize("key", ["x[1]", "function-after", "BfdSettings", "list[int]", "0", "a.b"])
def test_unknown_keys_that_look_like_pydantic_labels_are_reported(key: str) -> None:
    (issue,) = issues_of(mini(**{key: 1}))
    assert issue.path == key
    assert issue.message == f"unknown key {key!r}"
    assert issue.hint.startswith("allowed keys: ") or issue.hint.startswith("did you mean")


def test_unknown_key_hint_suggests_the_closest_key() -> None:
    data = mini()
    data["sites"][0]["fabric"]["spine"] = 2
    (issue,) = issues_of(data)
    assert issue.path == "sites[0].fabric.spine"
    assert issue.hint.startswith("did you mean 'spines'? allowed keys: ")


def test_unknown_key_under_bfd() -> None:
    data = mini(defaults={"bgp": {"bfd": {"intervall": "300ms"}}})
    (issue,) = issues_of(data)
    assert issue.path == "defaults.bgp.bfd.intervall"
    assert "did you mean 'interval'?" in issue.hint


# ---------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Lab", "'L' is not allowed (use lowercase)"),
        ("my_lab", "'_' is not allowed"),
        ("a;rm", "';' is not allowed"),
        ("a/b", "'/' is not allowed"),
        ("../x", "'.' is not allowed"),
        ("a b", "' ' is not allowed"),
        ("nyc\n", "'\\n' is not allowed"),  # `$` in a regex would accept the trailing newline
        ("lab-", "it must end with a letter or digit"),
        ("-lab", "it must start with a letter"),
        ("1lab", "it must start with a letter"),
        ("ĺab", "'ĺ' is not allowed"),
    ],
)
def test_bad_names_say_what_is_wrong(name: str, problem: str) -> None:
    (issue,) = issues_of(mini(name=name))
    assert issue.path == "name"
    assert issue.message == f"{name!r} is not a valid name: {problem}"
    assert "lowercase letters, digits and '-'" in issue.hint


def test_empty_and_overlong_names() -> None:
    (issue,) = issues_of(mini(name=""))
    assert issue.message == "the value is empty"
    assert "lowercase letters" in issue.hint
    (issue,) = issues_of(mini(name="a" * 64))
    assert "at most 63 characters" in issue.message


@pytest.mark.parametrize("name", ["a", "lab", "edge-1", "a-b-c", "x9", "a" * 63])
def test_good_names(name: str) -> None:
    assert validate_data(mini(name=name)).name == name


def test_name_of_a_number_is_not_text() -> None:
    data = mini()
    data["clients"][0]["name"] = 42
    (issue,) = issues_of(data)
    assert issue.message == "expected text, not a number"
    assert "lowercase letters" in issue.hint


@pytest.mark.parametrize(
    ("site", "ok"),
    [("a" * 12, True), ("a" * 13, False)],  # 2 spines, 4 leafs: '-s2' / '-l4' add 3
)
def test_site_name_length_limit_from_interface_names(site: str, ok: bool) -> None:
    data = mini()
    data["sites"][1] = {"name": site, "uplinks": [{"transit": "west"}]}
    if ok:
        validate_data(data)
        return
    (issue,) = issues_of(data)
    assert issue.path == "sites[1].name"
    assert issue.message == (f"the generated node name '{site}-s2' is 16 characters; "
                             "interface names allow 15")
    assert issue.hint == "shorten the name to at most 12 characters (node names add '-s2')"


def test_cluster_name_length_limit_depends_on_node_count() -> None:
    data = mini()
    data["sites"][0]["clusters"][0] = {"name": "abcdefghij", "nodes": 9}  # abcdefghij-n9: 13
    validate_data(data)
    data["sites"][0]["clusters"][0]["nodes"] = 999  # abcdefghij-n999: 15
    validate_data(data)
    data["sites"][0]["clusters"][0]["name"] = "abcdefghijk"  # abcdefghijk-n999: 16
    (issue,) = issues_of(data)
    assert issue.path == "sites[0].clusters[0].name"
    assert "at most 10 characters" in issue.hint


def test_transit_name_is_itself_an_interface_name() -> None:
    data = mini()
    data["clients"][0]["name"] = "c" * 16
    (issue,) = issues_of(data)
    assert issue.path == "clients[0].name"
    assert issue.message.startswith("the name 'cccccccccccccccc' is 16 characters")


def test_name_collisions_are_reported_once() -> None:
    data = mini()
    data["transits"][1]["name"] = "alpha-s1"
    data["wan_links"][0]["between"] = ["east", "alpha-s1"]
    data["sites"][1]["uplinks"][0]["transit"] = "east"
    (issue,) = issues_of(data)
    assert issue.path == "sites[0].name"
    assert issue.message == "the generated node name 'alpha-s1' is also the name of transits[1]"


def test_client_named_like_a_transit() -> None:
    data = mini()
    data["clients"][0]["name"] = "west"
    (issue,) = issues_of(data)
    assert issue.path == "clients[0].name"
    assert "transits[1]" in issue.message


def test_cluster_node_named_like_a_client() -> None:
    data = mini()
    data["clients"][0]["name"] = "beta-k8s-n2"
    (issue,) = issues_of(data)
    assert issue.path == "sites[1].clusters[0].name"
    assert "'beta-k8s-n2' is also the name of clients[0]" in issue.message


# ------------------------------------------------------------------- references, WAN


def test_single_transit_needs_no_wan_links() -> None:
    data = mini(transits=[{"name": "east"}], wan_links=[])
    data["sites"][1]["uplinks"][0]["transit"] = "east"
    validate_data(data)


def test_transits_connected_through_a_chain() -> None:
    data = mini(transits=[{"name": "a"}, {"name": "b"}, {"name": "c"}],
                wan_links=[{"between": ["c", "b"]}, {"between": ["b", "a"]}])
    data["sites"][0]["uplinks"][0]["transit"] = "a"
    data["sites"][1]["uplinks"][0]["transit"] = "c"
    data["clients"][0]["transit"] = "b"
    validate_data(data)


def test_two_islands_of_transits() -> None:
    data = mini(transits=[{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}],
                wan_links=[{"between": ["a", "b"]}, {"between": ["c", "d"]}])
    data["sites"][0]["uplinks"][0]["transit"] = "a"
    data["sites"][1]["uplinks"][0]["transit"] = "c"
    data["clients"][0]["transit"] = "a"
    issues = issues_of(data)
    assert paths(issues) == ["transits[2].name", "transits[3].name"]


def test_unknown_transit_with_no_close_match() -> None:
    data = mini()
    data["clients"][0]["transit"] = "zzz"
    (issue,) = issues_of(data)
    assert issue.message == "unknown transit 'zzz'"
    assert issue.hint == "known transits: east, west"


def test_unknown_cluster_when_there_are_no_clusters() -> None:
    data = mini()
    for site in data["sites"]:
        site["clusters"] = []
    data["services"][0]["clusters"] = ["x"]
    (issue,) = issues_of(data)
    assert issue.hint == "known clusters: (none)"


# --------------------------------------------------------------------------- timers


def bgp(**fields: Any) -> dict[str, Any]:
    return mini(defaults={"bgp": fields})


@pytest.mark.parametrize(
    "fields",
    [{"keepalive": "1s", "hold": "3s"}, {"hold": "9s"}, {"keepalive": "3s"},
     {"keepalive": "10s", "hold": "30s"}, {"hold": "90s"}, {"connect_retry": "1s"},
     {"bfd": False}, {"bfd": True}, {"bfd": {"interval": "10ms", "multiplier": 2}},
     {"bfd": {"interval": "60s"}}, {"bfd": {"enabled": False, "interval": "1ms"}},
     {"ecmp": 1}, {"ecmp": 256}],
)
def test_good_timers(fields: dict[str, Any]) -> None:
    validate_data(bgp(**fields))


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [
        ({"hold": "2s", "keepalive": "0.5s"}, "defaults.bgp.hold", "hold time 2s is below 3 s"),
        ({"hold": "0s"}, "defaults.bgp.hold", "below 3 s"),
        ({"keepalive": "2500ms"}, "defaults.bgp.keepalive", "whole seconds, not 2500 ms"),
        ({"connect_retry": "500ms"}, "defaults.bgp.connect_retry", "below 1 s"),
        ({"keepalive": "4s", "hold": "9s"}, "defaults.bgp.keepalive", "more than a third"),
        ({"hold": "6s"}, "defaults.bgp.hold", "keepalive 3s is more than a third of hold 6s"),
        ({"keepalive": "4s"}, "defaults.bgp.keepalive", "keepalive 4s is more than a third"),
        ({"bfd": {"multiplier": 1}}, "defaults.bgp.bfd.multiplier", "greater than or equal to 2"),
        ({"bfd": {"interval": "9ms"}}, "defaults.bgp.bfd.interval", "outside 10 ms - 60 s"),
        ({"bfd": {"interval": "61s"}}, "defaults.bgp.bfd.interval", "outside 10 ms - 60 s"),
        ({"bfd": {"interval": "10500us"}}, "defaults.bgp.bfd.interval", "whole milliseconds"),
        ({"ecmp": 0}, "defaults.bgp.ecmp", "greater than or equal to 1"),
        ({"hold": 9}, "defaults.bgp.hold", "9 has no unit"),
    ],
)
def test_bad_timers(fields: dict[str, Any], path: str, fragment: str) -> None:
    issues = issues_of(bgp(**fields))
    assert path in paths(issues)
    issue = next(i for i in issues if i.path == path)
    assert fragment in issue.message
    assert issue.hint


def test_fractional_keepalive_below_1s_gets_one_issue() -> None:
    (issue,) = issues_of(bgp(keepalive="500ms"))
    assert issue.message == "keepalive 500 ms is below 1 s"


def test_site_hold_is_checked_against_the_inherited_keepalive() -> None:
    data = bgp(keepalive="3s", hold="9s")
    data["sites"][1]["bgp"] = {"hold": "3s"}
    (issue,) = issues_of(data)
    assert issue.path == "sites[1].bgp.hold"
    assert issue.message == "keepalive 3s is more than a third of hold 3s"
    assert issue.hint.endswith("; keepalive 3s comes from defaults.bgp.keepalive")


def test_site_keepalive_is_checked_against_the_builtin_hold() -> None:
    data = mini()
    data["sites"][0]["bgp"] = {"keepalive": "5s"}
    (issue,) = issues_of(data)
    assert issue.path == "sites[0].bgp.keepalive"
    assert issue.hint.endswith("; hold 9s comes from the built-in default")


def test_bad_defaults_are_reported_once_not_for_every_site() -> None:
    issues = issues_of(bgp(keepalive="5s", hold="9s"))
    assert paths(issues) == ["defaults.bgp.keepalive"]


def test_site_fixing_inherited_timers_is_fine() -> None:
    data = bgp(keepalive="1s", hold="3s")
    data["sites"][0]["bgp"] = {"hold": "9s"}
    data["sites"][1]["bgp"] = {"keepalive": "1s"}
    validate_data(data)


# ----------------------------------------------------------------- values and ranges


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("delay", "10", "'10' is not a duration"),
        ("delay", 10, "10 has no unit"),
        ("delay", "9" * 400 + "ms", "is too large"),
        ("rate", "9" * 400 + "gbit", "is too large"),
        ("rate", "0mbit", "must be more than 0"),
        ("rate", 100, "100 has no unit"),
        ("loss", "101%", "outside 0-100 %"),
        ("loss", -1, "outside 0-100 %"),
        ("loss", True, "is not a percentage"),
        ("jitter", None, "None is not a duration"),
    ],
)
def test_link_property_values(field: str, value: Any, fragment: str) -> None:
    data = mini()
    data["wan_links"][0][field] = value
    (issue,) = issues_of(data)
    assert issue.path == f"wan_links[0].{field}"
    assert fragment in issue.message
    assert issue.hint.startswith("write ")


def test_link_property_values_are_converted() -> None:
    data = mini()
    data["wan_links"][0].update(delay="1.5s", jitter="500us", loss="0.5%", rate="10mbit")
    link = validate_data(data).wan_links[0]
    assert (link.delay, link.jitter, link.loss, link.rate) == (1500.0, 0.5, 0.5, 10_000_000)


@pytest.mark.parametrize(
    ("size", "pods", "ok"), [(29, 5, True), (29, 6, False), (24, 64, True), (28, 13, True)])
def test_pod_cidr_size_must_hold_the_pods(size: int, pods: int, ok: bool) -> None:
    data = mini()
    data["sites"][0]["clusters"][0].update(pod_cidr_size=size, pods_per_node=pods)
    if ok:
        validate_data(data)
    else:
        (issue,) = issues_of(data)
        assert issue.message == f"a /29 holds 5 pods, not {pods}"


def test_leaf_numbers_within_the_fabric() -> None:
    data = mini()
    data["sites"][0]["clusters"][0]["leafs"] = [1, 2]
    validate_data(data)
    data["sites"][0]["clusters"][0]["leafs"] = [2, 3, 2]
    issues = issues_of(data)
    assert [(i.path, i.message) for i in issues] == [  # in file order: `leafs:`, then items
        ("sites[0].clusters[0].leafs", "a leaf is listed twice"),
        ("sites[0].clusters[0].leafs[1]", "leaf 3 does not exist: site 'alpha' has 2 leafs"),
    ]


# ---------------------------------------------------------------- addressing, services


def test_pools_overlap() -> None:
    data = mini(addressing={"clients": "10.255.128.0/24"})
    (issue,) = issues_of(data)
    assert issue.path == "addressing.clients"
    assert "overlaps pool loopbacks (10.255.0.0/16)" in issue.message


def test_pool_with_host_bits_names_the_intended_prefix() -> None:
    (issue,) = issues_of(mini(addressing={"wan": "100.64.1.1/16"}))
    assert issue.message == "'100.64.1.1/16' has host bits set; the prefix is '100.64.0.0/16'"


def test_ipv6_pool_among_the_ipv4_pools_is_pointed_to_its_place() -> None:
    (issue,) = issues_of(mini(addressing={"wan": "fd00::1/64"}))
    assert issue.message == "'fd00::1/64' is not an IPv4 prefix"
    assert "addressing.ipv6" in issue.hint


def test_pool_just_big_enough() -> None:
    # 2 transits + (1 spine + 2 leafs) + (2 spines + 4 leafs) = 11 loopbacks
    validate_data(mini(addressing={"loopbacks": "10.255.0.0/28"}))
    (issue,) = issues_of(mini(addressing={"loopbacks": "10.255.0.0/29"}))
    assert issue.message == ("pool loopbacks (10.255.0.0/29) has 8 addresses but the topology "
                             "needs 11")


@pytest.mark.parametrize(
    ("vip", "fragment"),
    [("10.255.0.1", "inside the loopbacks pool"), ("198.18.0.9", "inside the clients pool"),
     ("2001:db8::1", "is an IPv6 address; write it as `vip6:`"),
     ("192.0.2.0/24", "is a prefix"),
     ("300.1.1.1", "is not an IP address"), ("239.1.1.1", "not a unicast address"),
     (12, "is not an IP address")],
)
def test_bad_vips(vip: Any, fragment: str) -> None:
    data = mini()
    data["services"][0]["vip"] = vip
    (issue,) = issues_of(data)
    assert issue.path == "services[0].vip"
    assert fragment in issue.message


def test_same_vip_and_port_with_another_protocol_is_fine() -> None:
    data = mini()
    data["services"].append({"name": "dns-tcp", "vip": "192.0.2.53", "protocol": "tcp",
                             "port": 53})
    validate_data(data)
    data["services"].append({"name": "dns2", "vip": "192.0.2.53", "port": 53})
    (issue,) = issues_of(data)
    assert (issue.path, issue.message) == ("services[2]",
                                           "udp/53 on 192.0.2.53 is already used by services[0]")


def test_raw_frr_lines() -> None:
    data = mini(frr_raw={"spine": ["bgp log-neighbor-changes"]})
    validate_data(data)
    data["sites"][0]["frr_raw"] = {"node": ["a", "b\nc"]}
    (issue,) = issues_of(data)
    assert issue.path == "sites[0].frr_raw.node[1]"


# ----------------------------------------------------------------- messages are friendly


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("transits", {"name": "east"}, "expected a list, not a mapping"),
        ("sites", "alpha", "expected a list, not text"),
        ("defaults", [1], "expected a mapping of `key: value` lines, not a list"),
        ("description", 5, "expected text, not a number"),
    ],
)
def test_shape_messages_do_not_leak_python_names(where: str, value: Any, message: str) -> None:
    issues = issues_of(mini(**{where: value}))
    assert issues[0].path == where
    assert issues[0].message == message
    for issue in issues:
        for jargon in ("dictionary", "instance of", "Tuple", "after validation", "BaseModel"):
            assert jargon not in issue.message


def test_wrong_shape_for_a_section_lists_its_keys() -> None:
    data = mini()
    data["sites"][0]["fabric"] = "big"
    (issue,) = issues_of(data)
    assert issue.hint == ("write `key: value` lines; allowed keys: border, border_leafs, leafs, "
                          "spines")


def test_field_hints_depend_on_the_parent() -> None:
    data = mini()
    data["sites"][0]["fabric"]["leafs"] = 500
    data["sites"][0]["clusters"][0]["leafs"] = [0]
    fabric, cluster = issues_of(data)
    assert fabric.hint == "a site has 1-128 leafs"
    assert cluster.hint.startswith("list leaf numbers")
