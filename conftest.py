"""Root conftest: loads the prunebench pytest plugin for `pytest bench` and `pytest tests`.

`pytester` is enabled here (not in tests/conftest.py) because pytest only honours
`pytest_plugins` in the root conftest.
"""

pytest_plugins = ["bench.harness.plugin", "pytester"]
