"""Studies as data: TOML files that declare a benchmark matrix (DESIGN.md section 2).

The built-in profiles are the study files in this folder; a user copies one, edits it and
runs it with ``pytest bench --study FILE``. `schema` reads and validates a file (its tables
checked by `axes` and `sections` with the checks of `checks`, into the dataclasses of
`entries`), `expand` turns it into cases (`cases`: one model x method x ratio, with its id and
fingerprint, carrying the objects the study built), `params` counts each case's parameters on
the meta device, `gates` parses the gates a study or the command line declares into typed
checks, and `profiles` names the built-in studies.

May import: `bench.errors`, `bench.registry`, `bench.sources`, `bench.evaluation`,
`bench.training` and the leaves; never the harness, which runs what a study declares.
"""

from bench.studies.expand import study_cases
from bench.studies.schema import Study, builtin_names, load_study, resolve_path

__all__ = ["Study", "builtin_names", "load_study", "resolve_path", "study_cases"]
