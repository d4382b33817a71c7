"""Root conftest: enables `pytester` for the tests (pytest only honours `pytest_plugins` in
the root conftest). The prunebench plugin itself is registered by its ``pytest11`` entry point
(pyproject.toml), so it is active wherever prunebench is installed, and inert in runs that
select no benchmark case.
"""

pytest_plugins = ["pytester"]
