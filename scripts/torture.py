"""Faults and bad input, measured: SIGKILLs at chosen moments, full disks and read-only outputs, bad inputs.

    python scripts/torture.py                    # 27 kills, the disk cases, the whole corpus -> docs/torture.md
    python scripts/torture.py --kills 9 --no-corpus --no-doc

Kills. A tiny run (DCGAN on 64 shapes, 12 steps of 8 images, a sample grid every 2 steps, a checkpoint every 3,
one numbered checkpoint kept, classifier-FID every 6 steps) runs through the real CLI in a child process that
announces on stderr when a step, a sample grid, a checkpoint or an evaluation begins and ends. The parent
kills it with SIGKILL at a target drawn per kill: a random moment inside a step (a random delay within the
reference run's mean step, after the step began), a random moment of the whole run, the first step (before
any checkpoint), or one of six points where the child pauses (announcing it) so that the kill lands there:
halfway through writing a checkpoint's temporary file, halfway through a sample PNG's temporary file, after
the numbered checkpoint is written but before last.pt is linked to it, after the link is made but before it
replaces last.pt, before pruning, and inside an evaluation (its value computed, not yet logged nor kept as
best.pt). Where each
kill landed is read from the child's announcements. After the kill the run directory must hold a loadable
checkpoint of at least the last step whose checkpoint was announced complete, `gan-lab train resume=<dir>`
must continue from it and finish, and the finished run must equal an uninterrupted one: every checkpoint
file (all tensors and values but the wall-clock `elapsed`), every sample PNG byte for byte, the TensorBoard
scalars, and no temporary file left. A kill before the first checkpoint must make `resume=<dir>` a one-line
error (exit 1) and a new run in the same directory must then equal the uninterrupted one. Anything else
is a loss.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torture_child import MARK, PAUSES  # noqa: E402
from torture_corpus import CASES, GAN_LAB, environment, error_line, run_case  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STEPS = 12
KILL_RUN = ["model=dcgan", "dataset.count=64", f"train.steps={STEPS}", "train.batch_size=8", "train.log_every=1",
            "train.sample_every=2", "train.ckpt_every=3", "train.keep_ckpts=1", "train.grid_size=8",
            "train.progress=plain", "hardware=cpu", "eval.every=6", "eval.features=classifier",
            "eval.classifier.steps=10", "eval.num_samples=32"]
TARGETS = ("step", "ckpt-write", "sample-write", "link", "swap", "prune", "eval", "random", "first")


# -- the parent --

@dataclass
class Child:
    output: str
    events: list[tuple[float, str]]  # (seconds since start, announcement)
    status: int


def launch(run_dir: Path, env: dict, target: str = "none", nth: int = 1, trigger=None) -> Child:
    """Run the tiny training run as a child; ``trigger(announcement)`` -> None or a delay after which to SIGKILL it."""
    cmd = [sys.executable, str(Path(__file__).with_name("torture_child.py")), target, str(nth), "train", *KILL_RUN,
           f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    start, lines, events = time.monotonic(), [], []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(MARK):
            events.append((time.monotonic() - start, line[len(MARK):].strip()))
            delay = trigger(events[-1][1]) if trigger else None
            if delay is not None:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                break
    rest = proc.stdout.read()  # what the child wrote before it died, read after the kill
    events += [(float("nan"), line[len(MARK):].strip()) for line in rest.splitlines() if line.startswith(MARK)]
    return Child("".join(lines) + rest, events, proc.wait())


def landed(events: list[str]) -> str:
    """Where the kill landed: the pause point, else the innermost activity begun and not ended."""
    if events and events[-1].startswith("pause "):
        return events[-1].split()[1]
    open_ = []
    for event in events:
        kind, label = event.split()[:2]
        if kind == "begin":
            open_.append(label)
        elif kind == "end" and open_:
            open_.pop()
    return {"save": "checkpoint", "sample": "sample grid"}.get(open_[-1], open_[-1]) if open_ else "between steps"


def durations(events: list[tuple[float, str]]) -> dict[str, float]:
    """Mean seconds of each activity in a reference run's announcements; 'run': first step to the end."""
    begun, spans = {}, collections.defaultdict(list)
    for t, event in events:
        kind, label = event.split()[:2]
        if kind == "begin":
            begun[label] = t
        elif kind == "end" and label in begun:
            spans[label].append(t - begun.pop(label))
    out = {label: sum(v) / len(v) for label, v in spans.items()}
    out["run"] = events[-1][0] - events[0][0]
    return out


def cli(args: list[str], env: dict, **kwargs) -> tuple[int, str]:
    done = subprocess.run([*GAN_LAB, *args], capture_output=True, text=True, env=env, **kwargs)
    return done.returncode, done.stdout + done.stderr


