"""The netns backend (the default): a lab as named network namespaces on this machine, veths
built by one netlink worker, FRR and GoBGP daemons, servers and agents as tagged processes."""
