"""The deterministic expansion of a topology into a LabPlan: nodes, interfaces, addresses, ASNs,
BGP sessions and pods (``model``), built by ``planner`` with ``addressing`` and ``naming``."""
