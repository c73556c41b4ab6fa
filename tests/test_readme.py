"""The README against the code, line by line where a machine can check it: every repository path
it names exists (and every file its layout names, in the folder it names), every CLI option and
`CXNLP_*` variable it names is accepted, the settings tables give the service's defaults, every
endpoint it names is served, the models table gives each model's own test scores, `.ci/run` runs
its test command, and its cheap code runs and prints what the README says. The examples that load the
shipped model are left to the slow tests (`tests/test_shipped_aspects.py` checks the topics and
clauses example text); the Azure / boto3 / Argilla examples need a server (`tests/test_cloud_compat.py`
runs both SDKs against one)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

import cxnlp
from cxnlp.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOP_DIRS = ("cxnlp", "training", "service", "benchmarks", "examples", "tests", "docs", "notebooks")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def named_paths() -> set[str]:
    """Repository paths the README names in `code` or as link targets; placeholders (NAME, mine,
    upper-case words, globs) are not paths."""
    candidates = re.findall(r"`([^`\s]+)`", README) + re.findall(r"\]\(([^)#\s]+)\)", README)
    found = set()
    for c in candidates:
        c = c.rstrip(".,:;")
        shipped = c in ("models/default", "models/fast")
        if not (shipped or c.startswith(tuple(f"{d}/" for d in TOP_DIRS))):
            continue
        if re.search(r"[*{}<>]|NAME|mine|\.\.\.", c):
            continue
        found.add(c)
    return found


def test_every_path_the_readme_names_exists():
    paths = named_paths()
    assert {"cxnlp/labels.py", "cxnlp/models/pipeline.py", "models/default"} <= paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README names paths that do not exist: {missing}"


def test_ci_runs_exactly_the_readmes_test_command():
    command = re.search(r"Run the tests.*?```bash\n(.*?)```", README, flags=re.S).group(1).strip()
    assert command.endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    script = " && ".join(
        line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")
    )
    # From the fresh venv on, the script's last lines are the README's command.
    assert script.endswith(command[command.index("python3 -m venv .venv") :])
    assert "|| true" not in ci, "a failed install must fail CI"


def _cli_uses() -> list[tuple[str, list[str]]]:
    """Every `cxnlp VERB ...` the README writes (inline or in a shell block), with its options."""
    spans = re.findall(r"`(cxnlp [a-z][^`]*)`", README)
    for block in code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            spans += re.findall(r"(?:^|&&|;)\s*(?:[A-Z_]+=\S+\s+)*(cxnlp [a-z][^#;&]*)", line)
    uses: dict[str, set[str]] = {}
    for span in spans:
        verb = span.split()[1]
        uses.setdefault(verb, set()).update(re.findall(r"(?<![\w-])--[a-z][a-z-]*", span))
    return sorted((verb, sorted(options)) for verb, options in uses.items())


@pytest.mark.parametrize(("verb", "options"), _cli_uses(), ids=lambda v: str(v)[:20])
def test_every_cli_verb_and_option_the_readme_uses_is_accepted(verb, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0, f"`cxnlp {verb}` is not a verb"
    usage = capsys.readouterr().out
    unknown = [o for o in options if not re.search(rf"{re.escape(o)}\b", usage)]
    assert not unknown, f"`cxnlp {verb}` does not take {unknown}"


def test_the_readmes_library_calls_take_the_arguments_it_gives():
    import inspect

    calls = re.findall(r"`((?:cxnlp\.)?(?:load|classify_file|build_report)\([^`]*\))`", README)
    calls += re.findall(
        r"^(?:\w+ = )?(cxnlp\.[a-z_]+\(.*\))", "\n".join(code_blocks("python")), re.M
    )
    assert len(calls) >= 4
    for call in calls:
        node = ast.parse(call.replace("...", "None"), mode="eval").body
        name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
        parameters = dict(inspect.signature(getattr(cxnlp, name)).parameters)
        if name == "classify_file":  # its **engine_options are classify_file_ray's
            from cxnlp.io.ray_engine import classify_file_ray

            parameters |= inspect.signature(classify_file_ray).parameters
        unknown = [k.arg for k in node.keywords if k.arg not in parameters]
        assert not unknown, f"{call}: {name} takes no {unknown}"


def test_every_cxnlp_variable_the_readme_names_is_read_somewhere():
    from service.settings import Settings

    # The library, the service, the training code, and the store tests' one setting.
    files = [p for d in ("cxnlp", "service", "training") for p in (ROOT / d).rglob("*.py")]
    files.append(ROOT / "tests" / "feedback_helpers.py")
    sources = "\n".join(p.read_text(encoding="utf-8") for p in files)
    named = set(re.findall(r"\bCXNLP_[A-Z0-9_]+\b", README))
    assert "CXNLP_API_KEYS" in named
    unread = sorted(
        v
        for v in named
        if v not in sources and v[len("CXNLP_") :].lower() not in Settings.model_fields
    )
    assert not unread, f"README names variables nothing reads: {unread}"


def test_every_benchmark_command_the_readme_gives_exists_with_its_options():
    commands = re.findall(
        r"python (benchmarks/[a-z_]+\.py)((?: --?[a-z][\w-]*(?: [^\s`-][^\s`]*)*)*)", README
    )
    assert len(commands) >= 5
    for script, args in commands:
        source = (ROOT / script).read_text(encoding="utf-8")
        for option in re.findall(r"--[a-z][\w-]*", args):
            assert f'"{option}"' in source, f"{script} takes no {option}"


def test_the_readmes_language_and_normaliser_lines_print_what_it_says():
    lines = [
        line
        for block in code_blocks("python")
        for line in block.splitlines()
        if line.startswith(("cxnlp.detect_language(", "cxnlp.normalize("))
    ]
    assert len(lines) == 2
    for line in lines:
        code, _, comment = line.partition("  # ")
        value = eval(code, {"cxnlp": cxnlp})  # noqa: S307 - the README's own line
        try:
            expected = ast.literal_eval(comment)
        except (ValueError, SyntaxError):
            # "URLs become a placeholder, emoji stay"
            assert "https://x.com" not in value and "😀" in value, value
        else:
            assert value == expected, line


def test_the_readmes_custom_topic_file_is_the_example_and_loads():
    from cxnlp.topics.taxonomy import load_taxonomy

    [block] = [b for b in code_blocks("yaml") if "cold_food" in b]
    example = ROOT / "examples" / "custom_topics.yaml"
    assert yaml.safe_load(block) == yaml.safe_load(example.read_text(encoding="utf-8"))
    [topic] = load_taxonomy(example)
    assert topic.name == "cold_food"


def _folder_files() -> list[tuple[str, str]]:
    """(folder, file) for each file the README's layout names by its bare name: the `.py` files
    (and `name/` folders) of each row of the layout table, and of `training/`'s list beside it."""
    pairs = []
    for folder, rest in re.findall(
        r"^\| `((?:cxnlp|training|service)/[\w/]*/)` \|(.*)$", README, re.M
    ):
        pairs += [(folder, name) for name in re.findall(r"`([\w]+(?:\.py|/))`", rest)]
    beside = re.search(r"Beside it: `training/`(.*?)·", README, flags=re.S).group(1)
    pairs += [("training/", name) for name in re.findall(r"`([\w]+\.py)`", beside)]
    return pairs


