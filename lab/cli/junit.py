"""A run's budget verdicts as JUnit XML (one test case per verdict), which CI systems show."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

from lab.plan.model import service_label


def subject_name(row: Mapping[str, Any]) -> str:
    """``client/service`` of a verdict or a compared row, with `` (IPv6)`` for that family."""
    service = service_label(str(row["service"]), str(row.get("family"))) \
        if row.get("service") else None
    return "/".join(str(part) for part in (row.get("client"), service) if part)


def verdict_name(verdict: Mapping[str, Any]) -> str:
    """What a verdict checks, in words: ``step 0 node-crash east-c1/echo outage_ms p95 <= 1500``."""
    who = subject_name(verdict)
    where = f"step {verdict['step']} {verdict['fault']}" if verdict.get("fault") else \
        "no matching event"
    condition = verdict.get("condition")
    check = " ".join(str(part) for part in (verdict.get("figure"), verdict.get("statistic"),
                                            condition) if part not in (None, ""))
    return " ".join(part for part in (where, who, check) if part)


def junit_xml(scenario: str, verdicts: Sequence[Mapping[str, Any]], seconds: float) -> bytes:
    failures = [v for v in verdicts if not v["pass"]]
    suite = ET.Element("testsuite", name=f"anylab.{scenario}", tests=str(len(verdicts)),
                       failures=str(len(failures)), errors="0", time=f"{seconds:.3f}")
    for verdict in verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"anylab.{scenario}",
                             name=verdict_name(verdict))
        if not verdict["pass"]:
            message = verdict.get("reason") or f"value {json.dumps(verdict.get('value'))}"
            failure = ET.SubElement(case, "failure", message=message, type="budget")
            failure.text = json.dumps(verdict, indent=1)
    ET.indent(suite)
    data: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return data
