"""The containerlab backend: the same lab as containers, deployed by real containerlab on
Docker from images built here (``images``), described by a topology file that is a pure
function of the plan (``export``). Once containerlab has made the containers and their links,
the lab is brought up as on bare namespaces (``lab.backend.bringup``): containerlab links
``/run/netns/<container>`` to each container's namespace. ``tools`` sets up what it needs:
the Docker engine, the containerlab binary and the images."""
