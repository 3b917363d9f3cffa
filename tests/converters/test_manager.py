"""ConverterManager: discovery, isolation, selection, containment, ids, defaults."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from pywats_client.converters import (
    REPORT_ID_NAMESPACE,
    BaseConverter,
    ConverterManager,
    report_id,
)
from pywats_client.converters import _results as results_module
from pywats_client.converters import manager as manager_module
from pywats_client.core.config import ClientConfig
from pywats_client.errors import ConversionError, RejectedError
from pywats_client.models import UUTReport, parse_report
from tests.converters.support import sample
from tests.helpers import wait_until

#: Written out here on purpose: changing the namespace would change every
#: derived id and make resubmissions after an upgrade into duplicates.
EXPECTED_NAMESPACE = uuid.UUID("6f1c2d0e-5a8b-4c3e-9f7a-1d2b3c4e5f60")

PLUGIN_HEADER = """\
from pathlib import Path
from pywats_client.converters import BaseConverter
from pywats_client.models import UUTReport, UURReport
"""


def write_plugin(folder: Path, name: str, body: str, header: str = PLUGIN_HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(header + textwrap.dedent(body), encoding="utf-8")
    return path


def make_config(tmp_path: Path, **overrides: Any) -> ClientConfig:
    (tmp_path / "converters").mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "instance_name": "line2-st4",
        "converter_path": str(tmp_path / "converters"),
        "station_name": "line2-st4-pc",
        "location": "Bergen",
        "purpose": "Production",
    }
    settings.update(overrides)
    return ClientConfig(**settings)


def manager_for(tmp_path: Path, *, builtins: bool = False, **overrides: Any) -> ConverterManager:
    return ConverterManager(
        make_config(tmp_path, **overrides), builtins=builtins, entry_points=False
    )


SIMPLE = """
class Simple(BaseConverter):
    name = "simple"
    description = "one report per .dat file"
    patterns = ["*.dat"]

    def convert(self, file_path: Path):
        return UUTReport(pn="PN-1", sn=file_path.stem, pass_fail=True,
                         start_date_time="2026-03-01T10:00:00+01:00")
"""


# --- the seed README example ---------------------------------------------------


def test_seed_readme_example_is_discovered_and_converts_a_test_file(tmp_path: Path) -> None:
    """The README's MyConverter, saved verbatim as converters/my_converter.py, just works."""
    converters = tmp_path / "converters"
    converters.mkdir()
    shutil.copy(sample("seed/my_converter.py.txt"), converters / "my_converter.py")
    source = tmp_path / "board_0042.test"
    shutil.copy(sample("seed/board_0042.test"), source)
    manager = ConverterManager(make_config(tmp_path))

    assert manager.load() == []
    info = next(i for i in manager.converters if i.name == "My Test System Converter")
    assert info.origin == f"plugin:{converters / 'my_converter.py'}"
    assert info.description == "Converts .test files to WATS format"
    conversion = manager.convert(source)

    assert conversion.converter == "My Test System Converter"
    (report,) = conversion.reports
    assert (report["pn"], report["sn"], report["rev"], report["result"]) == (
        "PCBA-400",
        "B400-0042",
        "A",
        "P",
    )
    assert report["start"] == "2026-03-14T08:12:30+01:00"
    steps = report["root"]["steps"]
    assert [s["stepType"] for s in steps] == ["ET_NLT", "SequenceCall", "ET_PFT", "ET_SVT"]
    assert steps[1]["steps"][1]["numericMeas"][0] == {
        "value": 3.36,
        "unit": "V",
        "compOp": "GELE",
        "lowLimit": 3.2,
        "highLimit": 3.4,
        "status": "P",
    }
    assert "pywats" not in sys.modules, "the pywats alias must not outlive the plugin import"


