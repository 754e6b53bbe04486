"""`ctxlens ...`: prepare the embedded models, download others, list the catalog."""

from __future__ import annotations

import argparse
import sys

from .errors import CtxlensError


def _bar(fraction: float, message: str) -> None:
    filled = int(fraction * 30)
    sys.stderr.write(f"\r{message[:50]:<50} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}")
    sys.stderr.flush()
    if fraction >= 1.0:
        sys.stderr.write("\n")


def cmd_prepare(args) -> int:
    """Make the embedded defaults ready (the GGUF model is converted once, here)."""
    from .models.catalog import DEFAULT_KEYS
    from .models.registry import get_model

    for key in DEFAULT_KEYS:
        lm = get_model(key, device="cpu", progress=_bar)
        print(f"ready: {key} ({lm.memory_bytes / 2**20:,.0f} MB)")
    return 0


def cmd_download(args) -> int:
    from .models.registry import get_model

    for name in args.models:
        get_model(name, device="cpu", progress=_bar)
        print(f"ready: {name}")
    return 0


def cmd_models(args) -> int:
    from .models.catalog import CATALOG
    from .models.registry import model_status

    for spec in CATALOG.values():
        status = model_status(spec, device="cpu")
        print(f"{spec.key:45} {spec.family.value:14} {status.state:15} {status.detail}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctxlens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="make the embedded default models ready").set_defaults(func=cmd_prepare)
    download = sub.add_parser("download", help="download models (needs network)")
    download.add_argument("models", nargs="+")
    download.set_defaults(func=cmd_download)
    sub.add_parser("models", help="list the catalog and each model's status").set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CtxlensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
