"""Static typing tests: mypy checks them, nothing runs them."""
