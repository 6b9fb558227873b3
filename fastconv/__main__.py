"""``python -m fastconv <command>``."""

from __future__ import annotations

import argparse
import sys


def _info(args: argparse.Namespace) -> int:
    from . import show_config

    show_config()
    return 0


def _filter(args: argparse.Namespace) -> int:
    import numpy as np

    from . import filters

    try:
        image = filters.read_image(args.image)
        # Transparency is kept as it is; only the colour (or gray) channels are filtered.
        has_alpha = image.ndim == 3 and image.shape[2] in (2, 4)
        colour = image[..., :-1] if has_alpha else image
        out = filters.apply(colour, args.kernel, padding=args.padding)
        if has_alpha:
            out = np.concatenate([out, image[..., -1:]], axis=2)
        filters.write_image(args.output, out)
    except (OSError, ValueError, TypeError, ImportError) as err:
        print(f"python -m fastconv filter: error: {err}", file=sys.stderr)
        return 1
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run

    try:
        run(epochs=args.epochs, batch_size=args.batch_size,
            output=None if args.no_plot else args.output, seed=args.seed)
    except (OSError, ValueError) as err:
        print(f"python -m fastconv demo: error: {err}", file=sys.stderr)
        return 1
    return 0


def _keras_coverage(args: argparse.Namespace) -> int:
    from . import _coverage

    if args.table:
        sys.stdout.write(_coverage.table())
        return 0
    if not args.files:
        print("python -m fastconv keras-coverage: error: give program files, or --table",
              file=sys.stderr)
        return 2
    missing = 0
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as f:
                uses = _coverage.scan(f.read(), path)
        except (OSError, SyntaxError, UnicodeDecodeError) as err:
            print(f"python -m fastconv keras-coverage: error: {path}: {err}", file=sys.stderr)
            return 2
        lacking = [u for u in uses if not u.present]
        missing += len(lacking)
        print(f"{path}: {len(uses)} Keras names used, {len(uses) - len(lacking)} in fastconv"
              + (f", {len(lacking)} missing:" if lacking else "."))
        for u in lacking:
            note = "" if u.listed else " (not a Keras 3 name)"
            print(f"  line {u.line}: {u.name}{note}")
    return 1 if missing else 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="print version, compiler, OpenMP, threads and BLAS")
    info.set_defaults(func=_info)

    from .filters import NAMES

    filt = sub.add_parser(
        "filter", help="apply a classic kernel (sharpen, blur, edge, ...) to an image",
        description="Filter a PNG/JPEG image with a classic kernel (needs Pillow: "
                    "pip install 'fastconv[image]'). Colour channels are filtered "
                    "separately; transparency is kept.")
    filt.add_argument("image", help="input image file")
    filt.add_argument("--kernel", "-k", required=True, choices=NAMES, help="kernel name")
    filt.add_argument("--output", "-o", required=True,
                      help="output file; its extension (.png, .jpg) picks the format")
    filt.add_argument("--padding", default="same", choices=["same", "valid", "reflect", "edge"],
                      help="border handling (default: same, zeros as in Keras; 'reflect' "
                           "avoids dark borders)")
    filt.set_defaults(func=_filter)

    demo = sub.add_parser(
        "demo", help="train the lecture's MNIST model on the embedded Fashion-MNIST sample",
        description="Train the lecture's MNIST CNN on the 2,000-image Fashion-MNIST sample "
                    "shipped with fastconv (offline), print progress and test accuracy, and "
                    "save the accuracy/val_accuracy plot (needs matplotlib).")
    demo.add_argument("--epochs", type=_positive, default=10, help="epochs (default: 10)")
    demo.add_argument("--batch-size", type=_positive, default=32, help="batch size (default: 32)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--output", "-o", default="fastconv-demo.png",
                      help="plot file (default: fastconv-demo.png)")
    demo.add_argument("--no-plot", action="store_true", help="do not save the plot")
    demo.set_defaults(func=_demo)

    cov = sub.add_parser(
        "keras-coverage", help="which Keras names a program uses that fastconv lacks",
        description="List the Keras names each program uses (through keras, tf.keras or "
                    "fastconv.keras imports) that fastconv.keras does not have; exit "
                    "status 1 if any. With --table, print the coverage of every Keras 3 "
                    "name (docs/keras-compatibility.md).")
    cov.add_argument("files", nargs="*", help="Python programs to check")
    cov.add_argument("--table", action="store_true",
                     help="print the Markdown table of Keras 3 names instead")
    cov.set_defaults(func=_keras_coverage)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