def test_pywats_alias_logs_a_hint_and_gives_the_real_models(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pywats_client.converters._loader as loader

    monkeypatch.setattr(loader, "_hint_logged", False)
    write_plugin(
        tmp_path / "converters",
        "legacy.py",
        """
        import pywats.models
        from pywats.models import UUTReport as Legacy

        class LegacyConverter(BaseConverter):
            name = "legacy"
            patterns = ["*.dat"]
            report_class = Legacy
            module = pywats.models

            def convert(self, file_path: Path):
                raise NotImplementedError
        """,
    )
    manager = manager_for(tmp_path)
    with caplog.at_level(logging.INFO, logger="pywats_client.converters"):
        assert manager.load() == []
    converter: Any = manager.get("legacy")
    assert converter.report_class is UUTReport
    assert "from pywats_client.models import UUTReport" in caplog.text
    assert "pywats" not in sys.modules and "pywats.models" not in sys.modules


# --- discovery and isolation ------------------------------------------------------


def test_broken_plugins_are_reported_with_file_and_line_and_others_still_load(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "converters"
    write_plugin(folder, "good.py", SIMPLE)
    syntax = write_plugin(folder, "syntax.py", "class Broken(BaseConverter:\n    pass\n")
    raises = write_plugin(folder, "raises.py", "\nraise RuntimeError('no licence dongle')\n")
    exits = write_plugin(folder, "exits.py", "import sys\nsys.exit(3)\n")
    empty = write_plugin(folder, "helpers_only.py", "def helper():\n    return 1\n")
    abstract = write_plugin(
        folder, "abstract.py", "class Half(BaseConverter):\n    name = 'half'\n"
    )
    write_plugin(folder, "_private_helper.py", "raise RuntimeError('never imported')\n")
    write_plugin(
        folder,
        "bad_init.py",
        """
        class NeedsArgs(BaseConverter):
            name = "needs-args"
            def __init__(self, required):
                pass
            def convert(self, file_path):
                return []
        """,
    )

    manager = manager_for(tmp_path)
    problems = {p.file.name if p.file else p.origin: p for p in manager.load()}

    assert [i.name for i in manager.converters] == ["simple"]
    header_lines = PLUGIN_HEADER.count("\n")
    assert problems["syntax.py"].file == syntax
    assert f"line {header_lines + 1}: SyntaxError" in problems["syntax.py"].error
    assert problems["raises.py"].file == raises
    assert (
        f"line {header_lines + 2}: RuntimeError: no licence dongle" in problems["raises.py"].error
    )
    assert "Traceback" in problems["raises.py"].details
    assert problems["exits.py"].file == exits and "SystemExit" in problems["exits.py"].error
    assert problems["helpers_only.py"].file == empty
    assert "no BaseConverter subclass" in problems["helpers_only.py"].error
    assert problems["abstract.py"].file == abstract
    assert (
        f"class Half (line {header_lines + 1}) has no convert(), so it is not used; "
        "add def convert(self, file_path)" in problems["abstract.py"].error
    )
    bad_init = next(p for p in problems.values() if "NeedsArgs" in p.error)
    assert "class NeedsArgs cannot be created" in bad_init.error
    assert "TypeError" in bad_init.error and "without arguments" in bad_init.error
    assert bad_init.origin.endswith("bad_init.py") and bad_init.file is not None
    assert "_private_helper.py" not in problems
    assert len(problems) == 6


def test_bad_class_attributes_are_load_problems(tmp_path: Path) -> None:
    write_plugin(
        tmp_path / "converters",
        "attrs.py",
        """
        class NumberName(BaseConverter):
            name = 42
            def convert(self, file_path):
                return []

        class WordPriority(BaseConverter):
            name = "word-priority"
            priority = "high"
            def convert(self, file_path):
                return []
        """,
    )
    manager = manager_for(tmp_path)
    errors = sorted(p.error for p in manager.load())
    assert "name must be a non-empty string, not 42" in errors[0]
    assert "priority must be a whole number, not 'high'" in errors[1]
    assert manager.converters == []


def test_same_file_name_in_two_folders_loads_as_two_separate_modules(tmp_path: Path) -> None:
    body = """
    STATE = []

    class C{n}(BaseConverter):
        name = "conv-{n}"
        patterns = ["*.dat"]

        def convert(self, file_path: Path):
            STATE.append({n})
            return {{"pn": "P", "sn": "S{n}", "start": "2026-03-01T10:00:00+01:00"}}
    """
    write_plugin(tmp_path / "a", "converter.py", body.format(n=1))
    write_plugin(tmp_path / "b", "converter.py", body.format(n=2))
    manager = ConverterManager.from_dirs(
        [tmp_path / "a", tmp_path / "b"], builtins=False, entry_points=False
    )
    assert manager.load() == []
    one, two = manager.get("conv-1"), manager.get("conv-2")
    assert one is not None and two is not None
    module_one = sys.modules[type(one).__module__]
    module_two = sys.modules[type(two).__module__]
    assert module_one is not module_two
    assert "converter" not in sys.modules
    assert module_one.STATE is not module_two.STATE


def test_reload_picks_up_a_fixed_plugin(tmp_path: Path) -> None:
    folder = tmp_path / "converters"
    path = write_plugin(folder, "fixme.py", "raise ImportError('half written')\n")
    manager = manager_for(tmp_path)
    assert len(manager.load()) == 1
    write_plugin(folder, path.name, SIMPLE)
    assert manager.load() == []
    assert [i.name for i in manager.converters] == ["simple"]


def test_a_missing_default_plugin_folder_is_fine_and_a_file_in_its_place_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # a config without a file: paths start here
    assert manager_for(tmp_path, converter_path="converters").load() == []
    (tmp_path / "plugins").write_text("not a folder")
    (problem,) = manager_for(tmp_path, converter_path=str(tmp_path / "plugins")).load()
    assert "not a folder" in problem.error


def test_a_plugin_folder_that_was_set_but_does_not_exist_is_reported(tmp_path: Path) -> None:
    """A typo in converter_path would otherwise send every file to Error, unexplained."""
    (problem,) = manager_for(tmp_path, converter_path=str(tmp_path / "converter")).load()
    assert problem.origin == "config"
    assert f"converter_path: {tmp_path / 'converter'} does not exist" in problem.error
    assert "fix the path" in problem.error


def test_load_never_raises_even_when_a_source_cannot_be_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pywats_client.converters.manager as manager_module

    def unreadable(folder: Path) -> Any:
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(manager_module, "discover_plugin_dir", unreadable)
    manager = manager_for(tmp_path, builtins=True)
    (problem,) = manager.load()
    assert problem.origin == f"plugin:{tmp_path / 'converters'}"
    assert "cannot be searched" in problem.error and "Permission denied" in problem.error
    assert "csv" in [i.name for i in manager.converters]


# --- selection ------------------------------------------------------------------


def _acceptor(name: str, answer: Any, priority: int = 0) -> str:
    return f"""
class {name.replace("-", "_").title()}(BaseConverter):
    name = "{name}"
    priority = {priority}

    def can_convert(self, file_path):
        return {answer!r}

    def convert(self, file_path):
        return {{"pn": "P", "sn": "{name}", "start": "2026-03-01T10:00:00+01:00"}}
"""


def test_priority_beats_confidence_and_confidence_breaks_ties(tmp_path: Path) -> None:
    folder = tmp_path / "converters"
    write_plugin(folder, "a.py", _acceptor("sure-low-priority", True, priority=0))
    write_plugin(folder, "b.py", _acceptor("unsure-high-priority", 0.2, priority=5))
    write_plugin(folder, "c.py", _acceptor("more-sure", 0.9, priority=5))
    write_plugin(folder, "d.py", _acceptor("declines", False, priority=99))
    manager = manager_for(tmp_path)
    manager.load()
    source = tmp_path / "x.bin"
    source.write_text("data")

    candidates = manager.candidates(source)
    assert [c.name for c in candidates if c.accepted] == [
        "more-sure",
        "unsure-high-priority",
        "sure-low-priority",
    ]
    assert manager.select(source) is manager.get("more-sure")
    assert manager.convert(source).converter == "more-sure"
    declined = next(c for c in candidates if c.name == "declines")
    assert not declined.accepted and declined.reason == "declined"


def test_a_plugin_beats_a_built_in_on_a_tie(tmp_path: Path) -> None:
    write_plugin(
        tmp_path / "converters",
        "my_txt.py",
        """
        class MyTxt(BaseConverter):
            name = "my-txt"

            def can_convert(self, file_path):
                return 0.95  # the same confidence the built-in gives its own files

            def convert(self, file_path):
                return {"pn": "P", "sn": "S", "start": "2026-03-01T10:00:00+01:00"}
        """,
    )
    manager = manager_for(tmp_path, builtins=True)
    manager.load()
    source = sample("wats_text/sn000123_pass.txt")
    top_two = manager.candidates(source)[:2]
    assert [(c.name, c.confidence) for c in top_two] == [("my-txt", 0.95), ("wats-text", 0.95)]
    assert manager.convert(source).converter == "my-txt"


def test_patterns_from_the_config_decide_which_files_a_converter_is_offered(
    tmp_path: Path,
) -> None:
    write_plugin(tmp_path / "converters", "simple.py", SIMPLE)
    manager = manager_for(tmp_path, converters={"simple": {"patterns": ["*.LOG"]}})
    manager.load()
    dat, log = tmp_path / "a.dat", tmp_path / "b.log"
    dat.write_text("x")
    log.write_text("x")
    assert manager.select(dat) is None
    assert manager.select(log) is manager.get("simple")  # case-insensitive, as on Windows
    (info,) = manager.converters
    assert info.patterns == ("*.LOG",)


def test_can_convert_that_raises_or_answers_nonsense_only_declines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "converters"
    write_plugin(
        folder,
        "bad.py",
        """
        class Bad(BaseConverter):
            name = "raises"
            def can_convert(self, file_path):
                raise OSError("share went away")
            def convert(self, file_path):
                raise AssertionError("never called")

        class Odd(BaseConverter):
            name = "odd"
            def can_convert(self, file_path):
                return "yes please"
            def convert(self, file_path):
                raise AssertionError("never called")

        class Quits(BaseConverter):
            name = "quits"
            def can_convert(self, file_path):
                raise SystemExit(2)
            def convert(self, file_path):
                raise AssertionError("never called")
        """,
    )
    write_plugin(folder, "simple.py", SIMPLE)
    manager = manager_for(tmp_path)
    manager.load()
    source = tmp_path / "u.dat"
    source.write_text("x")
    with caplog.at_level(logging.WARNING):
        assert manager.convert(source).converter == "simple"
    reasons = {c.name: c.reason for c in manager.candidates(source)}
    header_lines = PLUGIN_HEADER.count("\n")
    assert reasons["raises"] == (
        f"can_convert raised OSError: share went away (at bad.py line {header_lines + 5})"
    )
    assert "not a bool or a confidence" in reasons["odd"]
    assert reasons["quits"].startswith("can_convert raised SystemExit: 2 (at bad.py line")
    assert manager.select(source) is manager.get("simple")
    assert "share went away" in caplog.text


def test_no_converter_is_a_conversion_error_listing_what_was_tried(tmp_path: Path) -> None:
    manager = manager_for(tmp_path, builtins=True)
    source = tmp_path / "scope_capture.bin"
    source.write_bytes(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(ConversionError) as caught:
        manager.convert(source)
    assert caught.value.converter is None and caught.value.file == source
    message = str(caught.value)
    assert "no converter accepts" in message
    assert "wsjf (name does not match *.json, *.wsjf)" in message
    assert "did not load" not in message


def test_no_converter_says_first_which_plugin_failed_to_load(tmp_path: Path) -> None:
    """The author of a plugin with a typo is told to fix it, not to write a plugin."""
    write_plugin(tmp_path / "converters", "tester_res.py", "class Res(BaseConverter:\n    pass\n")
    manager = manager_for(tmp_path, builtins=True)
    source = tmp_path / "board17.res"
    source.write_text("#HEADER\nSerial;SN-1\n")
    with pytest.raises(ConversionError) as caught:
        manager.convert(source)
    message = str(caught.value)
    hint = message.split("Tried: ", 1)[1]
    assert hint.index("Fix first what did not load") < hint.index("add a converter plugin")
    assert "(1 problem(s)" in hint
    assert "tester_res.py: import failed: line 4: SyntaxError" in hint


# --- what a converter may return ------------------------------------------------------


RETURNS = """
import datetime as dt
from pywats_client.models import NumericLimitStep

START = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)

class Returns(BaseConverter):
    name = "returns"

    def can_convert(self, file_path):
        return True

    def convert(self, file_path):
        kind = file_path.read_text().strip()
        uut = UUTReport(pn="PN-7", sn="SN-7", pass_fail=False, start_date_time=START)
        uut.steps.append(self.create_step({"name": "V", "value": 1.0, "low": 2.0}))
        uur = UURReport(pn="PN-7", sn="SN-7", start=START)
        wsjf = {"type": "T", "pn": "PN-8", "sn": "SN-8", "start": "2026-03-01T11:00:00Z"}
        if kind in ("misc-dict", "bad-misc-dict"):  # list.append skips pydantic
            uut.misc_infos.append({"description": "Firmware", "text": "7.1"}
                                  if kind == "misc-dict" else {"text": "7.1"})
        return {
            "model": uut,
            "misc-dict": uut,
            "bad-misc-dict": uut,
            "repair": uur,
            "dict": wsjf,
            "list": [uut, wsjf, uur],
            "tuple": (wsjf,),
            "none": None,
            "none-in-list": [wsjf, None],
            "text": "PN-7;SN-7;PASS",
            "generator": (r for r in [wsjf]),
            "empty": [],
            "bad-dict": {"pn": "PN-9"},
            "bad-in-list": [wsjf, 42],
            "same-id": [dict(wsjf, id="0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10"),
                        dict(wsjf, id="0b6c3a52-5f41-4d7e-9a57-2f1d8c4e9b10")],
        }[kind]
"""


@pytest.fixture
def returns(tmp_path: Path) -> tuple[ConverterManager, Path]:
    write_plugin(tmp_path / "converters", "returns.py", RETURNS)
    manager = manager_for(tmp_path)
    assert manager.load() == []
    return manager, tmp_path / "in.txt"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("model", [("T", "SN-7", "F")]),
        ("repair", [("R", "SN-7", "P")]),
        ("dict", [("T", "SN-8", "P")]),
        ("list", [("T", "SN-7", "F"), ("T", "SN-8", "P"), ("R", "SN-7", "P")]),
        ("tuple", [("T", "SN-8", "P")]),
        ("misc-dict", [("T", "SN-7", "F")]),
    ],
)
def test_accepted_return_types(
    returns: tuple[ConverterManager, Path], kind: str, expected: list[tuple[str, str, str]]
) -> None:
    manager, source = returns
    source.write_text(kind)
    conversion = manager.convert(source)
    assert [(r["type"], r["sn"], r["result"]) for r in conversion.reports] == expected
    for report in conversion.reports:
        uuid.UUID(report["id"])


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("none", "returned None: missing `return report`?"),
        ("none-in-list", "returned None as report 1 of its list"),
        ("text", "returned builtins.str"),
        ("generator", "returned builtins.generator"),
        ("empty", "returned an empty list"),
        ("bad-dict", "report 0 is not valid WSJF: sn: is required"),
        ("bad-in-list", "returned builtins.int"),
        ("same-id", "reports 0 and 1 share the id"),
        ("bad-misc-dict", "report 0 is not valid WSJF: miscInfos[0].description: is required"),
    ],
)
def test_anything_else_is_a_conversion_error_naming_the_converter(
    returns: tuple[ConverterManager, Path], kind: str, reason: str
) -> None:
    manager, source = returns
    source.write_text(kind)
    with pytest.raises(ConversionError) as caught:
        manager.convert(source)
    assert caught.value.converter == "returns"
    assert caught.value.file == source
    assert reason in str(caught.value)
    assert "'returns'" in str(caught.value)


