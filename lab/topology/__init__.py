"""The topology file: its pydantic model, validation (every problem at once, with file:line,
YAML path and hint), the scale-topology generator and the topology picture."""
