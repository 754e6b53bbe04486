"""`ctxlens ...`: prepare the embedded models, download others, list the catalog, and
export word vectors of a sentence file to Parquet."""

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


def cmd_embed(args) -> int:
    """Word vectors of every sentence in a file (or of one target word) → Parquet."""
    from .methods.extraction import extract_to_parquet, read_sentences
    from .errors import InputError
    from .models.device import pick_device

    options = dict(target=args.word, layers=args.layers, pooling=args.pooling, batch_size=args.batch_size,
                   progress=_bar)
    if args.engine == "ray":  # Ray Data reads the file; `--workers` model actors pick their devices
        from .methods.ray_extraction import extract_with_ray

        summary = extract_with_ray(args.output, args.model, args.input, fmt=args.format, field=args.field,
                                   device=args.device, workers=args.workers, address=args.address,
                                   gpus_per_worker=args.gpus_per_worker, **options)
    else:
        texts = read_sentences(args.input, args.format, args.field)
        try:
            device = pick_device(args.device)  # auto: the GPU when there is one
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        summary = extract_to_parquet(args.output, args.model, texts, device=device, **options)
    if summary.missing:
        what = f"'{args.word}'" if args.word else "any word"
        shown = ", ".join(str(i) for i in summary.missing[:20])
        more = " ..." if len(summary.missing) > 20 else ""
        print(f"{len(summary.missing)} sentences without {what} (ids {shown}{more})", file=sys.stderr)
    print(f"wrote {summary.rows:,} rows ({summary.sentences:,} sentences, layers "
          f"{','.join(map(str, summary.layers))}) to {args.output}")
    return 0


def cmd_serve(args) -> int:
    """The classroom server: the models behind Ray Serve until Ctrl-C (see serve.py)."""
    try:
        from .serve import run_server
    except ImportError as exc:
        print(f"error: `ctxlens serve` needs Ray Serve: pip install 'ray[serve]' ({exc})", file=sys.stderr)
        return 2
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    run_server(models, host=args.host, port=args.port, address=args.address, device=args.device,
               cpus_per_model=args.cpus_per_model, gpus_per_model=args.gpus_per_model, replicas=args.replicas,
               ready=lambda line: print(line, flush=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .models.catalog import HOME_KEYS

    parser = argparse.ArgumentParser(prog="ctxlens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("prepare", help="make the embedded default models ready").set_defaults(func=cmd_prepare)
    download = sub.add_parser("download", help="download models (needs network)")
    download.add_argument("models", nargs="+")
    download.set_defaults(func=cmd_download)
    sub.add_parser("models", help="list the catalog and each model's status").set_defaults(func=cmd_models)
    embed = sub.add_parser("embed", help="write word vectors of a sentence file to Parquet")
    embed.add_argument("input", help="a path or URI (file://, s3://, gs://): .txt (one sentence per line), "
                                     ".jsonl/.json (JSON Lines), .parquet, or .csv (a sentence column; local engine)")
    embed.add_argument("--format", choices=["text", "jsonl", "parquet", "csv"],
                       help="how to read the input (default: from its suffix)")
    embed.add_argument("--field", default="text", help="JSON Lines and Parquet: the field holding the sentences")
    embed.add_argument("-o", "--output", required=True,
                       help="the Parquet file to write (--engine ray: a new folder of Parquet shards)")
    embed.add_argument("--model", required=True, help="catalog key, Hugging Face id or local folder")
    embed.add_argument("--word", help="only this word's occurrences (default: every word)")
    embed.add_argument("--layers", default="all", help="'all' or a comma list such as 0,6,-1")
    embed.add_argument("--pooling", choices=["first", "mean", "last"], default="mean",
                       help="how a word's sub-word vectors become one vector")
    embed.add_argument("--batch-size", type=int, default=16)
    embed.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    embed.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: one process, one Parquet file; ray: Ray Data, a folder of Parquet shards")
    embed.add_argument("--workers", type=int, default=1, help="--engine ray: model actors (one model load each)")
    embed.add_argument("--address", help="--engine ray: a Ray cluster's address (default: a local Ray)")
    embed.add_argument("--gpus-per-worker", type=float,
                       help="--engine ray: the GPU share each actor asks for (default: 1 where the cluster has "
                            "GPUs, else 0: CPUs)")
    embed.set_defaults(func=cmd_embed)
    serve = sub.add_parser("serve", help="serve models to app processes (CTXLENS_SERVER) with Ray Serve")
    serve.add_argument("--models", default=",".join(HOME_KEYS),
                       help="comma list of catalog keys, hub ids or folders (default: the models Home opens with)")
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--address", help="a Ray cluster's address (default: a local Ray)")
    serve.add_argument("--device", default=None, help="cpu, cuda or mps (default: the GPU when there is one)")
    serve.add_argument("--cpus-per-model", type=float, default=0.5, help="CPUs Ray reserves for each model")
    serve.add_argument("--gpus-per-model", type=float, default=None,
                       help="GPU fraction Ray reserves for each model (default: the models share one GPU "
                       "when there is one)")
    serve.add_argument("--replicas", type=int, default=1,
                       help="copies of each model (one per GPU of a cluster; see docs/SCALING.md)")
    serve.set_defaults(func=cmd_serve)
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