def test_a_built_in_converters_reports_are_validated_once_a_plugins_again(
    returns: tuple[ConverterManager, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second validation doubled the time and memory of a big report
    # (bench/scenarios/bigfile.py). A built-in builds its models by validation; a
    # plugin's model may hold what pydantic never checked (model_construct).
    validated_again: list[str] = []

    def counting(data: Any) -> Any:
        validated_again.append(data["sn"])
        return parse_report(data)

    monkeypatch.setattr(results_module, "parse_report", counting)
    manager, source = returns
    source.write_text("list")
    assert len(manager.convert(source).reports) == 3
    assert validated_again == ["SN-7", "SN-8", "SN-7"]
    validated_again.clear()
    wsjf = tmp_path / "psu.json"
    shutil.copy(sample("wsjf/psu200_final_function.json"), wsjf)
    assert ConverterManager(entry_points=False).convert(wsjf).converter == "wsjf"
    assert validated_again == []


# --- containment ------------------------------------------------------------------------


CRASHY = """
class Crashy(BaseConverter):
    name = "crashy"

    def can_convert(self, file_path):
        return True

    def convert(self, file_path):
        kind = file_path.read_text().strip()
        if kind == "value":
            raise ValueError("column 7 is not a number")
        if kind == "exit":
            raise SystemExit(1)
        if kind == "own":
            from pywats_client.errors import ConversionError
            raise ConversionError("station wrote a half file")
        if kind == "recursion":
            def deep(n):
                return deep(n + 1)
            deep(0)
        raise KeyError(kind)
"""


@pytest.mark.parametrize(
    ("kind", "cause", "text"),
    [
        ("value", ValueError, "ValueError: column 7 is not a number"),
        ("exit", SystemExit, "SystemExit"),
        ("recursion", RecursionError, "RecursionError"),
        ("other", KeyError, "KeyError: 'other'"),
    ],
)
def test_a_converter_exception_becomes_a_conversion_error_with_its_cause(
    tmp_path: Path, kind: str, cause: type[BaseException], text: str
) -> None:
    write_plugin(tmp_path / "converters", "crashy.py", CRASHY)
    manager = manager_for(tmp_path)
    manager.load()
    source = tmp_path / "f.txt"
    source.write_text(kind)
    with pytest.raises(ConversionError) as caught:
        manager.convert(source)
    error = caught.value
    assert isinstance(error, RejectedError)
    assert (error.converter, error.file) == ("crashy", source)
    assert isinstance(error.__cause__, cause)
    assert error.__cause__.__traceback__ is not None  # the intake writes it to .error.txt
    assert text in str(error) and "f.txt" in str(error)


def test_a_converters_own_conversion_error_gets_its_name_and_file(tmp_path: Path) -> None:
    write_plugin(tmp_path / "converters", "crashy.py", CRASHY)
    manager = manager_for(tmp_path)
    source = tmp_path / "f.txt"
    source.write_text("own")
    with pytest.raises(ConversionError, match="station wrote a half file") as caught:
        manager.convert(source)
    assert (caught.value.converter, caught.value.file) == ("crashy", source)


def test_files_over_max_file_size_are_refused_before_any_parsing(tmp_path: Path) -> None:
    write_plugin(
        tmp_path / "converters",
        "spy.py",
        """
        CALLS = []

        class Spy(BaseConverter):
            name = "spy"
            def can_convert(self, file_path):
                CALLS.append("can_convert")
                return True
            def convert(self, file_path):
                CALLS.append("convert")
                raise AssertionError("must not be called")
        """,
    )
    manager = manager_for(tmp_path, max_file_size=1000)
    manager.load()
    big = tmp_path / "huge.log"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(ConversionError) as caught:
        manager.convert(big)
    assert "1001 bytes, larger than max_file_size (1000 bytes)" in str(caught.value)
    spy = manager.get("spy")
    assert spy is not None and sys.modules[type(spy).__module__].CALLS == []


@pytest.mark.parametrize("case", ["empty", "missing", "folder"])
def test_empty_missing_and_non_files_are_refused(tmp_path: Path, case: str) -> None:
    manager = manager_for(tmp_path, builtins=True)
    path = tmp_path / "thing.txt"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "folder":
        path.mkdir()
    with pytest.raises(ConversionError) as caught:
        manager.convert(path)
    assert caught.value.file == path
    assert {"empty": "empty", "missing": "not found", "folder": "not a regular file"}[case] in str(
        caught.value
    )


# --- ids and station defaults ----------------------------------------------------------


def test_ids_are_derived_from_instance_content_and_position(tmp_path: Path) -> None:
    assert EXPECTED_NAMESPACE == REPORT_ID_NAMESPACE
    source = tmp_path / "two.json"
    shutil.copy(sample("wsjf/two_units_no_ids.json"), source)
    first = manager_for(tmp_path, builtins=True).convert(source)
    again = manager_for(tmp_path, builtins=True).convert(source)
    other_instance = manager_for(tmp_path, builtins=True, instance_name="line3-st1").convert(source)

    ids = [r["id"] for r in first.reports]
    assert ids == [r["id"] for r in again.reports]
    assert ids == [
        str(uuid.uuid5(EXPECTED_NAMESPACE, f"line2-st4\n{first.source_sha256}\n{i}"))
        for i in range(2)
    ]
    assert ids == [str(report_id("line2-st4", first.source_sha256, i)) for i in range(2)]
    assert len(set(ids)) == 2
    assert not set(ids) & {r["id"] for r in other_instance.reports}

    source.write_bytes(source.read_bytes() + b"\n")  # same reports, different bytes
    changed = manager_for(tmp_path, builtins=True).convert(source)
    assert not set(ids) & {r["id"] for r in changed.reports}


def test_an_id_the_converter_chose_is_kept(tmp_path: Path) -> None:
    write_plugin(
        tmp_path / "converters",
        "fixed.py",
        """
        import uuid

        class Fixed(BaseConverter):
            name = "fixed"
            patterns = ["*.dat"]
            def convert(self, file_path):
                report = UUTReport(pn="P", sn="S", start="2026-03-01T10:00:00Z")
                report.id = uuid.UUID("12345678-1234-5678-1234-567812345678")
                unset = UUTReport(pn="P", sn="T", start="2026-03-01T10:00:00Z")
                return [report, unset]
        """,
    )
    source = tmp_path / "a.dat"
    source.write_text("x")
    conversion = manager_for(tmp_path).convert(source)
    assert conversion.reports[0]["id"] == "12345678-1234-5678-1234-567812345678"
    assert conversion.reports[1]["id"] == str(report_id("line2-st4", conversion.source_sha256, 1))


def test_station_identity_is_filled_in_only_where_missing(tmp_path: Path) -> None:
    write_plugin(
        tmp_path / "converters",
        "ident.py",
        """
        class Ident(BaseConverter):
            name = "ident"
            patterns = ["*.dat"]
            def convert(self, file_path):
                base = {"pn": "P", "start": "2026-03-01T10:00:00Z"}
                return [dict(base, sn="A"),
                        dict(base, sn="B", machineName="tester-7", location="Oslo",
                             purpose="", type="T")]
        """,
    )
    source = tmp_path / "a.dat"
    source.write_text("x")
    first, second = manager_for(tmp_path).convert(source).reports
    assert (first["machineName"], first["location"], first["purpose"]) == (
        "line2-st4-pc",
        "Bergen",
        "Production",
    )
    assert (second["machineName"], second["location"], second["purpose"]) == (
        "tester-7",
        "Oslo",
        "Production",
    )


def test_the_converter_that_took_a_file_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_plugin(tmp_path / "converters", "simple.py", SIMPLE)
    source = tmp_path / "u-17.dat"
    source.write_text("x")
    with caplog.at_level(logging.INFO, logger="pywats_client.converters"):
        conversion = manager_for(tmp_path).convert(source)
    line = next(r.getMessage() for r in caplog.records if "converted by" in r.getMessage())
    assert "u-17.dat" in line and "'simple'" in line and conversion.reports[0]["id"] in line


# --- configuration -------------------------------------------------------------------


def test_config_can_disable_and_must_name_real_converters(tmp_path: Path) -> None:
    manager = manager_for(
        tmp_path,
        builtins=True,
        converters={"junit": {"enabled": False}, "cvs": {"delimiter": ";"}},
    )
    problems = manager.load()
    names = [i.name for i in manager.converters]
    assert "junit" not in names and "csv" in names
    (problem,) = problems
    assert problem.origin == "config"
    assert "converters.cvs: no converter of that name" in problem.error


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"patterns": "*.csv"}, "converters.csv.patterns must be a list of globs"),
        ({"priority": "high"}, "converters.csv.priority must be a whole number"),
        ({"enabled": "no"}, "converters.csv.enabled must be true or false"),
        ({"max_size": 0}, "converters.csv.max_size must be a positive number"),
        ({"delimter": ";"}, "converters.csv.delimter: unknown setting"),
        ({"layout": "rows"}, 'converters.csv.layout: "auto", "steps" or "units"'),
    ],
)
def test_bad_converter_settings_are_load_problems_naming_the_key(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    manager = manager_for(tmp_path, builtins=True, converters={"csv": settings})
    problems = manager.load()
    assert any(message in p.error for p in problems), problems
    assert "csv" not in [i.name for i in manager.converters]


def test_priority_from_the_config_overrides_the_class(tmp_path: Path) -> None:
    manager = manager_for(tmp_path, builtins=True, converters={"csv": {"priority": 7}})
    manager.load()
    assert next(i for i in manager.converters if i.name == "csv").priority == 7


def test_plugin_with_a_built_in_name_replaces_it_and_plugin_duplicates_are_problems(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "converters"
    body = """
    class Mine{n}(BaseConverter):
        name = "csv"
        patterns = ["*.csv"]
        def convert(self, file_path):
            return {{"pn": "P", "sn": "S", "start": "2026-03-01T10:00:00Z"}}
    """
    write_plugin(folder, "a_csv.py", body.format(n=1))
    write_plugin(folder, "b_csv.py", body.format(n=2))
    manager = manager_for(tmp_path, builtins=True)
    problems = manager.load()
    csv_info = next(i for i in manager.converters if i.name == "csv")
    assert csv_info.origin.endswith("a_csv.py")
    (problem,) = problems
    assert problem.origin.endswith("b_csv.py") and "already used by plugin:" in problem.error


# --- entry points ------------------------------------------------------------------------


def test_converters_from_installed_packages_are_found_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "acme_converters").mkdir(parents=True)
    (site / "acme_converters" / "__init__.py").write_text(
        PLUGIN_HEADER
        + textwrap.dedent(
            """
            class AcmeIct(BaseConverter):
                name = "acme-ict"
                description = "ACME ICT logs"
                patterns = ["*.ict"]
                def convert(self, file_path):
                    return {"pn": "ACME", "sn": file_path.stem, "start": "2026-03-01T10:00:00Z"}
            """
        )
    )
    dist = site / "acme_converters-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-converters\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pywats_client.converters]\n"
        "ict = acme_converters:AcmeIct\n"
        "broken = acme_converters:DoesNotExist\n"
        "notaconverter = acme_converters:Path\n"
    )
    monkeypatch.syspath_prepend(str(site))
    manager = ConverterManager(make_config(tmp_path), builtins=False)
    problems = manager.load()

    (info,) = manager.converters
    assert (info.name, info.origin, info.description) == (
        "acme-ict",
        "entry-point:acme-converters",
        "ACME ICT logs",
    )
    errors = sorted(p.error for p in problems)
    assert "broken = acme_converters:DoesNotExist: import failed" in errors[0]
    assert "is not a BaseConverter subclass or instance" in errors[1]
    source = tmp_path / "K-1.ict"
    source.write_text("x")
    assert manager.convert(source).reports[0]["sn"] == "K-1"


