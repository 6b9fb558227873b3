"""Generated pages match what generates them, so they cannot drift from the code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kernels_page_is_the_dispatch_table():
    # regenerate with: python tools/kernels_doc.py > docs/kernels.md
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "kernels_doc.py")],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert (ROOT / "docs" / "kernels.md").read_text() == out
    from fastconv.backends import dispatch
    for table in (dispatch.FORWARD, dispatch.DX, dispatch.DW, dispatch.RELU_MAXPOOL):
        for candidate in table:
            assert f"**`{candidate.name}`**" in out
