"""`roadpulse evaluate`: score the incident detectors on seeded simulations and on real data.

    roadpulse evaluate incidents [--scenarios K] [--seed S] [--out DIR] [--algorithms ...] [--quick] [--sumo]
    roadpulse evaluate metr-la [--data DIR] [--out DIR] [--algorithms ...]

``add_arguments(subparsers)`` adds the ``evaluate`` command to the main parser;
``run(args)`` executes it. ``python -m roadpulse.evaluate_cli ...`` works on its own too.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

ALGORITHM_NAMES = ("california7", "california8", "statistical")  # = stream.core.incidents.ALGORITHMS


def add_arguments(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add ``evaluate incidents`` and ``evaluate metr-la`` to a subparsers object."""
    ev = subparsers.add_parser(
        "evaluate", help="score the incident detectors (seeded scenarios, METR-LA)",
        description="Score California #7, #8 and the statistical detector side by side: on seeded simulated "
                    "scenarios with ground truth (incidents) or on the METR-LA week of real speeds (metr-la).")
    sub = ev.add_subparsers(dest="evaluate_command", metavar="WHAT")
    inc = sub.add_parser(
        "incidents", help="K seeded scenarios with ground truth -> DR, FAR, time to detect/clear, with 95%% CIs",
        description="Simulate K seeded scenarios (CTM by default; SUMO corridors too with --sumo): varied demand, "
                    "staged incidents (place, time, duration, lanes), incident-free days and detector faults. Every "
                    "algorithm runs on the same data; writes report.md, report.json and PNG plots to --out and "
                    "prints the table. Same seed, same report.")
    inc.add_argument("--scenarios", "-k", type=int, default=8, metavar="K", help="CTM scenarios (default 8)")
    inc.add_argument("--seed", type=int, default=1000,
                     help="first seed (default 1000: held out; the detectors were tuned on seeds 0-5)")
    inc.add_argument("--out", type=Path, default=Path("out/evaluation"), metavar="DIR",
                     help="report folder (default out/evaluation)")
    inc.add_argument("--algorithms", nargs="+", default=list(ALGORITHM_NAMES), choices=ALGORITHM_NAMES,
                     metavar="ALGO", help=f"subset of {', '.join(ALGORITHM_NAMES)} (default all)")
    inc.add_argument("--quick", action="store_true", help="one hour per scenario (smoke test), not whole days")
    inc.add_argument("--sumo", action="store_true", help="add SUMO corridor scenarios (needs roadpulse[sumo])")
    inc.add_argument("--sumo-scenarios", type=int, default=None, metavar="N",
                     help="how many SUMO scenarios with --sumo (default max(1, K/4))")
    inc.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                     help="processes (default: up to 2)")
    inc.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    inc.set_defaults(evaluate_handler=cmd_incidents)
    mla = sub.add_parser(
        "metr-la", help="replay the METR-LA week (real speeds) and count alarms per sensor-day",
        description="Replay the shared METR-LA week (../shared/data/metr-la-week: 207 LA sensors, 5-min speeds) through the pipeline as a "
                    "speed-only source (occupancy and flow derived from speed; stated in the report) and report "
                    "alarms per sensor-day on weekdays and the weekend for each algorithm.")
    mla.add_argument("--data", type=Path, default=None, metavar="DIR",
                     help="folder with los_speed.csv and los_adj.csv (default: ../shared/data/metr-la-week)")
    mla.add_argument("--out", type=Path, default=Path("out/evaluation"), metavar="DIR",
                     help="report folder (default out/evaluation)")
    mla.add_argument("--algorithms", nargs="+", default=list(ALGORITHM_NAMES), choices=ALGORITHM_NAMES,
                     metavar="ALGO", help="subset of the algorithms (default all)")
    mla.set_defaults(evaluate_handler=cmd_metr_la)
    ev.set_defaults(evaluate_parser=ev)
    return ev


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (written into the reports)."""
    algos = "" if list(args.algorithms) == list(ALGORITHM_NAMES) else " --algorithms " + " ".join(args.algorithms)
    if args.evaluate_command == "metr-la":
        return f"roadpulse evaluate metr-la --data {shlex.quote(str(args.data))}{algos}"
    flags = f" --scenarios {args.scenarios} --seed {args.seed}{algos}"
    flags += " --quick" if args.quick else ""
    if args.sumo:
        flags += " --sumo" + (f" --sumo-scenarios {args.sumo_scenarios}" if args.sumo_scenarios is not None else "")
    return "roadpulse evaluate incidents" + flags


def cmd_incidents(args: argparse.Namespace) -> int:
    from stream.evaluation.report import evaluate_incidents, summary_table
    from stream.evaluation.scenarios import default_scenarios

    if args.scenarios < 1:
        raise ValueError("--scenarios must be >= 1")
    scenarios = default_scenarios(args.scenarios, seed=args.seed, quick=args.quick, sumo=args.sumo,
                                  k_sumo=args.sumo_scenarios)

    def progress(r) -> None:
        print(f"  {r.scenario.scenario_id:<12} {r.hours:5.1f} h simulated in {r.wall_s:6.1f} s, "
              f"{len(r.truths)} incidents: " + ", ".join(f"{a} {o.hits} hits/{o.false_alarms} FA"
                                                        for a, o in r.outcomes.items()), file=sys.stderr)

    print(f"evaluating {len(scenarios)} scenarios with {args.workers} worker(s)...", file=sys.stderr)
    report = evaluate_incidents(scenarios, args.out, algorithms=args.algorithms, workers=args.workers,
                                command=_command(args), plots=not args.no_plots, progress=progress)
    for group, rows in report.groups.items():
        print(f"\n{group}:\n{summary_table(rows)}")
    print(f"\nreport: {args.out / 'report.md'} (JSON: report.json; figures: {', '.join(report.files) or 'none'})")
    return 0


def cmd_metr_la(args: argparse.Namespace) -> int:
    from stream.evaluation.metr_la import DEFAULT_DIR, evaluate_metr_la, markdown

    args.data = args.data or DEFAULT_DIR
    result = evaluate_metr_la(args.data, args.algorithms, args.out, command=_command(args))
    print(markdown(result))
    print(f"report: {args.out / 'metr_la.md'} (JSON: metr_la.json)")
    return 0


def run(args: argparse.Namespace) -> int:
    """Execute a parsed ``evaluate`` command."""
    handler = getattr(args, "evaluate_handler", None)
    if handler is None:
        args.evaluate_parser.print_help()
        return 2
    return handler(args)


def main(argv: list[str] | None = None) -> int:
    """Standalone: ``python -m roadpulse.evaluate_cli incidents --quick``."""
    parser = argparse.ArgumentParser(prog="roadpulse")
    add_arguments(parser.add_subparsers(dest="command"))
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(["evaluate", *argv])
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"roadpulse evaluate: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