def test_base_converter_defaults_work_without_a_manager(tmp_path: Path) -> None:
    class PatternOnly(BaseConverter):
        """Takes *.dat files."""

        patterns = ("*.dat",)

        def convert(self, file_path: Path) -> Any:
            return {}

    converter = PatternOnly()
    assert converter.can_convert(tmp_path / "x.DAT") is True
    assert converter.can_convert(tmp_path / "x.txt") is False
    manager = ConverterManager(builtins=False, entry_points=False)
    manager.load()
    assert manager.converters == []


# --- one read per file -------------------------------------------------------------

REWRITER = """
class Rewriter(BaseConverter):
    '''Rewrites its file while converting, as a tester writing the next result would.'''
    name = "rewriter"
    patterns = ["*.dat"]

    def can_convert(self, file_path):
        head = self.peek(file_path, 5)
        file_path.write_text("SN-NEW")
        return head == b"SN-OL"

    def convert(self, file_path):
        sidecar = self.read_text(file_path.with_suffix(".side"))
        return UUTReport(pn=sidecar, sn=self.read_text(file_path), pass_fail=True,
                         start_date_time="2026-03-01T10:00:00+01:00")
"""


def rewriter_and_source(tmp_path: Path, sidecar: str = "PN-SIDE") -> Path:
    """The rewriting plugin, and its source ``unit.dat`` (``SN-OLD``) with a sidecar."""
    write_plugin(tmp_path / "converters", "rewriter.py", REWRITER)
    source = tmp_path / "unit.dat"
    source.write_text("SN-OLD")
    source.with_suffix(".side").write_text(sidecar)
    return source


