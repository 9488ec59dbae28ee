"""``gan-lab report path=<run or sweep dir>``: one self-contained HTML page of a run or a sweep, and a
markdown twin.

The page holds the resolved config (a sweep: the keys that differ between jobs, the shared ones collapsed),
the environment (``<run>/env.json``: versions, device, git commit, CPU), the loss and metric curves of the
run's TensorBoard events, the newest sample grid of each name, and a sortable table of the metrics of
``gan-lab eval`` (``<run>/eval/*.json``; a sweep: one row per job, its newest evaluation). Numbers measured
under different protocols (``gan_lab.metrics.protocol``) never share a column: such a metric gets one
column per protocol and a note that names the protocol entries that differ. Rendering (plots, HTML,
markdown) is ``gan_lab.report_render``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_lab import config as config_lib
from gan_lab import environment
from gan_lab.errors import ConfigError, exit_on_error
from gan_lab.metrics.protocol import flatten, of_key

log = logging.getLogger("gan_lab")

config_lib.register()

_STEP = re.compile(r"[_-](\d{7})")  # the step in a grid's file name: fixed_0000400.png, sample-0000400-seed0.png


@dataclass
class Table:
    """``columns`` and ``rows`` of cell values (str, int, float or None); ``notes`` are printed under it."""

    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Run:
    """What the report reads of one run directory."""

    name: str                              # the job's directory name in a sweep; "" for a lone run
    path: Path
    config: dict                           # flat: dotted key -> value
    env: list[dict]                        # one entry per training session
    scalars: dict[str, list[tuple[int, float]]]
    grids: list[tuple[str, int, Path]]     # (name, step, file): the newest grid of each name
    evals: list[tuple[Path, dict]]         # eval reports, oldest first


@dataclass
class Report:
    path: Path
    kind: str                              # "run" or "sweep"
    runs: list[Run]
    config: Table                          # per job, the keys that differ (a lone run: none)
    shared_config: str                     # YAML of the keys every job shares
    environment: Table                     # per session, the entries that differ
    shared_environment: dict
    metrics: Table
    shared_protocol: dict                  # the protocol entries every number in the table shares


def unflatten(flat: dict) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def is_run(path: Path) -> bool:
    """A directory ``gan-lab train`` wrote: its resolved ``config.yaml`` beside ``tb/`` or ``checkpoints/``."""
    return (path / "config.yaml").is_file() and ((path / "tb").is_dir() or (path / "checkpoints").is_dir())


def find_runs(path: Path) -> tuple[str, list[Path]]:
    """("run", [path]) or ("sweep", its job directories in job order); else a ConfigError naming ``path``.
    A sweep is the directory of ``gan-lab train -m``: Hydra's ``multirun.yaml`` (written whatever the
    launcher) beside job sub-directories that are runs."""
    path = Path(path).expanduser()
    if path.is_dir() and is_run(path):
        return "run", [path]
    jobs = []
    if (path / "multirun.yaml").is_file():
        jobs = sorted((p for p in path.iterdir() if p.is_dir() and is_run(p)),
                      key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    if not jobs:
        raise ConfigError(f"path={path} is neither a run directory (config.yaml with tb/ or checkpoints/) nor a "
                          f"sweep directory (multirun.yaml with job sub-directories that are runs)")
    return "sweep", jobs


def read_scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of a run's TensorBoard events (all of them, not a sample)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    if not tb_dir.is_dir():
        return {}
    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its INFO lines name every event file it reads
    acc = EventAccumulator(str(tb_dir), size_guidance={SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in sorted(acc.Tags()["scalars"])}


def newest_grids(samples: Path) -> list[tuple[str, int, Path]]:
    """The newest ``samples/*.png`` of each name (the file name without its step), by step then time."""
    newest: dict[str, tuple[int, float, Path]] = {}
    for file in sorted(samples.glob("*.png")) if samples.is_dir() else []:
        match = _STEP.search(file.stem)
        name = _STEP.sub("", file.stem, count=1) if match else file.stem
        key = (int(match.group(1)) if match else -1, file.stat().st_mtime, file)
        if name not in newest or key[:2] > newest[name][:2]:
            newest[name] = key
    return [(name, step, file) for name, (step, _, file) in sorted(newest.items())]


def read_evals(eval_dir: Path) -> list[tuple[Path, dict]]:
    out = []
    for file in sorted(eval_dir.glob("*.json")) if eval_dir.is_dir() else []:
        try:
            out.append((file, json.loads(file.read_text())))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{file} is not a readable eval report ({type(err).__name__}); delete it or "
                              f"run gan-lab eval again") from None
    return out


def read_run(path: Path, name: str) -> Run:
    config = OmegaConf.to_container(OmegaConf.load(path / "config.yaml"), resolve=False)
    return Run(name, path, flatten(config), environment.read(path), read_scalars(path / "tb"),
               newest_grids(path / "samples"), read_evals(path / "eval"))


def compare(records: list[tuple[str, dict]], label: str) -> tuple[dict, Table]:
    """(entries every record shares, a table of the others: one row per record, first column ``label``)."""
    keys = list(dict.fromkeys(k for _, record in records for k in record))
    missing = object()
    shared = {k: records[0][1][k] for k in keys
              if all(record.get(k, missing) == records[0][1].get(k, missing) for _, record in records)}
    differing = [k for k in keys if k not in shared]
    return shared, Table([label, *differing], [[name, *(record.get(k) for k in differing)] for name, record in records])


def metric_table(runs: list[Run], kind: str, config: Table) -> tuple[Table, dict]:
    """(one row per evaluation (a sweep: each job's newest) and a column per metric and protocol, the protocol
    entries every number shares)."""
    if kind == "sweep":
        rows = [(run, *run.evals[-1]) for run in runs if run.evals]
        label, extra = "job", config.columns[1:]
    else:
        rows = [(run, file, report) for run in runs for file, report in run.evals]
        label, extra = "evaluation", []
    by_job = {row[0]: row[1:] for row in config.rows}
    keys = list(dict.fromkeys(k for _, _, report in rows for k in report.get("metrics", {})))
    columns, cells, splits, protocols = [], [], {}, []
    for key in keys:
        groups: dict[str, list[int]] = {}
        for i, (_, _, report) in enumerate(rows):
            if key in report.get("metrics", {}):
                protocols.append((key, of_key(report.get("protocol"), key)))
                groups.setdefault(json.dumps(protocols[-1][1], sort_keys=True), []).append(i)
        for letter, (fingerprint, members) in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", groups.items()):
            columns.append(key if len(groups) == 1 else f"{key} [{letter}]")
            cells.append({i: rows[i][2]["metrics"][key] for i in members})
        if len(groups) > 1:
            splits[key] = [(json.loads(f), [rows[i] for i in m]) for f, m in groups.items()]
    table = Table([label, *extra, "step", *columns])
    for i, (run, file, report) in enumerate(rows):
        name = run.name if kind == "sweep" else file.stem
        table.rows.append([name, *by_job.get(run.name, [None] * len(extra)), report.get("step"),
                           *(column.get(i) for column in cells)])
    table.notes = protocol_notes(splits, kind)
    return table, compare(protocols, "metric")[0] if protocols else {}


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text[:12] + "..." if re.fullmatch(r"[0-9a-f]{64}", text) else text


def protocol_notes(splits: dict[str, list[tuple[dict, list]]], kind: str) -> list[str]:
    """One line per set of metrics split the same way: the protocols, their rows, the entries that differ."""
    notes: dict[str, list[str]] = {}
    for key, groups in splits.items():
        entries = list(dict.fromkeys(k for protocol, _ in groups for k in protocol))
        differing = [k for k in entries if len({json.dumps(p.get(k)) for p, _ in groups}) > 1]
        parts = []
        for letter, (protocol, rows) in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", groups):
            names = ", ".join(run.name if kind == "sweep" else file.stem for run, file, _ in rows)
            values = "; ".join(f"{k}={_short(protocol.get(k))}" for k in differing)
            parts.append(f"[{letter}] {names}: {values}")
        notes.setdefault(" | ".join(parts), []).append(key)
    return [f"{', '.join(keys)}: measured under {len(splits[keys[0]])} protocols, kept in separate columns. "
            f"{text}" for text, keys in notes.items()]


def build(path: Path) -> Report:
    """Read a run or a sweep directory into a :class:`Report` (no rendering)."""
    kind, paths = find_runs(path)
    runs = [read_run(p, p.name if kind == "sweep" else "") for p in paths]
    shared, config = compare([(run.name, run.config) for run in runs], "job")
    sessions = [(f"{run.name} #{i + 1}" if kind == "sweep" else f"session {i + 1}", flatten(env))
                for run in runs for i, env in enumerate(run.env)]
    shared_env, env_table = compare(sessions, "session") if sessions else ({}, Table(["session"]))
    return Report(Path(path), kind, runs, config, OmegaConf.to_yaml(OmegaConf.create(unflatten(shared))),
                  env_table, shared_env, *metric_table(runs, kind, config))


def write(cfg: DictConfig) -> dict[str, Path]:
    """Build and write ``report.html``, ``report.md`` and ``report_files/`` into ``cfg.out`` (default: the
    directory itself); returns the files written."""
    from gan_lab.report_render import render

    if OmegaConf.is_missing(cfg, "path"):
        raise ConfigError("path= is missing: gan-lab report path=<run or sweep directory>")
    report = build(Path(cfg.path))
    out = Path(cfg.out or cfg.path).expanduser()
    files = render(report, out)
    log.info("report of %s (%s, %d run%s): %s", report.path, report.kind, len(report.runs),
             "s" if len(report.runs) != 1 else "", files["html"])
    return files


@hydra.main(config_path="pkg://gan_lab.configs", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_error(write, cfg)


if __name__ == "__main__":
    main()
