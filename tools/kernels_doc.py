"""Write docs/kernels.md from the compiled backend's dispatch table.

    python tools/kernels_doc.py > docs/kernels.md

tests/test_docs.py checks that the committed page is this script's output, so the page
cannot drift from fastconv.backends.dispatch.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastconv.backends import dispatch  # noqa: E402

TABLES = [("forward", "Forward", dispatch.FORWARD), ("dx", "Input gradient (dx)", dispatch.DX),
          ("dw", "Weight gradient (dw)", dispatch.DW),
          ("relu_maxpool", "Fused Conv2D + ReLU + MaxPooling2D", dispatch.RELU_MAXPOOL)]


def render() -> str:
    lines = [
        "# Kernels",
        "",
        "Generated from `fastconv.backends.dispatch` by `tools/kernels_doc.py` (a test",
        "checks that this page is its current output).",
        "",
        "Every convolution pass of the compiled backend takes the first candidate of its",
        "list that applies to the layer's geometry, dtype and weights; the NumPy",
        "reference's formula is the specification all of them are tested against",
        "(hypothesis shapes, both dtypes, 1 and 2 threads, bit-identical across thread",
        "counts). Error bound of every path but Winograd's: 1e-5 (float32) and 1e-12",
        "(float64) relative to the sum of the magnitudes of the terms (`fastconv.testing`);",
        "each candidate sums in an order fixed by the shapes, never by the thread count.",
        "",
        "The `winograd` candidates (Winograd F(2x2, 3x3), 3x3 stride-1 layers) round",
        "differently: their bound, 25 gamma_(C + 23) relative to the sum of |terms| over",
        "the outputs and their neighbours (about 6e-5 for C = 16, 4e-4 for C = 256 in",
        "float32, a worst case; random data sees about 1e-7), is derived in",
        "`fastconv.backends.winograd`. `fastconv.set_conv_algorithm('direct')` (or the",
        "`fastconv.conv_algorithm('direct')` context) never takes them, and gives the",
        "other candidates' bits; `'winograd'` takes them wherever valid; `'auto'` (the",
        "default) where listed below: 3x3 stride-1 layers with at least 32 input and",
        "32 output channels (the weight gradient: 64 input channels).",
        "",
        "To see which kernel a layer takes, and why:",
        "",
        "```python",
        "import fastconv",
        "fastconv.explain_conv((32, 28, 28, 1), (3, 3, 1, 32), stride=1, padding='valid')",
        "```",
        "",
        "`FASTCONV_VERBOSE=1` logs each call's choice. Other compiled kernels: pooling",
        "(`src/_pool.pyx`), depthwise convolution (`src/_depthwise.pyx`), resizing",
        "(`src/_resize.pyx`), the element-wise and optimizer kernels",
        "(`src/_elementwise.pyx`) and the augmentation gathers (`src/_image.pyx`).",
    ]
    for _, title, table in TABLES:
        lines += ["", f"## {title}", ""]
        for i, c in enumerate(table, 1):
            lines += [f"{i}. **`{c.name}`**: {c.rule.rstrip('.')}.",
                      f"   Measured: {c.measured.rstrip('.')}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