def test_the_hash_is_of_exactly_the_bytes_the_converter_read(tmp_path: Path) -> None:
    source = rewriter_and_source(tmp_path)
    conversion = manager_for(tmp_path).convert(source)

    (report,) = conversion.reports
    assert report["sn"] == "SN-OLD"
    assert report["pn"] == "PN-SIDE"  # any other file is read from disk
    assert conversion.source_sha256 == hashlib.sha256(b"SN-OLD").hexdigest()
    assert conversion.source_size == len(b"SN-OLD")  # how much of the file the hash covers
    assert source.read_text() == "SN-NEW"
    # Outside a conversion the converter reads the disk again.
    assert manager_for(tmp_path).get("rewriter").read_text(source) == "SN-NEW"  # type: ignore[union-attr]


def test_files_over_the_read_once_limit_are_streamed_and_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "READ_ONCE_LIMIT", 4)
    source = rewriter_and_source(tmp_path)
    conversion = manager_for(tmp_path).convert(source)

    assert conversion.reports[0]["sn"] == "SN-NEW"
    assert conversion.source_sha256 == hashlib.sha256(b"SN-OLD").hexdigest()


def test_a_per_converter_size_limit_still_applies_to_bytes_read_once(tmp_path: Path) -> None:
    source = rewriter_and_source(tmp_path, sidecar="PN")
    manager = manager_for(tmp_path, converters={"rewriter": {"max_size": 3}})
    with pytest.raises(
        ConversionError, match=r"unit\.dat: file is 6 bytes, larger than the limit of 3 bytes"
    ):
        manager.convert(source)


