"""Reading run directories: tables and figures (filled in by the analysis work)."""

__all__: list[str] = []