def same(a, b, path: str = "") -> str | None:
    """None if equal (tensors bit for bit), else where they first differ."""
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return f"{path or 'keys'}: {sorted(set(a) ^ set(b if isinstance(b, dict) else {}))}"
        return next((d for k in a if (d := same(a[k], b[k], f"{path}.{k}")) is not None), None)
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return path
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := same(x, y, f"{path}[{i}]")) is not None), None)
    if isinstance(a, torch.Tensor):
        return None if isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b) else path
    return None if a == b else path


def scalars(run_dir: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # its note on the purged steps of a resumed run
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]
            if not tag.startswith("perf/")}


def compare(reference: Path, run_dir: Path) -> list[str]:
    """How a finished run differs from the uninterrupted reference (empty: not at all)."""
    from gan_lab.engine import checkpoint

    problems = []
    for sub in ("checkpoints", "samples"):
        ref = sorted(p.name for p in (reference / sub).iterdir())
        got = sorted(p.name for p in (run_dir / sub).iterdir())
        if ref != got:
            problems.append(f"{sub}/ holds {sorted(set(got) ^ set(ref))} unlike the uninterrupted run")
    for name in sorted(p.name for p in (reference / "checkpoints").glob("*.pt")):
        if not (run_dir / "checkpoints" / name).is_file():
            continue
        a, b = (checkpoint.load(d / "checkpoints" / name) for d in (reference, run_dir))
        for state in (a, b):
            state.pop("elapsed")
            state["config"].pop("resume")
        if (where := same(a, b)) is not None:
            problems.append(f"checkpoints/{name} differs at {where}")
    for png in sorted((reference / "samples").glob("*.png")):
        other = run_dir / "samples" / png.name
        if other.is_file() and other.read_bytes() != png.read_bytes():
            problems.append(f"samples/{png.name} differs")
    if scalars(reference) != scalars(run_dir):
        problems.append("the TensorBoard scalars differ")
    return problems


@dataclass
class Kill:
    target: str
    landed: str
    saved: int | None  # the last step whose checkpoint was complete before the kill
    resumed: int | None  # the step the resumed run continued from
    losses: list[str] = field(default_factory=list)


def kill_once(target: str, root: Path, reference: Path, spans: dict, rng: random.Random) -> Kill:
    """One killed run, checked (module docstring); ``root`` holds the reference run and the warm cache."""
    from gan_lab.engine import checkpoint
    from gan_lab.errors import CheckpointError

    env = environment(root)
    run_dir = root / f"kill-{target}-{rng.randrange(10**6):06d}"
    shutil.rmtree(run_dir, ignore_errors=True)
    nth = {"ckpt-write": rng.randint(1, 5), "sample-write": rng.randint(1, 6), "link": rng.randint(1, 4),
           "swap": rng.randint(1, 4), "prune": rng.randint(1, 3), "eval": rng.randint(1, 2),
           "step": rng.randint(1, STEPS - 1)}.get(target, 1)
    if target in PAUSES:
        trigger = lambda event: 0.0 if event.startswith("pause") else None  # noqa: E731
    elif target == "step":
        seen = collections.Counter()

        def trigger(event):
            if event.startswith(f"begin {target}"):
                seen[target] += 1
                if seen[target] == nth:
                    return rng.uniform(0, spans[target])
            return None
    elif target == "random":
        trigger = lambda event: rng.uniform(0, 0.9 * spans["run"]) if event == "begin step 0" else None  # noqa: E731
    else:  # first: at the start of one of the steps before the first checkpoint (some already logged)
        first = f"begin step {rng.randrange(3)}"
        trigger = lambda event: 0.0 if event == first else None  # noqa: E731
    killed = launch(run_dir, env, target if target in PAUSES else "none", nth, trigger)
    names = [e for _, e in killed.events]
    saves = [int(e.split()[2]) for e in names if e.startswith("end save")]
    kill = Kill(target, landed(names), saves[-1] if saves else None, None)
    if not saves:
        kill.landed += ", before the first checkpoint"
    elif kill.landed == "between steps" and saves[-1] == STEPS:
        kill.landed = "after the final checkpoint"
    if killed.status != -signal.SIGKILL:
        kill.landed = "finished before the kill"
        return kill
    if checkpoint.newest(run_dir / "checkpoints") is None:
        status, out = cli(["train", f"resume={run_dir}"], env)
        if status != 1 or "Traceback" in out or "no checkpoint" not in out:
            kill.losses.append(f"resume without a checkpoint: exit {status}, {error_line(out)!r}")
        status, out = cli(["train", *KILL_RUN, f"hydra.run.dir={run_dir}"], env)  # start again
    else:
        try:
            kill.resumed = int(checkpoint.load(run_dir)["step"])
        except CheckpointError as err:
            kill.losses.append(f"no loadable checkpoint: {err}")
            return kill
        if kill.saved is not None and kill.resumed < kill.saved:
            kill.losses.append(f"continued from step {kill.resumed}, but step {kill.saved} had been saved")
        status, out = cli(["train", f"resume={run_dir}"], env)
        if status == 0 and f"at step {kill.resumed}" not in out:
            kill.losses.append("the resumed run did not say it continued from the checkpoint")
    if status != 0:
        kill.losses.append(f"the run did not finish: exit {status}, {error_line(out)!r}")
        return kill
    kill.losses += compare(reference, run_dir)
    leftovers = [p.name for p in run_dir.rglob(".*") if p.is_file() and p.parent.name in ("checkpoints", "samples")]
    if leftovers:
        kill.losses.append(f"left behind: {leftovers}")
    return kill