def test_peek_of_bytes_read_once_behaves_as_a_read(tmp_path: Path) -> None:
    write_plugin(
        tmp_path / "converters",
        "peeker.py",
        """
        class Peeker(BaseConverter):
            name = "peeker"
            patterns = ["*.dat"]

            def convert(self, file_path):
                whole, head = self.peek(file_path, -1), self.peek(file_path, 2)
                return UUTReport(pn=head.decode(), sn=whole.decode(), pass_fail=True,
                                 start_date_time="2026-03-01T10:00:00+01:00")
        """,
    )
    source = tmp_path / "unit.dat"
    source.write_text("SN-123")
    (report,) = manager_for(tmp_path).convert(source).reports
    assert (report["pn"], report["sn"]) == ("SN", "SN-123")


def test_a_file_that_grew_past_the_read_once_limit_is_not_held_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager_module, "READ_ONCE_LIMIT", 4)
    source = tmp_path / "unit.dat"
    source.write_text("SN-OLD")  # 6 bytes, though the size check saw 3
    (sha256, size), reads = manager_module._read_once(source, 3, 1000)
    assert (sha256, size) == (hashlib.sha256(b"SN-OLD").hexdigest(), 6)
    assert isinstance(reads, contextlib.nullcontext)


# --- what a converter author is told ------------------------------------------------------


