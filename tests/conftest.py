"""Shared fixtures: the real MNIST, prepared by `make data` (never downloaded by the tests)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# Notebook runs under test (nbval, the browser) save their figures here, not in figures/.
os.environ.setdefault("HW1_FIGURES", tempfile.mkdtemp(prefix="hw1-figures-"))

from helpers.data import DEFAULT_ROOT, MNIST, load_mnist  # noqa: E402
from tools import pdf  # noqa: E402

# Whole modules that start a browser (JupyterLab) or build a fresh environment (Colab's pip).
SLOW_MODULES = {"test_browser", "test_colab"}
# Fixtures that print with a browser, or encode the whole test set in float64 (figures).
SLOW_FIXTURES = {"browser", "notebook_inputs"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` what `make check` leaves out: those modules, and every test that needs one
    of those fixtures (besides the tests marked ``slow`` one by one)."""
    for item in items:  # nbval's notebook cells have neither a module nor fixtures
        module = getattr(getattr(item, "module", None), "__name__", "")
        if module in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def mnist() -> MNIST:
    """The full dataset from the data directory; offline (sources 2 and 3 off)."""
    return load_mnist(DEFAULT_ROOT, registry=False, download=False)


@pytest.fixture(scope="session")
def small(mnist: MNIST) -> MNIST:
    """A 256 + 128 image subset for quick training tests (two Adam steps an epoch)."""
    return MNIST(mnist.train_x[:256], mnist.train_y[:256], mnist.test_x[:128], mnist.test_y[:128])


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def browser() -> str:
    """The browser the PDF export would use; tests that print are skipped without one."""
    try:
        return pdf.which_browser()
    except (pdf.NoBrowserError, pdf.ExportError) as e:
        pytest.skip(f"no browser to print with: {e}")
