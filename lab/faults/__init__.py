"""The fault catalogue: each fault applies a change to a running lab and knows its inverse.

Names say how a failure shows itself: ``link-down`` is a carrier loss the peer sees at once;
``link-blackhole`` and ``node-crash`` are silent (only BFD or the hold timer notice).
"""

from lab.faults.catalogue import FAULTS, FaultContext, apply_fault, undo_fault

__all__ = ["FAULTS", "FaultContext", "apply_fault", "undo_fault"]
