"""Every daemon's configuration from a LabPlan: FRR (with its routing policy), GoBGP, the
nftables service proxy; decisions in Python, Jinja2 templates only print; ``check`` runs
the daemons' own configuration checkers."""
