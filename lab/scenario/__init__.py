"""Scenario files: the model of a failure timeline (``model``) and its loading against a
topology into concrete actions (``load``)."""