def test_the_layout_names_files_that_are_where_it_says():
    pairs = _folder_files()
    assert ("cxnlp/models/", "pipeline.py") in pairs and ("training/", "adapt.py") in pairs
    missing = [folder + name for folder, name in pairs if not (ROOT / folder / name).exists()]
    assert not missing, f"the README's layout names files that are not there: {missing}"


def test_every_endpoint_the_readme_names_is_served(tiny_model_dir, tmp_path):
    """Each `METHOD /path` and each `/v1/stats...` or `/v1/cases...` path the README names is an
    operation of the service's OpenAPI document (with the Azure and AWS routes on); `ID` stands
    for a path parameter, as a concrete value does (`/v1/cases/1`)."""
    from service import Settings, create_app

    settings = Settings(
        model=str(tiny_model_dir), auth=False, jobs_dir=tmp_path, azure_api=True, aws_api=True
    )
    paths = create_app(settings).openapi()["paths"]
    served = [
        (method.upper(), re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"))
        for path, operations in paths.items()
        for method in operations
    ]
    named = re.findall(r"\b(GET|POST|DELETE) (/[^\s`,)?]*)", README)
    named += [("GET", p) for p in re.findall(r"`(/v1/(?:stats|cases)[\w/.]*)[`?]", README)]
    assert ("POST", "/v1/classify") in named and ("GET", "/v1/stats/trend") in named
    unserved = [
        f"{method} {path}"
        for method, path in named
        if not any(m == method and pattern.match(path) for m, pattern in served)
    ]
    assert not unserved, f"the README names routes the service does not have: {unserved}"


def _setting_rows() -> list[tuple[list[str], list[str]]]:
    """(variables, defaults) of each settings-table row whose default cell gives one backticked
    value per variable."""
    rows = []
    for variables, default in re.findall(r"^\| (`CXNLP_[^|]+) \| ([^|]+) \|", README, re.M):
        names = re.findall(r"`(CXNLP_[A-Z0-9_]+)`", variables)
        values = re.findall(r"`([^`]*)`", default)
        if len(names) == len(values):
            rows.append((names, values))
    return rows


def test_the_settings_tables_give_the_services_defaults():
    from service.settings import Settings

    def shown(value) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    fields = Settings.model_fields
    checked, wrong = 0, []
    for names, values in _setting_rows():
        for name, value in zip(names, values, strict=True):
            field = fields.get(name.removeprefix("CXNLP_").lower())
            if field is None or field.default is None:
                continue
            checked += 1
            if shown(field.default) != value:
                wrong.append(f"{name}: README {value!r}, Settings {shown(field.default)!r}")
    assert checked >= 15, checked
    assert not wrong, wrong


def test_the_models_table_gives_each_models_own_test_scores():
    import json

    rows = re.findall(
        r"^\| `models/(\w+)` \|[^|]*\| ([\d.]+) / ([\d.]+) / ([\d.]+) \|", README, re.M
    )
    shipped = {p.parent.name for p in (ROOT / "models").glob("*/config.json")}
    assert {name for name, *_ in rows} == shipped
    for name, *scores in rows:
        metrics = json.loads((ROOT / "models" / name / "metrics.json").read_text(encoding="utf-8"))
        by_lang = metrics["by_lang"]
        assert scores == [f"{by_lang[lang]['macro_f1']:.3f}" for lang in ("fa", "ar", "en")], name
