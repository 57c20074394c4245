"""Measurement on one clock: probers (UDP probes, TCP flows), the FIB and session recorder,
and the figures computed from what they recorded (``metrics``)."""
