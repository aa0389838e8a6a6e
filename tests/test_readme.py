"""The README's numbers come from the committed results files."""

import pytest

from benchmarks.readme_tables import TABLES, readme_block


@pytest.mark.parametrize("name", sorted(TABLES))
def test_readme_tables_match_results(name):
    assert readme_block(name) == TABLES[name](), "run: python benchmarks/readme_tables.py --update-readme"


def test_every_chosen_setting_the_prose_names_is_the_one_in_chosen_json():
    """A sentence that speaks of the chosen setting and names `coefficient X, <schedule>` names the setting of
    results/<env>-tuning/chosen.json, for the benchmark it names next in the sentence (else last, else its section's)."""
    import json
    import re

    from tests.helpers import ROOT

    chosen = {}
    for env, name in (("clevr", "CLEVR-Robot"), ("metaworld", "Meta-World")):
        args = json.loads((ROOT / "results" / f"{env}-tuning" / "chosen.json").read_text())["lago_args"].split()
        chosen[name] = (float(args[args.index("--guidance-coef") + 1]), args[args.index("--guidance-schedule") + 1])
    named, section = [], None
    for block in re.split(r"\n(?=#+ )", (ROOT / "README.md").read_text()):
        heading = block.splitlines()[0]
        section = next((name for name in chosen if name in heading), section if heading.startswith("### ") else None)
        for sentence in re.split(r"(?<=[.:;])\s+(?=[A-Z(*`])", " ".join(block.split())):
            if "chosen" not in sentence:
                continue
            for match in re.finditer(r"coefficient ([0-9.]+)\**,? (linear|constant|undecayed)", sentence):
                after = re.search(r"CLEVR-Robot|Meta-World", sentence[match.end():])
                before = re.findall(r"CLEVR-Robot|Meta-World", sentence[:match.start()])
                benchmark = after.group(0) if after else before[-1] if before else section
                schedule = "constant" if match.group(2) == "undecayed" else match.group(2)
                named.append((benchmark, float(match.group(1)), schedule, match.group(0)))
    assert {benchmark for benchmark, *_ in named} == set(chosen)  # the prose names both benchmarks' settings
    wrong = [f"{text!r} ({benchmark}: chosen.json says {chosen[benchmark]})" for benchmark, coef, schedule, text in named
             if (coef, schedule) != chosen.get(benchmark)]
    assert not wrong, wrong
