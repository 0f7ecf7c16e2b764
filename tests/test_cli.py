import pkgutil

import pytest

import tian.commands
from tian.cli import COMMAND_MODULES, build_parser, main

HELPERS = {"common"}


def test_every_command_module_is_registered():
    modules = {m.name for m in pkgutil.iter_modules(tian.commands.__path__)} - HELPERS
    assert modules == set(COMMAND_MODULES)


def test_help_lists_the_design_contract_commands(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("train", "predict", "dedup", "topics", "evaluate", "serve"):
        assert command in out


def test_missing_input_file_is_a_clear_error(tmp_path, capsys):
    code = main(
        [
            "predict",
            "--model",
            str(tmp_path),
            "--data",
            "nope.csv",
            "--out",
            str(tmp_path / "o.jsonl"),
        ]
    )
    assert code == 2
    assert "not a model bundle" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag",
    [["--coverage", "1.5"], ["--epochs", "0"], ["--max-length", "4000"]],
)
def test_bad_training_settings_are_refused_before_training(tmp_path, capsys, flag):
    out = tmp_path / "bundle"
    code = main(["train", "--data", "data/demo/proposals.csv", "--out", str(out), *flag])
    assert code == 2
    assert flag[0] in capsys.readouterr().err
    assert not out.exists()  # nothing written
