"""``shotoku models``: the model registry with each card's summary."""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the installed models", description="List the model registry.")
    p.add_argument("name", nargs="?", help="show one model's whole card as JSON")
    p.add_argument("--all", action="store_true", help="include test-only models")
    p.set_defaults(run=run)


def _score_summary(scores: dict) -> str:
    sdr = scores.get("sdr_median") or {}
    if not sdr:
        return "not measured"
    return " ".join(f"{stem} {value:.1f}" for stem, value in sdr.items()) + " dB SDR"


def run(args: argparse.Namespace) -> int:
    from engine.models.catalogue import get_card, list_cards  # torch is imported here, not for every command

    if args.name:
        print(json.dumps(get_card(args.name).to_json(), indent=2))
        return 0
    cards = list_cards(include_hidden=args.all)
    width = max((len(c.name) for c in cards), default=4)
    print(f"{'name':{width}}  {'kind':9}  {'stems':27}  summary")
    for card in cards:
        mark = "*" if card.default else " "
        print(f"{card.name:{width}}{mark} {card.kind:9}  {','.join(card.sources):27}  {card.summary}")
        if card.kind == "neural":
            speed = card.speed.get("cpu_realtime_factor")
            speed_text = f"{speed:.0f}x real time on CPU" if speed else "speed not measured"
            print(f"{'':{width}}  {'':9}  {'':27}  {_score_summary(card.scores)}; {speed_text}; {card.paper}")
    print("(* = default model)")
    return 0
