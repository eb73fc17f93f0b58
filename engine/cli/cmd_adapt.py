"""``shotoku adapt``: learn from the user's own songs (no stems needed) into a model of their own.

::

    shotoku adapt --songs DIR [--instrumentals DIR] --name my-model [--max-minutes 60] [--from semisup]
    shotoku adapt --list                   # your models and the adaptations that can be resumed
    shotoku adapt --remove my-model        # delete one of your models

Running the same command again resumes an adaptation that was stopped (Ctrl-C, a crash): the passages already
found and the last finished epoch are kept. See :mod:`engine.adapt.job`.
"""

from __future__ import annotations

import argparse
import sys
import threading

from engine.progress import ProgressBar


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("adapt", help="adapt the semi-supervised separator to your own songs (no stems)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--songs", help="folder of your songs (any format Shotoku opens; searched recursively)")
    p.add_argument("--instrumentals", help="optional folder of instrument-only recordings (instrumental versions, "
                                           "karaoke or backing tracks)")
    p.add_argument("--name", help="the new model's name (letters, digits, '.', '_', '-')")
    p.add_argument("--max-minutes", type=float, default=60.0, help="time budget of the whole job (default 60): it "
                                                                   "stops with the best model so far")
    p.add_argument("--from", dest="source", default=None, help="the semi-supervised model to adapt (default: the "
                                                               "shipped 'semisup')")
    p.add_argument("--detector", default=None, help="the vocals model that finds passages without singing "
                                                    "(default: the default model)")
    p.add_argument("--replace", action="store_true", help="replace your model of that name when done")
    p.add_argument("--restart", action="store_true", help="discard an unfinished adaptation of that name first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the thread rule)")
    p.add_argument("--list", action="store_true", help="list your models and the unfinished adaptations")
    p.add_argument("--remove", metavar="NAME", help="delete your model NAME")
    p.set_defaults(run=run)


def _list() -> int:
    from engine.adapt.job import unfinished_jobs
    from engine.models.catalogue import is_user_model, list_cards

    mine = [c for c in list_cards() if is_user_model(c)]
    print("your models:" if mine else "you have no model of your own yet (shotoku adapt --songs DIR --name NAME)")
    for card in mine:
        print(f"  {card.name}: {card.summary}")
    for state in unfinished_jobs():
        request = state["request"]
        print(f"unfinished: {request['name']} ({state.get('phase')}; songs {request['songs']}): run the same "
              "command again to resume")
    return 0


def _found(found: dict) -> str:
    minutes = found["minutes"]
    held = len(found["heldout_songs"])
    return (f"found in {len(found['songs']) + held} song(s): {minutes['mixtures']:.1f} min with singing, "
            f"{minutes['instrumentals']:.1f} min without (training), {minutes['heldout']:.1f} min held out for "
            f"scoring ({held} song(s) kept out of the adaptation)"
            + (f"; {len(found['skipped'])} file(s) skipped" if found["skipped"] else ""))


def _scores(before: dict, after: dict) -> list[str]:
    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    lines = ["| check | before | after |", "|---|---:|---:|"]
    for group, label in (("passages", "vocal leakage, held-out passages (dB, lower is better)"),
                         ("songs", "vocal leakage, songs kept out (dB, lower is better)")):
        lines.append(f"| {label} | {fmt(before['leakage_db'][group])} | {fmt(after['leakage_db'][group])} |")
    lines.append(f"| vocals uSDR, held-out passages + reference voice (dB) | "
                 f"{fmt(before['voice_usdr'].get('vocals'))} | {fmt(after['voice_usdr'].get('vocals'))} |")
    return lines


def run(args: argparse.Namespace) -> int:
    from engine.cli import say
    from engine.errors import SeparationCancelled

    if args.list:
        return _list()
    if args.remove:
        from engine.models.catalogue import remove_user_model

        remove_user_model(args.remove)
        say(f"removed your model {args.remove!r}", sys.stdout)
        return 0
    if not args.name or not args.songs:
        say("shotoku adapt: error: --songs and --name are needed (or --list, --remove)")
        return 2
    from engine.adapt.job import AdaptJob, AdaptRequest, jobs_dir

    if args.restart:
        import shutil

        shutil.rmtree(jobs_dir() / args.name, ignore_errors=True)
    request = AdaptRequest(songs=args.songs, name=args.name, instrumentals=args.instrumentals,
                           max_minutes=args.max_minutes, source=args.source, detector=args.detector,
                           replace=args.replace)
    cancel = threading.Event()
    bar: list[ProgressBar] = []
    phase = [""]

    def progress(event) -> None:  # noqa: ANN001 - AdaptProgress
        if event.phase != phase[0]:
            if bar:
                bar[0].close()
                bar.clear()
            bar.append(ProgressBar(f"adapt {args.name}"))
            phase[0] = event.phase
        left = f", about {event.seconds_left / 60:.0f} min left" if event.seconds_left is not None else ""
        bar[0].update(event.fraction, f"{event.detail}{left}")

    job = AdaptJob(request, progress=progress, cancel=cancel, n_threads=args.threads)
    if job.resuming:
        if job.request.songs != request.songs or job.request.instrumentals != request.instrumentals:
            say(f"shotoku: error: an unfinished adaptation called {args.name!r} uses {job.request.songs}: run it "
                "with the same folders to resume it, or add --restart to discard it")
            return 1
        say(f"resuming the adaptation {args.name!r} ({job.state.get('phase')})")
    try:
        folder = job.run()
    except (KeyboardInterrupt, SeparationCancelled):
        say(f"stopped; run the same command again to resume the adaptation {args.name!r}")
        raise
    finally:
        if bar:
            bar[0].close()
    say(_found(job.state["found"]), sys.stdout)
    for line in _scores(job.state["before"], job.state["after"]):
        say(line, sys.stdout)
    say(f"your model {args.name!r} is ready ({folder}); pick it with --model {args.name} or in the app", sys.stdout)
    return 0
