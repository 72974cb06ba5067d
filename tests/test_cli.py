import json

import pytest

from finetec.cli import ORDER, build_parser, main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("info",):
        assert name in out


def test_every_command_module_has_the_protocol():
    import importlib
    import pkgutil

    import finetec.commands as pkg

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    assert "info" in names
    for n in names:
        mod = importlib.import_module(f"finetec.commands.{n}")
        assert isinstance(mod.HELP, str) and mod.HELP
        assert callable(mod.add_arguments) and callable(mod.run)
    build_parser()  # every module registers its arguments without clashing


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["layouts"]["ntu25"] == 25
    assert info["layouts"]["coco17"] == 17
    assert info["device"] in ("cpu",) or info["cuda_available"]


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_order_has_no_duplicates():
    assert len(ORDER) == len(set(ORDER))
