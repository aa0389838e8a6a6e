"""The README's numbers come from the committed results files."""

from benchmarks.env_report import readme_table, render_table


def test_readme_env_table_matches_results():
    assert readme_table() == render_table(), "run: python benchmarks/env_report.py --update-readme"
