"""A small part of scripts/torture.py (docs/torture.md holds the whole): a SIGKILL halfway through a checkpoint
write and one before the first checkpoint; a file size limit; the corpus cases tagged "ci"
(scripts/torture_corpus.py, the list the script runs). The other kill targets (link swap, pruning, samples,
evaluation, random moments) run only in the script: each kill costs three CLI processes."""

from __future__ import annotations

import random
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import torture  # noqa: E402
from torture_corpus import CASES, run_case  # noqa: E402


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(root, the uninterrupted run, its activity durations); root holds the warm classifier cache."""
    root = tmp_path_factory.mktemp("torture")
    return (root, *torture.reference_run(root))


@pytest.mark.parametrize("target", ["ckpt-write", "first"])
def test_a_killed_run_resumes_to_the_uninterrupted_result(reference, target):
    root, ref, spans = reference
    kill = torture.kill_once(target, root, ref, spans, random.Random(0))
    assert kill.landed.startswith("step" if target == "first" else target)
    if target == "first":  # resume=<dir> was a one-line error, and a new run in the directory equals the reference
        assert kill.saved is None and kill.resumed is None
    else:
        assert kill.saved is not None and kill.resumed >= kill.saved
    assert kill.losses == []


def test_a_file_size_limit_stops_the_run_with_one_line_and_keeps_the_checkpoint(reference):
    root, ref, _ = reference
    [row] = torture.disk_cases(root, ref, which=("fsize",))
    assert row["result"] == "ok" and row["status"] == 1 and row["last.pt step"] == torture.STEPS
    assert f"step_{torture.STEPS + 3:07d}.pt: File too large" in row["line"]


@pytest.fixture(scope="module")
def corpus_root(reference):
    root, ref, _ = reference
    return torture.corpus_root(root, ref)


@pytest.mark.parametrize("case", [c for c in CASES if "ci" in c.tags], ids=lambda c: c.name)
def test_bad_input_is_one_line_naming_it_and_overwrites_nothing(case, corpus_root):
    outcome = run_case(case, corpus_root)
    assert outcome.failures == [], outcome.line


def test_the_corpus_has_forty_cases_with_distinct_names():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)
