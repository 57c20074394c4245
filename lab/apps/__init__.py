"""The long-running programs a lab runs inside its nodes: the node agent (health checks,
announcements, service proxy), the pod server, and the launcher that forks them cheaply."""
