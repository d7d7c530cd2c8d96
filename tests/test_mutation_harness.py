"""The mutation harnesses stay aimed at the code (docs/proofs.md §6): every hand-written mutant's
edit finds its text exactly once (a module split or a reformat silently turned one into a
no-op before), every mutant names the tests built to catch it, and every mutmut module's file
exists."""

from __future__ import annotations

import glob
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_hand_written_mutant_edits_text_found_exactly_once():
    m = _load("mutations")
    counts = {
        (name, path, old[:40]): (ROOT / path).read_text().count(old)
        for name, edits in m.MUTANTS.items()
        for path, old, _ in edits
    }
    assert counts and {k: n for k, n in counts.items() if n != 1} == {}
    assert set(m.NUMBERS) <= set(m.MUTANTS) and set(m.NUMBER_TESTS) == set(m.NUMBERS)
    for name, tests in m.NUMBER_TESTS.items():
        for test in tests:
            path, _, function = test.partition("::")
            assert f"def {function}(" in (ROOT / path).read_text(), (name, test)


def test_every_mutmut_module_names_a_file_and_its_tests():
    m = _load("mutation")
    for module, (pattern, tests) in m.MODULES.items():
        assert glob.glob(str(ROOT / pattern)), module
        for test in (t for t in tests if t.startswith("tests/")):
            path, _, function = test.partition("::")
            assert (ROOT / path).is_file(), (module, test)
            assert not function or f"def {function.split('[')[0]}(" in (ROOT / path).read_text(), (module, test)
