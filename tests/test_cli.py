"""The `ctd` dispatcher."""

from ctd import cli


def test_help_lists_only_commands_that_exist(capsys) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.available_commands():
        assert name in out
    for name, (module, _) in cli.COMMANDS.items():
        if name not in cli.available_commands():
            assert f"  {name} " not in out, module


def test_unknown_command_is_an_error(capsys) -> None:
    assert cli.main(["definitely-not-a-command"]) == 2
    assert "unknown command" in capsys.readouterr().err
