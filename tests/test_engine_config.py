"""Config loading: defaults, YAML sections, typed overrides, unknown keys, path resolution."""
from __future__ import annotations

from pathlib import Path

import pytest

from finetec.engine.config import Config, apply_overrides, load_config, parse_override, save_config
from finetec.errors import FinetecError


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_and_sections(tmp_path):
    p = write(tmp_path, """
name: demo
seed: 3
data: {path: synthetic:ntu25, val_fraction: 0.2}
pipeline: {clip_len: 32, level: severe, filler: linear, features: [joint, bone]}
model: {name: stgcnpp, base_channels: 16}
optim: {lr: 1, epochs: 4}
""")
    cfg = load_config(p)
    assert cfg.name == "demo" and cfg.seed == 3
    assert cfg.data.path == "synthetic:ntu25" and cfg.data.val_fraction == 0.2
    assert cfg.pipeline.clip_len == 32 and cfg.pipeline.features == ["joint", "bone"]
    assert cfg.model.name == "stgcnpp" and cfg.model.params == {"base_channels": 16}
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)  # int accepted for a float
    assert cfg.optim.momentum == 0.9 and cfg.optim.nesterov is True  # defaults kept
    assert cfg.pipeline_kwargs()["features"] == ("joint", "bone")
    d = cfg.to_dict()
    assert d["model"] == {"name": "stgcnpp", "base_channels": 16}
    assert Config.from_dict(d) == cfg


def test_overrides_parse_yaml_values():
    cfg = apply_overrides(Config(), ["optim.lr=0.05", "pipeline.features=[joint, motion]",
                                     "model.base_channels=8", "data.max_persons=2", "optim.grad_clip=null",
                                     "runtime.precision=bf16", "model.name=ctrgcn"])
    assert cfg.optim.lr == 0.05
    assert cfg.pipeline.features == ["joint", "motion"]
    assert cfg.model.params["base_channels"] == 8 and cfg.model.name == "ctrgcn"
    assert cfg.data.max_persons == 2 and cfg.optim.grad_clip is None and cfg.runtime.precision == "bf16"
    assert parse_override("a.b=") == (["a", "b"], None)


def test_precision_values_and_the_former_amp_switch():
    assert Config().runtime.precision == "auto" and Config().runtime.compile is False
    with pytest.raises(FinetecError, match="runtime.precision must be one of auto, fp32, bf16"):
        apply_overrides(Config(), ["runtime.precision=fp16"])
    # configs written before runtime.precision: amp false = fp32, amp true = the default
    assert apply_overrides(Config(), ["runtime.amp=false"]).runtime.precision == "fp32"
    assert apply_overrides(Config(), ["runtime.amp=true"]).runtime.precision == "auto"
    assert "amp" not in Config().to_dict()["runtime"]


@pytest.mark.parametrize("override, words", [
    ("optim.lrr=0.1", "optim.lrr"),
    ("optimizer.lr=0.1", "optimizer"),
    ("optim.epochs=two", "optim.epochs"),
    ("optim.nesterov=3", "optim.nesterov"),
    ("task=detection", "task"),
    ("optim.name=rmsprop", "optim.name"),
    ("noequals", "key.sub=value"),
    ("optim.lr.x=1", "optim.lr.x"),
])
def test_bad_overrides(override, words):
    with pytest.raises(FinetecError) as e:
        apply_overrides(Config(), [override])
    assert words in str(e.value) and e.value.path == "--set"


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    p = write(tmp_path, "optim: {lr: 0.1, epoch: 3}\n")
    with pytest.raises(FinetecError) as e:
        load_config(p)
    assert e.value.path == str(p) and "optim.epoch" in e.value.problem


def test_bad_files(tmp_path):
    with pytest.raises(FinetecError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(FinetecError, match="YAML"):
        load_config(write(tmp_path, "a: [1, 2\n", "bad.yaml"))
    with pytest.raises(FinetecError, match="mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n", "list.yaml"))


def test_relative_data_path_resolution(tmp_path, monkeypatch):
    cfgdir = tmp_path / "configs"
    cfgdir.mkdir()
    (cfgdir / "data.finetec.npz").write_bytes(b"")
    p = write(cfgdir, "data: {path: data.finetec.npz}\n")
    monkeypatch.chdir(tmp_path)
    assert Path(load_config(p).data.path) == (cfgdir / "data.finetec.npz").resolve()   # config's folder
    (tmp_path / "data.finetec.npz").write_bytes(b"")
    assert Path(load_config(p).data.path) == (tmp_path / "data.finetec.npz").resolve()  # CWD first
    assert load_config(p, ["data.path=elsewhere.npz"]).data.path == "elsewhere.npz"   # not found: as given
    assert load_config(None, ["data.path=synthetic:coco17"]).data.path == "synthetic:coco17"


def test_save_roundtrip(tmp_path):
    cfg = apply_overrides(Config(), ["model.base_channels=8", "optim.epochs=2"])
    save_config(cfg, tmp_path / "out.yaml")
    again = load_config(tmp_path / "out.yaml")
    assert again.to_dict() == cfg.to_dict()


def test_repository_configs_load():
    root = Path(__file__).resolve().parents[1] / "configs"
    mine = sorted(p for pat in ("stgcn*.yaml", "ctrgcn*.yaml") for p in root.glob(pat))
    assert len(mine) >= 5, f"expected the repository's GCN configs in {root}, found {len(mine)}"
    for p in mine:
        cfg = load_config(p)
        assert cfg.name == p.stem, f"{p.name}: name should match the file name"


def test_pipeline_section_mirrors_pipeline_config():
    """The config's pipeline section is the YAML face of PipelineConfig: same names, same defaults
    (max_persons comes from data.max_persons)."""
    import dataclasses

    from finetec.data.pipeline import PipelineConfig
    from finetec.engine.config import PipelineSection

    section = {f.name: getattr(PipelineSection(), f.name) for f in dataclasses.fields(PipelineSection)}
    target = {f.name: getattr(PipelineConfig(), f.name) for f in dataclasses.fields(PipelineConfig)}
    assert set(target) - set(section) == {"max_persons"}
    assert set(section) <= set(target)
    for name, value in section.items():
        want = target[name]
        assert (tuple(value) if isinstance(value, list) else value) == want, name
