"""The README's numbers come from the committed results files."""

import pytest

from benchmarks.readme_tables import TABLES, readme_block


@pytest.mark.parametrize("name", sorted(TABLES))
def test_readme_tables_match_results(name):
    assert readme_block(name) == TABLES[name](), "run: python benchmarks/readme_tables.py --update-readme"
