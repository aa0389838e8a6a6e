"""The numbers of the README and the docs pages come from the committed results files."""

import shutil

import pytest

from benchmarks.readme_tables import TABLES, block_files, markers, readme_block, relocate, update_files
from tests.helpers import ROOT


@pytest.mark.parametrize("name", sorted(TABLES))
def test_readme_tables_match_results(name):
    """Every copy of every generated table (README.md, docs/*.md) is what readme_tables renders from results/."""
    table = TABLES[name]()
    holders = [path for path in block_files() if markers(name)[0] in path.read_text()]
    assert holders, f"no file holds the markers of {name}"
    for path in holders:
        assert readme_block(name, path) == relocate(table, path), \
            f"{path.relative_to(ROOT)}: run: python benchmarks/readme_tables.py --update-readme"


def test_update_rewrites_every_copy_and_a_second_run_changes_nothing(tmp_path):
    """A table in two files is rewritten in both (its links made relative to each file); a second run rewrites no
    byte; a table whose markers no file holds is one sentence."""
    (tmp_path / "docs").mkdir()
    stale = "<!-- t:start -->\nold\n<!-- t:end -->\n"
    (tmp_path / "README.md").write_text("# R\n\n" + stale)
    (tmp_path / "docs" / "page.md").write_text("# P\n\n" + stale + "\ntext\n\n" + stale)
    tables = {"t": "| a | [L1–L2](script.py#L1-L2) |"}
    files = block_files(tmp_path)
    assert update_files(tables, files, tmp_path) == files
    assert (tmp_path / "README.md").read_text() == "# R\n\n<!-- t:start -->\n| a | [L1–L2](script.py#L1-L2) |\n<!-- t:end -->\n"
    page = (tmp_path / "docs" / "page.md").read_text()
    assert page.count("[L1–L2](../script.py#L1-L2)") == 2 and "old" not in page
    before = {path: path.read_bytes() for path in files}
    assert update_files(tables, files, tmp_path) == []
    assert {path: path.read_bytes() for path in files} == before
    with pytest.raises(SystemExit, match=r"^readme_tables.py: error: no file holds the markers of table u "):
        update_files({**tables, "u": "x"}, files, tmp_path)


def test_the_committed_files_are_what_an_update_writes(tmp_path):
    """Running `readme_tables.py --update-readme` on the committed README and pages changes nothing."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", symlinks=True)
    tables = {name: render() for name, render in TABLES.items()}
    assert update_files(tables, block_files(tmp_path), tmp_path) == [], \
        "run: python benchmarks/readme_tables.py --update-readme"


def test_every_chosen_setting_the_prose_names_is_the_one_in_chosen_json():
    """A sentence of README.md or a docs page that speaks of the chosen setting and names `coefficient X, <schedule>`
    names the setting of results/<env>-tuning/chosen.json, for the benchmark it names next in the sentence (else
    last, else that of the nearest heading above that names one)."""
    import json
    import re

    chosen = {}
    for env, name in (("clevr", "CLEVR-Robot"), ("metaworld", "Meta-World")):
        args = json.loads((ROOT / "results" / f"{env}-tuning" / "chosen.json").read_text())["lago_args"].split()
        chosen[name] = (float(args[args.index("--guidance-coef") + 1]), args[args.index("--guidance-schedule") + 1])
    named = []
    for path in block_files():
        headings: list[tuple[int, str | None]] = []  # the open headings above: level, the benchmark each names
        for block in re.split(r"\n(?=#+ )", path.read_text()):
            heading = block.splitlines()[0]
            if heading.startswith("#"):
                level = len(heading) - len(heading.lstrip("#"))
                headings = [h for h in headings if h[0] < level]
                headings.append((level, next((name for name in chosen if name in heading), None)))
            section = next((name for _, name in reversed(headings) if name), None)
            for sentence in re.split(r"(?<=[.:;])\s+(?=[A-Z(*`\[])", " ".join(block.split())):
                if "chosen" not in sentence:
                    continue
                for match in re.finditer(r"coefficient ([0-9.]+)\**,? (linear|constant|undecayed)", sentence):
                    after = re.search(r"CLEVR-Robot|Meta-World", sentence[match.end():])
                    before = re.findall(r"CLEVR-Robot|Meta-World", sentence[:match.start()])
                    benchmark = after.group(0) if after else before[-1] if before else section
                    schedule = "constant" if match.group(2) == "undecayed" else match.group(2)
                    named.append((path.relative_to(ROOT).as_posix(), benchmark, float(match.group(1)), schedule,
                                  match.group(0)))
    assert {benchmark for _, benchmark, *_ in named} == set(chosen)  # the prose names both benchmarks' settings
    wrong = [f"{where}: {text!r} ({benchmark}: chosen.json says {chosen.get(benchmark)})"
             for where, benchmark, coef, schedule, text in named if (coef, schedule) != chosen.get(benchmark)]
    assert not wrong, wrong


def test_the_controls_have_their_own_table_and_stay_out_of_the_headline_one(tmp_path):
    """LaGO against a control (and a control against PPO) goes to controls-table, from results/clevr-controls and
    results/metaworld; results-table keeps the headline questions only."""
    from benchmarks.readme_tables import controls_table, results_table

    header = ("method,baseline,split,tasks,seeds,baseline_seeds,mean,baseline_mean,difference,difference_low,"
              "difference_high,p_improvement,p_improvement_low,p_improvement_high,verdict\n")

    def row(a, b, split="train", verdict="better"):
        return f"{a},{b},{split},1,5,5,0.6,0.3,0.3,0.2,0.4,1.0,1.0,1.0,{verdict}\n"

    lago = "lago-smollm2-135m+f0.25-coef1-constant"
    for folder, rows in {
        "clevr": [row(lago, "ppo")],
        "clevr-controls": [row(lago, "ppo"), row(lago, "lago-none+f0.25-coef1-constant", "test", "worse"),
                           row("bcppo", "ppo", verdict="no clear difference")],
        "metaworld": [row(lago, "ppo"), row(lago, "prior-alone-none")],
    }.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "comparisons.csv").write_text(header + "".join(rows))
    headline = results_table(tmp_path)
    assert headline.count("\n| ") == 3 and "prior-alone-none" not in headline  # the header row and two comparisons
    controls = controls_table(tmp_path).splitlines()[2:]
    assert controls == [
        f"| Does LaGO beat PPO? (its prior fine-tuned beside the controls) | CLEVR-Robot, train goals | `{lago}` - `ppo` "
        "| 1 x 5 | +0.300 [+0.200, +0.400] | 1.00 [1.00, 1.00] | **yes** |",
        f"| Does LaGO beat the prior with no language model? | CLEVR-Robot, held-out goals "
        f"| `{lago}` - `lago-none+f0.25-coef1-constant` | 1 x 5 | +0.300 [+0.200, +0.400] | 1.00 [1.00, 1.00] "
        "| **no, worse** |",
        "| Does PPO initialised by behaviour cloning beat PPO? | CLEVR-Robot, train goals | `bcppo` - `ppo` | 1 x 5 "
        "| +0.300 [+0.200, +0.400] | 1.00 [1.00, 1.00] | no clear difference |",
        f"| Does LaGO beat behaviour cloning alone? | Meta-World, train goal positions | `{lago}` - `prior-alone-none` "
        "| 1 x 5 | +0.300 [+0.200, +0.400] | 1.00 [1.00, 1.00] | **yes** |",
    ]
