"""Resilient next-hop groups for the VIPs in routers whose role asks for them
(``defaults.ecmp_groups``): ``python -m lab.apps.ecmpgroups --spec FILE``."""
