import pytest
import yaml

from viscy_utils.cli_utils import format_markdown_table, load_config


def test_dict_table_with_title():
    table = format_markdown_table({"train_accuracy": 0.91234, "n": 3}, title="Metrics")
    assert table == "## Metrics\n\n| Metric | Value |\n|---------|--------|\n| Train Accuracy | 0.912 |\n| N | 3 |\n"


def test_records_table_title_cases_headers():
    table = format_markdown_table([{"task_name": "a", "val_f1": 0.5}])
    assert table == "| Task Name | Val F1 |\n|------------|---------|\n| a | 0.500 |\n"


def test_empty_inputs():
    assert format_markdown_table([]) == ""
    assert format_markdown_table({}) == "| Metric | Value |\n|---------|--------|\n"


def test_records_with_explicit_headers_fill_missing_values():
    table = format_markdown_table([{"a": 1}, {"a": 2, "b": 0.25}], headers=["a", "b"])
    assert table == "| A | B |\n|----|----|\n| 1 |  |\n| 2 | 0.250 |\n"


def test_dict_headers_are_used_as_given():
    assert format_markdown_table({"x": 1}, headers=["name", "v"]).splitlines()[0] == "| name | v |"


def test_load_config_reads_yaml(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("task: infection_state\nmax_iter: 10\n")
    assert load_config(path) == {"task": "infection_state", "max_iter": 10}


def test_load_config_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="Config file not found: .*absent.yml"):
        load_config(tmp_path / "absent.yml")


def test_load_config_malformed_yaml(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_text("a: [1, 2\n")
    with pytest.raises(yaml.YAMLError):
        load_config(str(path))
