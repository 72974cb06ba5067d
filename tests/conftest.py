"""Shared test fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("FINETEC_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def shared_data(name: str) -> Path:
    """Path to a dataset in ../shared/data; skips the test with a reason when it is absent."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real dataset not available: {p} (tests on real data need ../shared/data)")
    return p
