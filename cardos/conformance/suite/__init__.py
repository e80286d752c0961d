"""The conformance tests: ``check_*.py``, one module per command family (collected by the plugin)."""
