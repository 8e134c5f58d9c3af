#!/usr/bin/env python3
"""Compare the products of two runs of the same field: every FITS file's pixels (bit for bit) and
header cards (apart from DATE/ORIGIN/MEMAVAIL/CHECKSUM and CASA's time-stamped log of what it ran, which names the
run tree's paths), the manifest's image list and the parameter lists.

    python bench/compare_products.py RUN_TREE_A RUN_TREE_B

Prints one line per difference and exits 1 if there is any (0: identical products).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

# cards that record when or where a file was written, not what it holds
# MEMAVAIL: free memory when tclean ran; CHECKSUM covers the header, so DATE changes it (DATASUM,
# the pixels' sum, is compared)
VOLATILE = ("DATE", "ORIGIN", "MEMAVAIL", "CHECKSUM")
STAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?\s*")  # CASA's history times


def _cards(h) -> list[str]:
    """The header's cards that describe the product. Left out: DATE/ORIGIN (when and by what it was
    written) and CASA's own log in HISTORY (the LOGTABLE block and the image history: time-stamped
    lines naming the run tree's paths); the pipeline's own HISTORY lines stay."""
    out, in_log = [], False
    for c in h.cards:
        if c.keyword in VOLATILE:
            continue
        v = str(c.value)
        if c.keyword == "HISTORY":
            if v == "CASA START LOGTABLE":
                in_log = True
            if in_log or STAMP.match(v) or v.startswith((">", "History of image", "End history")):
                in_log = in_log and v != "CASA END LOGTABLE"
                continue
        out.append(f"{c.keyword}={c.value!r}")
    return out


def compare(a: Path, b: Path) -> list[str]:
    import numpy as np
    from astropy.io import fits

    pa, pb = a / "products", b / "products"
    diffs = []
    na, nb = {p.name for p in pa.iterdir()}, {p.name for p in pb.iterdir()}
    for n in sorted(na ^ nb):
        diffs.append(f"only in {'A' if n in na else 'B'}: {n}")
    for n in sorted(na & nb):
        if n.endswith(".fits"):
            with fits.open(pa / n) as ha, fits.open(pb / n) as hb:
                if len(ha) != len(hb):
                    diffs.append(f"{n}: {len(ha)} vs {len(hb)} HDUs")
                    continue
                for k, (x, y) in enumerate(zip(ha, hb)):
                    ca, cb = _cards(x.header), _cards(y.header)
                    if ca != cb:
                        extra = sorted(set(ca) ^ set(cb))[:6]
                        diffs.append(f"{n}[{k}]: headers differ: {extra}")
                    if x.data is None and y.data is None:
                        continue
                    if hasattr(x.data, "dtype") and x.data.dtype.names:  # a table (the beams)
                        same = x.data.tobytes() == y.data.tobytes()
                    else:
                        same = np.array_equal(x.data, y.data, equal_nan=True)
                    if not same:
                        diffs.append(f"{n}[{k}]: data differ")
        elif n.endswith(".list"):
            if (pa / n).read_bytes() != (pb / n).read_bytes():
                diffs.append(f"{n}: differs")
        elif n == "pipeline_manifest.xml":
            la = sorted(line.strip() for line in (pa / n).read_text().splitlines() if "<image" in line)
            lb = sorted(line.strip() for line in (pb / n).read_text().splitlines() if "<image" in line)
            if la != lb:
                diffs.append(f"{n}: image lists differ")
    return diffs


def main(argv) -> int:
    if len(argv) != 3:
        print(__doc__)
        return 2
    diffs = compare(Path(argv[1]), Path(argv[2]))
    for d in diffs:
        print(d)
    n = len(list((Path(argv[1]) / "products").glob("*.fits")))
    print(f"{n} FITS compared: " + ("identical" if not diffs else f"{len(diffs)} differences"))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
