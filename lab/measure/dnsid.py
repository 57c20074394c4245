"""One DNS question that names the instance answering it, as anycast operators ask it: the
NSID option (RFC 5001) in an ordinary query, or a CHAOS TXT query (``hostname.bind``,
``id.server``: RFC 4892). Used where a single answer is enough (`up`'s check that every client
reaches every service, `status`); the prober sends the same questions at 1 ms in C.
"""

from __future__ import annotations

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from lab.plan.model import DnsProbePlan

EDNS_PAYLOAD = 1232  # the DNS flag day's safe UDP size


def make_query(probe: DnsProbePlan) -> dns.message.Message:
    """The query a DNS probe sends (without recursion: the servers are authoritative)."""
    if probe.identity == "chaos":
        query = dns.message.make_query(probe.name, dns.rdatatype.TXT, dns.rdataclass.CH)
    else:
        options: list[dns.edns.Option] = [dns.edns.GenericOption(dns.edns.NSID, b"")] \
            if probe.identity == "nsid" else []
        query = dns.message.make_query(probe.name, dns.rdatatype.RdataType.make(probe.rr_type),
                                       use_edns=0, payload=EDNS_PAYLOAD, options=options)
    query.flags &= ~dns.flags.RD
    return query


def answer_identity(wire: bytes, query: dns.message.Message,
                    probe: DnsProbePlan) -> tuple[str | None, str | None]:
    """(the answering instance's identity, None) for a good answer to ``query``; (None,
    what is wrong) for a failed one: its rcode, no answer, a malformed or foreign message, or
    an answer without the identity the probe asks for."""
    try:
        reply = dns.message.from_wire(wire)
    except dns.exception.DNSException as exc:
        return None, f"malformed answer ({exc.__class__.__name__})"
    if not query.is_response(reply):
        return None, "an answer to another question"
    if reply.rcode() != dns.rcode.NOERROR:
        return None, dns.rcode.to_text(reply.rcode())
    if not reply.answer:
        return None, "no answer"
    if probe.identity == "none":
        return "", None
    if probe.identity == "chaos":
        texts = [s for rrset in reply.answer if rrset.rdtype == dns.rdatatype.TXT
                 for rdata in rrset for s in rdata.strings]
        return (texts[0].decode("utf-8", "replace"), None) if texts else (
            None, "no TXT answer naming the instance")
    nsid = next((o for o in reply.options if o.otype == dns.edns.NSID), None)
    if nsid is None:
        return None, "no NSID in the answer (the server does not set one)"
    payload = nsid.to_wire() or b""
    return payload.decode("utf-8", "replace"), None


__all__ = ["answer_identity", "make_query"]
