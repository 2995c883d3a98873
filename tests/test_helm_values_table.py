"""The chart README's values table is what scripts/helm_values_table.py generates from values.yaml, and the
generator reads the comments the way values.yaml writes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.helm_values_table import BEGIN, CHART, END, main, rows, table

SAMPLE = """\
# A file comment, separated by a blank line: it belongs to no value.

# -- A section: it gets a row because it has a comment.
section:
  # -- The first paragraph is the description,
  # over two lines.
  #
  # Later paragraphs (examples) stay in values.yaml:
  #   section: {plain: 1}
  plain: 1
  undocumented: "x | y"
  # not a description: no "--"
  budget: null
  items:
    - name: a
      nested: 1
  empty: {}
quiet:
  flag: true
"""
SCHEMA = {
    "definitions": {"budget": {"oneOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}},
    "properties": {"section": {"properties": {"budget": {"$ref": "#/definitions/budget"}}}},
}


def test_rows_follow_the_comments_above_each_value() -> None:
    assert [(row.key, row.type, row.default, row.description) for row in rows(SAMPLE, SCHEMA)] == [
        ("section", "object", "", "A section: it gets a row because it has a comment."),
        ("section.plain", "int", "1", "The first paragraph is the description, over two lines."),
        ("section.undocumented", "string", '"x | y"', ""),
        ("section.budget", "int or string", "null", ""),  # the type from the schema, not from null
        ("section.items", "list", '[{"name": "a", "nested": 1}]', ""),  # nothing inside a list is a row
        ("section.empty", "object", "{}", ""),
        ("quiet.flag", "bool", "true", ""),  # a section without a comment has no row of its own
    ]


def test_table_cells_are_escaped() -> None:
    text = "# -- Pipes | and state-<account>.json, but `a|<b>` in code stays.\nkey: 'p|q'\n"
    assert table(text).splitlines()[2] == (
        '| `key` | string | `"p\\|q"` | Pipes \\| and state-&lt;account&gt;.json, but `a\\|<b>` in code stays. |'
    )


def test_the_readme_table_is_current() -> None:
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    assert BEGIN in readme and END in readme
    assert main(["--check"]) == 0, "run: python scripts/helm_values_table.py --write"
    assert '| `config.api.account_id` | string | `""` | Your Integrate.io account id' in readme
    for key in ("persistence", "probes", "webConfig.basicAuthExcludedPaths"):
        assert f"| `{key}` |" in readme


def test_check_fails_on_a_stale_table_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("values.yaml", "values.schema.json", "README.md"):
        shutil.copy(CHART / name, tmp_path / name)
    values = tmp_path / "values.yaml"
    values.write_text(
        values.read_text(encoding="utf-8") + "\n# -- A value added without regenerating.\nnewValue: 3\n",
        encoding="utf-8",
    )
    paths = ["--values", str(values), "--schema", str(tmp_path / "values.schema.json")]
    readme = ["--readme", str(tmp_path / "README.md")]
    assert main([*paths, *readme, "--check"]) == 1
    assert (
        "the values table is stale; run python scripts/helm_values_table.py --write"
        in capsys.readouterr().err
    )
    assert main([*paths, *readme, "--write"]) == 0
    assert main([*paths, *readme, "--check"]) == 0
    written = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "| `newValue` | int | `3` | A value added without regenerating. |\n" + END in written
    # a README without the markers is an error, not a silent success
    (tmp_path / "README.md").write_text("# no table\n", encoding="utf-8")
    assert main([*paths, *readme, "--check"]) == 1
    assert "lacks the markers" in capsys.readouterr().err
