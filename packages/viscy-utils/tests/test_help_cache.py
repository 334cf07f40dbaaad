"""The help-text cache: bare help requests are answered from it, anything else runs as usual."""

from __future__ import annotations

import re

import pytest

from viscy_utils.help_cache import cache_dir, help_cache_path, run_with_help_cache

HELP = "usage: dynaclr fit [-h] [-c CONFIG]\n  default: {'version': '20200101-000000'}\n"


@pytest.fixture(autouse=True)
def _cache_in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.setenv("VISCY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "100")


@pytest.fixture
def source_package(tmp_path, monkeypatch):
    """An importable package standing in for the VisCy sources that shape the help."""
    package = tmp_path / "src" / "help_source_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text("DESCRIPTION = 'one'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    return package


def _render(calls: list[str], text: str = HELP, code: int | None = 0):
    def run():
        calls.append("rendered")
        print(text, end="")
        raise SystemExit(code)

    return run


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("VISCY_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "viscy"


@pytest.mark.parametrize(
    "argv",
    [
        ["dynaclr", "fit"],
        ["dynaclr", "fit", "-c", "fit.yml", "--help"],
        ["dynaclr", "fit", "--print_config"],
        ["dynaclr", "--help"],
    ],
)
def test_only_a_bare_subcommand_help_is_cached(argv, source_package):
    assert help_cache_path(argv, ["help_source_pkg"]) is None


def test_key_changes_with_sources_terminal_and_program(source_package, monkeypatch):
    argv = ["dynaclr", "fit", "--help"]
    path = help_cache_path(argv, ["help_source_pkg"])
    assert path == help_cache_path(["/bin/dynaclr", "fit", "--help"], ["help_source_pkg"])
    assert path != help_cache_path(["dynaclr", "fit", "-h"], ["help_source_pkg"])
    assert path != help_cache_path(["dynaclr", "predict", "--help"], ["help_source_pkg"])
    assert path != help_cache_path(["viscy", "fit", "--help"], ["help_source_pkg"])
    monkeypatch.setenv("COLUMNS", "60")
    assert path != help_cache_path(argv, ["help_source_pkg"])
    monkeypatch.setenv("COLUMNS", "100")
    (source_package / "cli.py").write_text("DESCRIPTION = 'a longer one'\n")
    assert path != help_cache_path(argv, ["help_source_pkg"])


def test_second_help_request_is_answered_from_the_cache(source_package, capsys):
    argv, calls = ["dynaclr", "fit", "--help"], []
    with pytest.raises(SystemExit) as first:
        run_with_help_cache(argv, _render(calls), ["help_source_pkg"])
    assert first.value.code == 0
    assert capsys.readouterr().out == HELP
    assert help_cache_path(argv, ["help_source_pkg"]).read_text() == HELP

    with pytest.raises(SystemExit) as second:
        run_with_help_cache(argv, _render(calls, text="not this"), ["help_source_pkg"])
    assert second.value.code == 0
    assert calls == ["rendered"]
    out = capsys.readouterr().out
    stamp = re.search(r"'(\d{8}-\d{6})'", out).group(1)
    assert stamp != "20200101-000000", "the default logger version is the time of the request"
    assert out == HELP.replace("20200101-000000", stamp)


def test_changed_sources_render_the_help_again(source_package, capsys):
    argv, calls = ["dynaclr", "fit", "--help"], []
    with pytest.raises(SystemExit):
        run_with_help_cache(argv, _render(calls), ["help_source_pkg"])
    (source_package / "cli.py").write_text("DESCRIPTION = 'changed'\n")
    with pytest.raises(SystemExit):
        run_with_help_cache(argv, _render(calls, text="new help\n"), ["help_source_pkg"])
    assert calls == ["rendered", "rendered"]
    assert capsys.readouterr().out == HELP + "new help\n"


@pytest.mark.parametrize(("text", "code"), [("error: bad option\n", 2), ("", 0)])
def test_failed_or_empty_help_is_not_cached(text, code, source_package):
    argv, calls = ["dynaclr", "fit", "--help"], []
    for _ in range(2):
        with pytest.raises(SystemExit):
            run_with_help_cache(argv, _render(calls, text=text, code=code), ["help_source_pkg"])
    assert calls == ["rendered", "rendered"]
    assert not help_cache_path(argv, ["help_source_pkg"]).exists()


def test_other_command_lines_run_and_return(source_package):
    result = run_with_help_cache(["dynaclr", "fit", "-c", "fit.yml"], lambda: "ran", ["help_source_pkg"])
    assert result == "ran"
    assert not (cache_dir() / "help").exists()


def test_unwritable_cache_still_prints_the_help(source_package, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv("VISCY_CACHE_DIR", str(blocker))
    with pytest.raises(SystemExit) as exit_:
        run_with_help_cache(["dynaclr", "fit", "--help"], _render([]), ["help_source_pkg"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == HELP
