"""The node agent: Kubernetes readiness over local pods, the speaker (GoBGP or FRR) announcing
and withdrawing the service VIPs, and the nftables service proxy. ``python -m lab.apps.agent``."""
