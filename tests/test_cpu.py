"""finetec.cpu: native bf16 detection refuses emulation with a one-line error."""
from __future__ import annotations

import pytest

from finetec import cpu
from finetec.errors import FinetecError


def test_bf16_without_native_support_names_the_option_and_the_alternative(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert not cpu.native_bf16()
    with pytest.raises(FinetecError) as e:
        cpu.require_native_bf16("--bf16")
    msg = str(e.value)
    assert "\n" not in msg and "--bf16" in msg and "fp32" in msg


def test_bf16_with_native_support(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert cpu.native_bf16()
    cpu.require_native_bf16()

