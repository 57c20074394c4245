"""Reading what users write: YAML documents with the line of every value, and the units of
durations, rates and percentages. Parse errors become InputIssues (file, line, path, hint)."""