def reference_run(root: Path) -> tuple[Path, dict]:
    """The uninterrupted run (root/reference) and its mean activity durations; warms root/cache."""
    reference = root / "reference"
    shutil.rmtree(reference, ignore_errors=True)
    done = launch(reference, environment(root))
    if done.status != 0:
        raise RuntimeError(f"the reference run failed:\n{done.output}")
    return reference, durations(done.events)


def corpus_root(root: Path, reference: Path) -> Path:
    """root/corpus for ``torture_corpus.run_case``: copies of the reference run ("good") and its warm cache."""
    corpus = root / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.copytree(reference, corpus / "good")
    shutil.copytree(root / "cache", corpus / "cache")
    return corpus


# -- disk full, file size limit, read-only outputs --

def _limit_file_size(size: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit raises EFBIG, not a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return apply


def _mount(args: list[str]) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def disk_cases(root: Path, reference: Path,
               which=("fsize", "tmpfs", "ro-checkpoints", "ro-run", "ro-sample")) -> list[dict]:
    """Each case: the command must stop with exit 1 and one line naming the file (a run: and the last good
    checkpoint), which stays byte-identical and loadable; no temporary file is left. Returns table rows."""
    from gan_lab.engine import checkpoint

    env, rows = environment(root), []
    ckpt_size = (reference / "checkpoints" / "last.pt").stat().st_size
    for case in which:
        where = root / f"disk-{case}"
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        run_dir, kwargs, mounts = where / "run", {}, []
        args = ["train", f"resume={run_dir}", f"train.steps={STEPS + 3}"]
        if case == "ro-sample":
            (where / "ro").mkdir()
            args = ["sample", f"ckpt={run_dir}", f"out={where / 'ro' / 'grid.png'}"]
        if case == "tmpfs":  # a fresh run on a disk that holds one checkpoint and a half
            mounts.append(where)
            if not _mount(["-t", "tmpfs", "-o", f"size={ckpt_size * 3 // 2 + 2**18}", "tmpfs", str(where)]):
                rows.append({"case": case, "result": "skipped: cannot mount a tmpfs (needs root)"})
                continue
            args = ["train", *KILL_RUN, f"hydra.run.dir={run_dir}"]
        else:
            shutil.copytree(reference, run_dir)
        if case == "fsize":
            kwargs["preexec_fn"] = _limit_file_size(ckpt_size // 2)
        for target in {"ro-checkpoints": [run_dir / "checkpoints"], "ro-run": [run_dir],
                       "ro-sample": [where / "ro"]}.get(case, []):
            if not (_mount(["--bind", str(target), str(target)]) and _mount(["-o", "remount,bind,ro", str(target)])):
                rows.append({"case": case, "result": "skipped: cannot bind-mount read-only (needs root)"})
                break
            mounts.append(target)
        else:
            before = (run_dir / "checkpoints" / "last.pt").read_bytes() if case != "tmpfs" else None
            status, out = cli(args, env, **kwargs)
            last = run_dir / "checkpoints" / "last.pt"
            problems = [p for p, bad in (
                (f"exit {status}", status != 1), ("a traceback", "Traceback" in out),
                ("no 'last good checkpoint'",
                 args[0] == "train" and "last good checkpoint" not in out),
                ("last.pt changed", before is not None and last.read_bytes() != before),
                ("left a temporary file", any(p.name.endswith((".tmp", ".link")) for p in run_dir.rglob(".*")))) if bad]
            try:
                step = checkpoint.load(last)["step"]
            except Exception as err:  # noqa: BLE001 - any failure to load is the finding
                problems.append(f"last.pt not loadable: {err}")
                step = None
            rows.append({"case": case, "status": status, "line": error_line(out), "last.pt step": step,
                         "result": "ok" if not problems else "; ".join(problems)})
        for mount in reversed(mounts):
            subprocess.run(["umount", str(mount)], capture_output=True)
    return rows


DISK_WHAT = {"fsize": f"RLIMIT_FSIZE below one checkpoint, resume to step {STEPS + 3}",
             "tmpfs": "tmpfs with room for 1.5 checkpoints, a new run",
             "ro-checkpoints": f"checkpoints/ bind-mounted read-only, resume to step {STEPS + 3}",
             "ro-run": f"the whole run directory read-only, resume to step {STEPS + 3} (no train.log nor .hydra/ "
                       f"there: gan-lab's first write names the file)",
             "ro-sample": "`gan-lab sample out=<read-only folder>/grid.png`"}


# -- the report --

def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def table(header: list[str], rows: list[list]) -> str:
    clean = [[str(c).replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(row) + " |" for row in clean)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=27)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=Path("/tmp/torture"))
    parser.add_argument("--no-corpus", action="store_true")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    root, rng, started = args.root, random.Random(args.seed), time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    reference, spans = reference_run(root)
    print(f"reference run: {spans['run']:.1f} s; a step {spans['step'] * 1000:.0f} ms, an evaluation "
          f"{spans['eval'] * 1000:.0f} ms", flush=True)
    kills = []
    for i in range(args.kills):
        kills.append(kill_once(TARGETS[i % len(TARGETS)], root, reference, spans, rng))
        k = kills[-1]
        print(f"kill {i + 1}/{args.kills}: aimed at {k.target}, landed in {k.landed}, saved {k.saved}, "
              f"resumed {k.resumed}: {'; '.join(k.losses) or 'nothing lost'}", flush=True)
    disk = disk_cases(root, reference)
    for row in disk:
        print(f"disk {row['case']}: {row['result']} | {row.get('line', '')}", flush=True)
    outcomes = []
    if not args.no_corpus:
        corpus = corpus_root(root, reference)
        for case in CASES:
            outcomes.append(run_case(case, corpus))
            o = outcomes[-1]
            print(f"{case.name}: exit {o.status} {'; '.join(o.failures) or 'ok'} | {o.line}", flush=True)

    by_phase = collections.Counter(k.landed for k in kills)
    lost = collections.Counter(k.landed for k in kills if k.losses)
    losses = sum(1 for k in kills if k.losses)
    sections = [
        "# Torture: kills, full disks, bad input",
        f"Written by `python scripts/torture.py --kills {args.kills} --seed {args.seed}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {(time.monotonic() - started) / 60:.0f} minutes.  \n"
        f"Machine: {machine()}.",
        "## Kills (SIGKILL)",
        "Protocol: " + " ".join(__doc__.split("\n\n")[2].split()),
        f"Run: `gan-lab train {' '.join(KILL_RUN)}`; the reference run took {spans['run']:.1f} s from its first "
        f"step, a step {spans['step'] * 1000:.0f} ms, an evaluation {spans['eval'] * 1000:.0f} ms.",
        f"**N = {len(kills)} kills, {losses} losses.**",
        table(["landed in", "kills", "losses"], [[p, n, lost[p]] for p, n in sorted(by_phase.items())]),
        table(["#", "aimed at", "landed in", "last checkpoint saved", "resumed from", "result"],
              [[i + 1, k.target, k.landed, k.saved, k.resumed, "; ".join(k.losses) or "equal to uninterrupted"]
               for i, k in enumerate(kills)]),
        "## Disk full and read-only outputs",
        "Expected: exit 1, one line naming the file and the last good checkpoint, which stays byte-identical and "
        "loadable, no temporary file left. tmpfs and read-only bind mounts need root (skipped otherwise).",
        table(["case", "setting", "exit", "line", "last.pt step", "result"],
              [[r["case"], DISK_WHAT[r["case"]], r.get("status", ""), r.get("line", ""), r.get("last.pt step", ""),
                r["result"]] for r in disk]),
    ]
    if outcomes:
        failed = [o for o in outcomes if o.failures]
        sections += [
            "## Bad-input corpus",
            f"Each case runs the real CLI in a subprocess (`python -m gan_lab ...`, hydra.run.dir in a sandbox) and "
            f"checks: exit status 1 or 2 (0 where a corrupt cache entry must be rebuilt), no 'Traceback' in the "
            f"output, the output names the key or file, and every file that existed before (the run's "
            f"checkpoints, config.yaml, cache entries) is byte-identical after (a log may only grow). "
            f"**{len(outcomes)} cases, {len(failed)} failing.**",
            table(["case", "input", "names", "exit", "the line the user sees", "result"],
                  [[o.case.name, o.case.what, f"`{o.case.names}`", o.status, o.line[:160],
                    "; ".join(o.failures) or "ok"] for o in outcomes]),
        ]
    text = "\n\n".join(sections) + "\n"
    print(text)
    if not args.no_doc:
        (REPO / "docs" / "torture.md").write_text(text)


if __name__ == "__main__":
    main()
