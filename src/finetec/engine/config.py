"""Experiment configuration: typed dataclasses with defaults, loaded from YAML.

A config file holds any subset of these sections (everything else takes its default)::

    name: stgcnpp_j_t64_nw-ucla_severe
    task: classification            # or completion
    seed: 0
    data:     {path, format, train_split, test_split, val_fraction, max_persons}
    pipeline: {clip_len, level, pattern, mixed, mixed_levels, filler, features, normalize, align_view,
              augment, flip_prob}
    model:    {name, ...overrides passed to create_model}
    optim:    {name, lr, momentum, nesterov, weight_decay, epochs, warmup_epochs, batch_size,
               label_smoothing, grad_clip}
    runtime:  {device, precision, compile, num_workers, log_every, eval_every, tensorboard, sync_bn,
               freeze_bn, threads, checkpoint_every}

Command-line overrides are ``key.sub=value`` strings; each value is parsed with
``yaml.safe_load`` (so ``optim.lr=0.05`` is a float, ``pipeline.features=[joint,bone]`` a list).
Unknown keys raise :class:`FinetecError` naming the file (or ``--set``) and the key. The
``model`` section is open: every key except ``name`` is passed to ``create_model``, which
rejects what the model does not know.

``runtime.amp`` (a boolean, before ``runtime.precision`` existed) is still read: ``false`` is
``precision: fp32``, ``true`` the default ``auto``.

Relative ``data.path`` values are resolved against the current directory first, then against
the config file's folder.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from finetec.data.pipeline import PipelineConfig
from finetec.engine.device import PRECISIONS
from finetec.errors import FinetecError
from finetec.fileio import write_text_atomic

TASKS = ("classification", "completion")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class DataConfig:
    """Where the clips come from and which splits are used."""

    path: str = "synthetic:coco17"   # anything finetec.data.open_dataset accepts
    format: str | None = None        # force a reader format
    options: dict[str, Any] = field(default_factory=dict)   # reader options, as -o KEY=VALUE (layout: ...)
    train_split: str = "train"
    test_split: str = "test"
    val_fraction: float = 0.1        # carved from train_split, stratified by class, from seed
    max_persons: int | None = None   # pad/cut persons (default: the dataset's maximum)
    pool: list[str] = field(default_factory=list)  # task completion: more datasets whose training clips join
                                                   # (mapped onto the main layout; finetec.data.pool)


def _pipeline_section() -> type:
    """The config file's ``pipeline`` section, made from :class:`finetec.data.pipeline.PipelineConfig`
    (the one definition of the pipeline's options): its fields and defaults, as lists where it has
    tuples (YAML), without ``max_persons`` (set by ``data.max_persons``)."""
    hints = typing.get_type_hints(PipelineConfig)
    specs = []
    for f in dataclasses.fields(PipelineConfig):
        if f.name == "max_persons":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, tuple):
            specs.append((f.name, list[str], field(default_factory=lambda d=default: list(d))))
        else:
            specs.append((f.name, hints[f.name], field(default=default)))
    section = dataclasses.make_dataclass("PipelineSection", specs)
    section.__module__ = __name__
    section.__doc__ = "The config's ``pipeline`` section: the fields of PipelineConfig (see _pipeline_section)."
    return section


PipelineSection = _pipeline_section()


@dataclass
class ModelSection:
    """``name`` of a registered model plus free-form overrides for ``create_model``."""

    name: str = "stgcnpp"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "sgd"                # sgd (Nesterov) | adam | adamw
    lr: float = 0.1                  # peak learning rate, reached after warm-up
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    epochs: int = 30
    warmup_epochs: float = 0.0       # linear warm-up, then cosine decay to 0 (per step)
    batch_size: int = 32             # GLOBAL batch, split across DDP ranks
    label_smoothing: float = 0.0
    grad_clip: float | None = None   # max global gradient norm


@dataclass
class RuntimeConfig:
    device: str = "auto"             # auto | cpu | cuda
    num_workers: int = 0             # DataLoader workers per process
    precision: str = "auto"          # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 (finetec.engine.device)
    compile: bool = False            # torch.compile the training forward/backward (finetec.engine.train)
    log_every: int = 20              # steps between log lines
    eval_every: int = 1              # epochs between validations
    tensorboard: str | bool = "auto"  # auto (when installed) | on | off (YAML on/off = true/false)
    sync_bn: bool = True             # SyncBatchNorm under multi-GPU DDP
    freeze_bn: bool = False          # BatchNorm layers in eval mode while training (fixed statistics)
    threads: int = 0                 # torch CPU threads of this process (0: torch's default)
    checkpoint_every: int = 0        # also save last/ every N steps inside an epoch (0: at epoch ends only)


@dataclass
class Config:
    name: str = "experiment"
    task: str = "classification"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    pipeline: PipelineSection = field(default_factory=PipelineSection)  # type: ignore[valid-type]
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    source: str | None = field(default=None, compare=False)  # the file it came from

    # -- conversion --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/YAML-serialisable dict (the ``model`` section flattened)."""
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "source":
                continue
            v = getattr(self, f.name)
            if f.name == "model":
                d["model"] = {"name": v.name, **copy.deepcopy(v.params)}
            elif dataclasses.is_dataclass(v):
                d[f.name] = dataclasses.asdict(v)
            else:
                d[f.name] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, source: str | None = None) -> "Config":
        """Build and validate a config from a (possibly partial) dict."""
        cfg = cls(source=source)
        for key, value in (d or {}).items():
            _set(cfg, [str(key)], value, source)
        cfg.validate()
        return cfg

    def pipeline_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`finetec.data.pipeline.PipelineConfig`."""
        kw = dataclasses.asdict(self.pipeline)
        kw["features"] = tuple(kw["features"])
        kw["mixed_levels"] = tuple(kw["mixed_levels"])
        kw["max_persons"] = self.data.max_persons
        return kw

    def validate(self, src: str | None = None) -> None:
        """Check value ranges and choices; problems name ``src`` (default: the config file)."""
        src = src or self.source
        if self.task not in TASKS:
            raise FinetecError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}", src)
        if self.optim.name not in OPTIMIZERS:
            raise FinetecError(f"optim.name must be one of {', '.join(OPTIMIZERS)}, got {self.optim.name!r}", src)
        if self.runtime.device not in DEVICES:
            raise FinetecError(f"runtime.device must be one of {', '.join(DEVICES)}, got {self.runtime.device!r}", src)
        if self.runtime.precision not in PRECISIONS:
            raise FinetecError(f"runtime.precision must be one of {', '.join(PRECISIONS)}, got "
                               f"{self.runtime.precision!r}", src)
        try:   # the pipeline's own checks, in one place
            PipelineConfig(**self.pipeline_kwargs())
        except FinetecError as e:
            raise FinetecError(e.problem, src) from None
        if isinstance(self.runtime.tensorboard, bool):
            self.runtime.tensorboard = "on" if self.runtime.tensorboard else "off"
        if self.runtime.tensorboard not in ("auto", "on", "off"):
            raise FinetecError("runtime.tensorboard must be auto, on or off", src)
        checks = [
            (self.optim.epochs >= 1, "optim.epochs must be >= 1"),
            (self.optim.batch_size >= 1, "optim.batch_size must be >= 1"),
            (self.optim.lr > 0, "optim.lr must be > 0"),
            (self.optim.warmup_epochs >= 0, "optim.warmup_epochs must be >= 0"),
            (0 <= self.optim.label_smoothing < 1, "optim.label_smoothing must be in [0, 1)"),
            (self.optim.grad_clip is None or self.optim.grad_clip > 0, "optim.grad_clip must be > 0"),
            (0 <= self.data.val_fraction < 1, "data.val_fraction must be in [0, 1)"),
            (self.data.max_persons is None or self.data.max_persons >= 1, "data.max_persons must be >= 1"),
            (isinstance(self.data.pool, list) and all(isinstance(p, str) and p for p in self.data.pool),
             "data.pool must be a list of dataset paths"),
            (self.pipeline.clip_len >= 2, "pipeline.clip_len must be >= 2"),
            (self.runtime.num_workers >= 0, "runtime.num_workers must be >= 0"),
            (self.runtime.threads >= 0, "runtime.threads must be >= 0"),
            (self.runtime.checkpoint_every >= 0, "runtime.checkpoint_every must be >= 0"),
            (self.runtime.log_every >= 1, "runtime.log_every must be >= 1"),
            (self.runtime.eval_every >= 1, "runtime.eval_every must be >= 1"),
            (bool(self.model.name), "model.name must be given"),
        ]
        for ok, problem in checks:
            if not ok:
                raise FinetecError(problem, src)


# -- typed assignment ------------------------------------------------------------------
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _coerce(value: Any, hint: Any, key: str, src: str | None) -> Any:
    """Check ``value`` against a type hint (int accepted for float); return the stored value."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key, src)
            except FinetecError as e:
                errors.append(e)
        raise errors[0] if errors else FinetecError(f"{key}: bad value {value!r}", src)
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise FinetecError(f"{key} must be a list, got {value!r}", src)
        return [_coerce(v, item, key, src) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise FinetecError(f"{key} must be a mapping, got {value!r}", src)
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FinetecError(f"{key} must be a number, got {value!r}", src)
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise FinetecError(f"{key} must be an integer, got {value!r}", src)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise FinetecError(f"{key} must be true or false, got {value!r}", src)
        return value
    if hint is str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise FinetecError(f"{key} must be a string, got {value!r}", src)
        return str(value)
    if hint is Any:
        return value
    raise FinetecError(f"{key}: unsupported value {value!r}", src)


def _set(obj: Any, keys: list[str], value: Any, src: str | None) -> None:
    """Assign ``value`` at the dotted ``keys`` below ``obj`` with type checks."""
    dotted = ".".join(keys)
    if isinstance(obj, ModelSection):
        if keys[0] == "name" and len(keys) == 1:
            obj.name = _coerce(value, str, "model.name", src)
            return
        target = obj.params
        for k in keys[:-1]:
            target = target.setdefault(k, {})
            if not isinstance(target, dict):
                raise FinetecError(f"model.{dotted}: {k} is not a mapping", src)
        target[keys[-1]] = copy.deepcopy(value)
        return
    names = {f.name for f in dataclasses.fields(obj) if f.name != "source"}
    head = keys[0]
    if isinstance(obj, RuntimeConfig) and keys == ["amp"]:   # the former switch: false = fp32, true = auto
        if not _coerce(value, bool, "runtime.amp", src):
            obj.precision = "fp32"
        return
    if head not in names:
        where = _path_of(obj)
        raise FinetecError(
            f"unknown config key {where + head!r} (known: {', '.join(sorted(names))})", src)
    current = getattr(obj, head)
    if dataclasses.is_dataclass(current):
        if len(keys) == 1:
            if not isinstance(value, dict):
                raise FinetecError(f"section {head!r} must be a mapping, got {value!r}", src)
            for k, v in value.items():
                _set(current, [str(k)], v, src)
        else:
            _set(current, keys[1:], value, src)
        return
    if len(keys) > 1:
        raise FinetecError(f"unknown config key {_path_of(obj) + dotted!r} ({head} is not a section)", src)
    setattr(obj, head, _coerce(value, _hints(type(obj))[head], _path_of(obj) + head, src))


def _path_of(obj: Any) -> str:
    for section, cls in (("data.", DataConfig), ("pipeline.", PipelineSection), ("optim.", OptimConfig),
                         ("runtime.", RuntimeConfig), ("model.", ModelSection)):
        if isinstance(obj, cls):
            return section
    return ""


# -- loading ---------------------------------------------------------------------------
def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=0.05"`` -> (["optim", "lr"], 0.05); the value is parsed by yaml.safe_load."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not k for k in key.split(".")):
        raise FinetecError(f"override {text!r} is not of the form key.sub=value", "--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise FinetecError(f"override {text!r}: value is not valid YAML ({str(e).splitlines()[0]})", "--set") from None
    return key.split("."), value


def apply_overrides(cfg: Config, overrides: list[str] | None) -> Config:
    """Return a copy of ``cfg`` with ``key.sub=value`` overrides applied and validated."""
    out = copy.deepcopy(cfg)
    for text in overrides or []:
        keys, value = parse_override(text)
        _set(out, keys, value, "--set")
    out.validate("--set" if overrides else None)
    return out


def resolve_data_path(path: str, config_dir: str | os.PathLike | None) -> str:
    """A relative path is looked up from the CWD, then from the config's folder; when found it is
    made absolute (so that a checkpoint's recorded data path works from any folder)."""
    if not path or path == "synthetic" or path.startswith("synthetic:"):
        return path
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p)
    if p.exists():
        return str(p.resolve())
    if config_dir is not None:
        q = Path(config_dir) / p
        if q.exists():
            return str(q.resolve())
    return path


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides."""
    import yaml

    if path is None:
        cfg = Config()
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FinetecError("config file not found", p) from None
        except OSError as e:
            raise FinetecError(f"cannot read config file: {e.strerror}", p) from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise FinetecError(f"not valid YAML ({str(e).splitlines()[0]})", p) from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise FinetecError("a config file must be a YAML mapping", p)
        cfg = Config.from_dict(raw, source=str(p))
    cfg = apply_overrides(cfg, overrides)
    config_dir = Path(cfg.source).parent if cfg.source else None
    cfg.data.path = resolve_data_path(cfg.data.path, config_dir)
    cfg.data.pool = [resolve_data_path(str(p), config_dir) for p in cfg.data.pool]
    return cfg


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    """Write the config as YAML (atomically)."""
    import yaml

    write_text_atomic(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


__all__ = ["Config", "DataConfig", "PipelineSection", "ModelSection", "OptimConfig", "RuntimeConfig",
           "load_config", "apply_overrides", "parse_override", "resolve_data_path", "save_config"]
