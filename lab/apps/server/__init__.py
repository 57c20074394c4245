"""The anycast server of a pod: answers on the service VIPs with its identity (site, cluster,
node, pod). ``python -m lab.apps.server``."""
