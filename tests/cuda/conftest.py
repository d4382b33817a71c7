"""The GPU check: marks every test here `cuda`, skips it without CUDA, prints and writes the table.

    PRUNEBENCH_DATA_DIR=/path/to/shared/data pytest tests/cuda -p no:cacheprovider

runs it (under 10 minutes on one H100/H200); the table goes to the terminal and to
`gpu_check.report_path()` ($PRUNEBENCH_GPU_REPORT, else results/gpu-check.md).
"""

from __future__ import annotations

import pytest
import torch

import gpu_check

NO_CUDA = ("no CUDA device: the GPU check (tests/cuda) measures bf16 perplexity, 2:4 kernels and bf16 "
           "post-training on a GPU; run `pytest tests/cuda` on a CUDA machine")


@pytest.fixture(autouse=True, scope="module")
def torch_own_threads():
    """The GPU check times its runs with torch's own CPU thread count, not the suite's one thread
    per process (tests/conftest.py)."""
    import process_helpers

    before = torch.get_num_threads()
    torch.set_num_threads(process_helpers.TORCH_OWN_THREADS or before)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/cuda/test_gpu_check.py" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.cuda)
            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason=NO_CUDA))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not gpu_check.ROWS:
        return
    text = gpu_check.render(gpu_check.ROWS, gpu_check.machine_header())
    path = gpu_check.report_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    terminalreporter.write_sep("=", "GPU check")
    terminalreporter.write_line(text)
    terminalreporter.write_line(f"written to {path}")
