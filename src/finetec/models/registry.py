"""Models by name: ``create_model(name, *, num_classes, layout, in_channels, **overrides)``.

A model module registers a factory with :func:`register_model`::

    @register_model("stgcn")
    def stgcn(*, num_classes: int, layout: Layout, in_channels: int, base_channels: int = 64, ...):
        return STGCN(...)

The factory receives a :class:`~finetec.layouts.Layout` object (``create_model`` accepts a
layout name, a path, a Layout or a layout dict). Every model returned by :func:`create_model`
carries ``model.config``: a JSON-serialisable dict with ``name`` and every keyword argument,
defaults included, so that ``create_model(**model.config)`` rebuilds the same architecture (the
layout is stored by name when it is a built-in one, otherwise as its full dict).

The model modules (``finetec.models.gcn``, ``finetec.models.completion``,
``finetec.models.finetec``) are imported on first use; a module that does not exist (yet) is
skipped, a module that exists but fails to import raises.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
from typing import Any, Callable

from finetec.errors import FinetecError
from finetec.layouts import Layout, get_layout, layout_to_config

MODEL_MODULES: tuple[str, ...] = (
    "finetec.models.gcn",
    "finetec.models.completion",
    "finetec.models.finetec",
)
_REQUIRED = ("num_classes", "layout", "in_channels")

_FACTORIES: dict[str, Callable[..., Any]] = {}
# name -> (the model's config dataclass, defaults of this variant) for models with a config schema
_CONFIGS: dict[str, tuple[type, dict[str, Any]]] = {}
_state = {"loaded": False, "loading": False}


def register_model(name: str, config: type | None = None, **defaults: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``factory(*, num_classes, layout, in_channels, ...)`` as ``name``.

    With ``config`` (a dataclass: the model's schema, as in nanoGPT / timm) the factory takes
    ``config=`` an instance of it; the dataclass's fields (with their defaults, overridden by
    ``defaults`` for a variant such as ``stgcnpp_small``) are the options :func:`create_model`
    accepts, and the dataclass validates their values. Without it the factory's keyword parameters
    (with their defaults) define the options; a factory taking ``**kwargs`` validates its own.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a model name must be a non-empty string")
    if config is not None:
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"model {name!r}: config must be a dataclass")
        unknown = sorted(set(defaults) - {f.name for f in dataclasses.fields(config)})
        if unknown:
            raise TypeError(f"model {name!r}: {config.__name__} has no field(s) {', '.join(unknown)}")

    def deco(factory: Callable[..., Any]) -> Callable[..., Any]:
        old = _FACTORIES.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (factory.__module__, factory.__qualname__):
            raise ValueError(f"model name {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        params = inspect.signature(factory).parameters
        missing = [p for p in _REQUIRED + (("config",) if config is not None else ()) if p not in params]
        if missing:
            raise TypeError(f"model factory {name!r} must accept keyword arguments {', '.join(missing)}")
        _FACTORIES[name] = factory
        if config is not None:
            _CONFIGS[name] = (config, dict(defaults))
        return factory

    return deco


def _load_modules() -> None:
    """Import the model modules once; skip only those that do not exist."""
    if _state["loaded"] or _state["loading"]:
        return
    _state["loading"] = True
    try:
        for mod in MODEL_MODULES:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name != mod:
                    raise
        _state["loaded"] = True
    finally:
        _state["loading"] = False


def list_models() -> list[str]:
    """Sorted names of all registered models."""
    _load_modules()
    return sorted(_FACTORIES)


def get_factory(name: str) -> Callable[..., Any]:
    """The factory registered as ``name``; FinetecError listing the valid names otherwise."""
    _load_modules()
    if name not in _FACTORIES:
        raise FinetecError(f"unknown model {name!r}; available models: {', '.join(sorted(_FACTORIES)) or '(none)'}")
    return _FACTORIES[name]


def model_options(name: str) -> dict[str, Any]:
    """The overridable options of model ``name`` with their defaults (excluding the required three)."""
    factory = get_factory(name)
    if name in _CONFIGS:
        cls, defaults = _CONFIGS[name]
        return {f.name: defaults.get(f.name, _field_default(f)) for f in dataclasses.fields(cls)}
    params = inspect.signature(factory).parameters
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in params.items()
        if k not in _REQUIRED and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def model_config(name: str, **overrides: Any) -> Any:
    """The config dataclass instance of model ``name`` with ``overrides`` (validated by it);
    FinetecError for an option the model does not have."""
    get_factory(name)
    if name not in _CONFIGS:
        raise FinetecError(f"model {name!r} has no config dataclass")
    cls, defaults = _CONFIGS[name]
    _check_known(name, overrides, {f.name for f in dataclasses.fields(cls)})
    return cls(**{**defaults, **overrides})


def _check_known(name: str, overrides: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(k for k in overrides if k not in known or k in _REQUIRED)
    if unknown:
        valid = ", ".join(sorted(model_options(name))) or "(none)"
        raise FinetecError(f"model {name!r} has no option(s) {', '.join(unknown)}; valid options: {valid}")


def _resolve_layout(layout: Any) -> Layout:
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, dict):
        return Layout.from_dict(layout, origin="<model config layout>")
    if isinstance(layout, str) or hasattr(layout, "__fspath__"):
        return get_layout(layout)
    raise FinetecError(f"layout must be a Layout, a layout name, a path or a dict, not {type(layout).__name__}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FinetecError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def create_model(name: str, *, num_classes: int, layout: Any, in_channels: int, **overrides: Any):
    """Build the registered model ``name``.

    Args:
        name: a name from :func:`list_models`.
        num_classes: number of classes K of the classification head.
        layout: a Layout, a built-in layout name, a layout file path, or a layout dict.
        in_channels: channels per joint of the input (N, M, T, V, C).
        **overrides: model options (see :func:`model_options`); unknown ones raise FinetecError.

    Returns:
        an ``nn.Module`` with ``model.config`` set (JSON-serialisable; ``create_model(**config)``
        rebuilds the same architecture).
    """
    factory = get_factory(name)
    num_classes = _positive_int(num_classes, "num_classes")
    in_channels = _positive_int(in_channels, "in_channels")
    lay = _resolve_layout(layout)
    if name in _CONFIGS:
        cfg = model_config(name, **overrides)
        model = factory(num_classes=num_classes, layout=lay, in_channels=in_channels, config=cfg)
        options = dataclasses.asdict(cfg)
    else:
        model, options = _call_plain(name, factory, dict(num_classes=num_classes, layout=lay,
                                                         in_channels=in_channels), overrides)
    config = {"name": name, "num_classes": num_classes, "layout": layout_to_config(lay), "in_channels": in_channels}
    config.update(_jsonable(options))
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        raise FinetecError(f"model {name!r}: options must be JSON-serialisable ({e})") from None
    model.config = config
    return model


def _call_plain(name: str, factory: Callable[..., Any], required: dict[str, Any], overrides: dict[str, Any]
                ) -> tuple[Any, dict[str, Any]]:
    """Call a factory without a config dataclass: (the model, its options bound with defaults)."""
    sig = inspect.signature(factory)
    params = sig.parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        _check_known(name, overrides, set(params))
    kwargs = {**required, **overrides}
    model = factory(**kwargs)
    bound = sig.bind(**kwargs)
    bound.apply_defaults()
    options: dict[str, Any] = {}
    for k, v in bound.arguments.items():
        if params[k].kind is inspect.Parameter.VAR_KEYWORD:
            options.update(v)
        elif k not in _REQUIRED:
            options[k] = v
    return model, options


__all__ = ["MODEL_MODULES", "create_model", "get_factory", "layout_to_config", "list_models", "model_config",
           "model_options", "register_model"]
