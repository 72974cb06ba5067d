"""The model registry: names, overrides, config round trip, lazy module import."""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch
from torch import nn

from finetec.errors import FinetecError
from finetec.layouts import Layout, get_layout
from finetec.models import registry
from finetec.models.registry import create_model, list_models, model_options, register_model


class _Tiny(nn.Module):
    def __init__(self, num_classes: int, num_joints: int, in_channels: int, width: int):
        super().__init__()
        self.fc = nn.Linear(in_channels * num_joints, width)
        self.out = nn.Linear(width, num_classes)

    def forward(self, x, mask=None):  # (N, M, T, V, C)
        return self.out(self.fc(x.mean(dim=(1, 2)).flatten(1)))


@pytest.fixture
def tiny_registered(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))

    @register_model("test_tiny")
    def test_tiny(*, num_classes: int, layout: Layout, in_channels: int, width: int = 4,
                  dims: tuple = (1, 2)):
        return _Tiny(num_classes, layout.num_joints, in_channels, width)

    return "test_tiny"


def test_create_and_config_roundtrip(tiny_registered):
    m = create_model(tiny_registered, num_classes=5, layout="coco17", in_channels=2, width=6)
    assert m.config == {"name": "test_tiny", "num_classes": 5, "layout": "coco17", "in_channels": 2,
                        "width": 6, "dims": [1, 2]}
    json.dumps(m.config)
    assert m.out.out_features == 5 and m.fc.in_features == 2 * 17 and m.fc.out_features == 6
    m2 = create_model(**json.loads(json.dumps(m.config)))
    assert m2.config == m.config
    assert [p.shape for p in m2.parameters()] == [p.shape for p in m.parameters()]


def test_layout_object_and_custom_layout_stored_as_dict(tiny_registered):
    L = get_layout("penn13")
    m = create_model(tiny_registered, num_classes=3, layout=L, in_channels=3)
    assert m.config["layout"] == "penn13"
    d = L.to_dict()
    d["name"] = "my_penn"
    custom = Layout.from_dict(d)
    m = create_model(tiny_registered, num_classes=3, layout=custom, in_channels=3)
    assert m.config["layout"] == custom.to_dict()
    m2 = create_model(**m.config)
    assert m2.fc.in_features == 3 * 13


def test_unknown_model_lists_names(tiny_registered):
    with pytest.raises(FinetecError, match="unknown model 'nope'.*test_tiny"):
        create_model("nope", num_classes=2, layout="coco17", in_channels=2)


def test_unknown_override_lists_options(tiny_registered):
    with pytest.raises(FinetecError, match="no option.*depth.*valid options: dims, width"):
        create_model(tiny_registered, num_classes=2, layout="coco17", in_channels=2, depth=3)
    assert model_options(tiny_registered) == {"width": 4, "dims": (1, 2)}


@pytest.mark.parametrize("kw", [dict(num_classes=0), dict(num_classes=2.5), dict(in_channels=True),
                                dict(layout="no_such_layout")])
def test_bad_required_arguments(tiny_registered, kw):
    args = dict(num_classes=2, layout="coco17", in_channels=2)
    args.update(kw)
    with pytest.raises(FinetecError):
        create_model(tiny_registered, **args)


def test_duplicate_name_from_other_factory_rejected(tiny_registered):
    with pytest.raises(ValueError, match="already registered"):
        @register_model("test_tiny")
        def other(*, num_classes, layout, in_channels):  # pragma: no cover - never called
            return None


def test_factory_must_take_required_arguments(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    with pytest.raises(TypeError, match="layout"):
        @register_model("test_bad")
        def bad(*, num_classes, in_channels):  # pragma: no cover
            return None


def test_lazy_loading_skips_missing_but_raises_broken(monkeypatch):
    monkeypatch.setattr(registry, "_state", {"loaded": False, "loading": False})
    monkeypatch.setattr(registry, "MODEL_MODULES", ("finetec.models._absent_module_for_test",))
    assert isinstance(list_models(), list)  # a module that does not exist is skipped
    assert registry._state["loaded"] is True

    # a module that exists but imports something missing must raise, not be skipped
    broken = "finetec.models._broken_for_test"
    monkeypatch.setattr(registry, "_state", {"loaded": False, "loading": False})
    monkeypatch.setattr(registry, "MODEL_MODULES", (broken,))

    class _Loader:
        def create_module(self, spec):
            return None

        def exec_module(self, module):
            exec("import finetec_no_such_dependency_xyz\n", module.__dict__)

    class _Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            return importlib.util.spec_from_loader(name, _Loader()) if name == broken else None

    monkeypatch.setattr(sys, "meta_path", [_Finder] + sys.meta_path)
    monkeypatch.delitem(sys.modules, broken, raising=False)
    with pytest.raises(ModuleNotFoundError, match="finetec_no_such_dependency_xyz"):
        list_models()
    assert registry._state["loaded"] is False


def test_forward_of_registered_model(tiny_registered):
    m = create_model(tiny_registered, num_classes=4, layout="coco17", in_channels=2)
    x = torch.zeros(3, 1, 5, 17, 2)
    assert m(x).shape == (3, 4)


def test_open_kwargs_factory_records_its_overrides(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))

    @register_model("test_open")
    def test_open(*, num_classes: int, layout: Layout, in_channels: int, **opts):
        m = _Tiny(num_classes, layout.num_joints, in_channels, opts.get("width", 3))
        return m

    m = create_model("test_open", num_classes=2, layout="penn13", in_channels=2, width=5, extra=(1, 2))
    assert m.config == {"name": "test_open", "num_classes": 2, "layout": "penn13", "in_channels": 2,
                        "width": 5, "extra": [1, 2]}
    assert m.fc.out_features == 5


def test_layout_from_file_and_non_json_option(tmp_path, tiny_registered):
    d = get_layout("penn13").to_dict()
    d["name"] = "file_layout"
    path = tmp_path / "my_layout.json"
    path.write_text(json.dumps(d))
    m = create_model(tiny_registered, num_classes=2, layout=str(path), in_channels=2)
    assert m.config["layout"]["name"] == "file_layout" and m.fc.in_features == 26
    with pytest.raises(FinetecError, match="JSON-serialisable"):
        create_model(tiny_registered, num_classes=2, layout="penn13", in_channels=2, dims=object())