def test_a_model_built_with_a_bad_value_is_described_like_a_bad_dict(tmp_path: Path) -> None:
    write_plugin(
        tmp_path / "converters",
        "empty_sn.py",
        """
        class EmptySerial(BaseConverter):
            name = "empty-sn"
            patterns = ["*.dat"]

            def convert(self, file_path):
                return UUTReport(pn="PN-1", sn="", pass_fail=True, start_date_time="2026-03-01")
        """,
    )
    source = tmp_path / "unit.dat"
    source.write_text("x")
    with pytest.raises(ConversionError) as caught:
        manager_for(tmp_path).convert(source)
    message = str(caught.value)
    line = PLUGIN_HEADER.count("\n") + 7
    assert message.startswith(
        f"unit.dat: converter 'empty-sn' built an invalid UUTReport (at empty_sn.py line {line}): "
        "sn: String should have at least 1 character (got '')"
    ), message
    assert "validation error for" not in message and "pydantic.dev" not in message
    assert caught.value.converter == "empty-sn"
    assert caught.value.__cause__ is None  # expected problem: no traceback in .error.txt


def test_no_converter_hint_names_the_patterns_key(tmp_path: Path) -> None:
    write_plugin(tmp_path / "converters", "simple.py", SIMPLE)
    source = tmp_path / "board17.res"
    source.write_text("x")
    with pytest.raises(ConversionError) as caught:
        manager_for(tmp_path).convert(source)
    message = str(caught.value)
    assert "simple (name does not match *.dat)" in message
    assert message.endswith(
        "Add a converter plugin for this format (docs/converters.md); or add '*.res' to the "
        'patterns of the converter that should take it, in the config: "converters": '
        '{"<name>": {"patterns": [..., "*.res"]}}'
    ), message
    (tmp_path / "converters" / "simple.py").unlink()
    write_plugin(
        tmp_path / "converters",
        "picky.py",
        """
        class Picky(BaseConverter):
            name = "picky"
            patterns = ["*.res"]

            def can_convert(self, file_path):
                return self.peek(file_path).startswith(b"# BENCHTEST")

            def convert(self, file_path):
                return []
        """,
    )
    with pytest.raises(ConversionError) as caught:
        manager_for(tmp_path, builtins=True).convert(source)
    message = str(caught.value)
    assert "picky (declined)" in message
    assert "; or if picky should take it, check what its can_convert looks for (" in message
    assert "raise ready_after, or use ready_marker); or add '*.res'" in message


SETUP_PROBLEMS = """
class Picky(BaseConverter):
    name = "picky"

    def configure(self, settings):
        if not isinstance(settings.get("process_code"), int):
            raise ValueError("converters.picky.process_code must be a number")
        super().configure(settings)

    def convert(self, file_path):
        return []


class Buggy(BaseConverter):
    name = "buggy"

    def configure(self, settings):
        settings.nonexistent()

    def convert(self, file_path):
        return []


class Fine(BaseConverter):
    name = "fine"

    def convert(self, file_path):
        return []


class Typo(BaseConverter):
    name = "typo"

    def conver(self, file_path):
        return []


class SharedBase(BaseConverter):  # abstract on purpose: a base of Derived
    def helper(self):
        return 1


class BaseForOtherFiles(BaseConverter):  # abstract on purpose, named as a base
    pass


class _Mixin(BaseConverter):
    pass


class Derived(SharedBase):
    name = "derived"

    def convert(self, file_path):
        return []
"""


