"""The one table format of the reports: GitHub-flavoured markdown, cells printed as given.

The cells are strings already formatted (`reports.numbers`), so tabulate must not parse them
as numbers again.
"""

from __future__ import annotations


def table(rows, headers) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