def test_each_load_problem_is_reported_once_with_its_line_and_what_to_do(
    tmp_path: Path,
) -> None:
    path = write_plugin(tmp_path / "converters", "setup.py", SETUP_PROBLEMS)
    manager = manager_for(
        tmp_path, converters={"picky": {"process_code": "ten"}, "buggy": {}, "fien": {}}
    )
    problems = manager.load()
    assert sorted(i.name for i in manager.converters) == ["derived", "fine"]
    errors = sorted(p.error for p in problems)

    def line(needle: str) -> int:
        lines = (PLUGIN_HEADER + SETUP_PROBLEMS).splitlines()
        return next(n for n, text in enumerate(lines, start=1) if needle in text)

    typo, buggy, picky = line("class Typo("), line("nonexistent()"), line("raise ValueError")
    assert errors == [
        f"class Typo (line {typo}) has no convert(), so it is not used; "
        "rename conver() to convert()",
        f"converter 'buggy' is not used: configure() raised line {buggy}: AttributeError: "
        "'dict' object has no attribute 'nonexistent'; fix the converter's configure()",
        f"converter 'picky' is not used: line {picky}: converters.picky.process_code must be "
        "a number; fix converters.picky in the config",
        "converters.fien: no converter of that name was found (found: buggy, derived, fine, "
        "picky); did you mean 'fine'? Fix the name or remove the settings",
    ]
    assert {p.file for p in problems if p.origin != "config"} == {path}


def test_load_leaves_reporting_to_its_caller_and_an_implicit_load_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_plugin(tmp_path / "converters", "broken.py", "import no_such_module_here\n")
    write_plugin(tmp_path / "converters", "simple.py", SIMPLE)
    with caplog.at_level(logging.DEBUG, logger="pywats_client.converters"):
        problems = manager_for(tmp_path).load()
    (problem,) = problems
    assert "install 'no_such_module_here'" in problem.error
    assert "no_such_module_here" not in caplog.text  # the caller shows it: once
    caplog.clear()
    source = tmp_path / "u.dat"
    source.write_text("x")
    with caplog.at_level(logging.WARNING, logger="pywats_client.converters"):
        manager_for(tmp_path).convert(source)  # nobody asked for the problems: logged
    logged = [r for r in caplog.records if "no_such_module_here" in r.getMessage()]
    assert len(logged) == 1


def test_a_raising_can_convert_is_logged_once_not_per_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_plugin(
        tmp_path / "converters",
        "flaky.py",
        """
        class Flaky(BaseConverter):
            name = "flaky"

            def can_convert(self, file_path):
                raise OSError("share went away")

            def convert(self, file_path):
                return []
        """,
    )
    write_plugin(tmp_path / "converters", "simple.py", SIMPLE)
    manager = manager_for(tmp_path)
    assert manager.load() == []
    with caplog.at_level(logging.WARNING, logger="pywats_client.converters"):
        for n in range(3):
            source = tmp_path / f"u{n}.dat"
            source.write_text("x")
            assert manager.convert(source).converter == "simple"
            manager.candidates(source)  # as `pywats-client convert` does after a failure
    warnings = [r.getMessage() for r in caplog.records if "share went away" in r.getMessage()]
    assert len(warnings) == 1
    line = PLUGIN_HEADER.count("\n") + 6
    assert f"(at flaky.py line {line})" in warnings[0] and "return False" in warnings[0]


def test_a_timed_out_conversion_names_the_converter_it_was_running(tmp_path: Path) -> None:
    import asyncio

    from pywats_client.services._convert_runner import ConvertRunner

    write_plugin(
        tmp_path / "converters",
        "slow.py",
        """
        import threading

        GATE = threading.Event()

        class Slow(BaseConverter):
            name = "slow"
            patterns = ["*.dat"]
            gate = GATE

            def convert(self, file_path):
                GATE.wait(30)
                return []

        class Undecided(BaseConverter):  # hangs before any converter is chosen
            name = "undecided"
            patterns = ["*.hang"]

            def can_convert(self, file_path):
                GATE.wait(30)
                return False

            def convert(self, file_path):
                return []
        """,
    )
    manager = manager_for(tmp_path)
    assert manager.load() == []
    slow_file, hang_file = tmp_path / "a.dat", tmp_path / "b.hang"
    slow_file.write_text("x")
    hang_file.write_text("x")
    gate = manager.get("slow").gate  # type: ignore[union-attr]

    async def main() -> None:
        runner = ConvertRunner(manager.convert, workers=2, timeout=2.0)
        try:
            slow, undecided = await asyncio.gather(runner.run(slow_file), runner.run(hang_file))
        finally:
            gate.set()
            runner.close()
        assert slow.timed_out and slow.converter == "slow"
        assert undecided.timed_out and undecided.converter is None

    asyncio.run(main())
    wait_until(lambda: not manager_module._RUNNING, message="the released thread to finish")


def test_each_plugin_import_is_logged_first_so_a_plugin_that_ends_the_process_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A plugin calling os._exit at import leaves no traceback; the log's last line names it."""
    path = write_plugin(tmp_path / "converters", "simple.py", SIMPLE)
    with caplog.at_level(logging.INFO, logger="pywats_client.converters"):
        manager_for(tmp_path).load()
    assert f"importing converter plugin {path}" in caplog.text
