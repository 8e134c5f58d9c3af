"""The run's HTML report: ``html/index.html`` (jinja2) and thumbnails (matplotlib, Agg)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..runtree import RunTree


def _qa_colour(score: float | None) -> str:
    # ALMA pipeline QA colours: red < 0.33 <= yellow < 0.66 <= blue < 0.9 <= green
    if score is None:
        return "#cccccc"
    return "#d9534f" if score < 0.33 else "#f0ad4e" if score < 0.66 else "#5bc0de" if score < 0.9 else "#5cb85c"


def thumbnails(tree: RunTree, results: list[dict]) -> dict[str, list[str]]:
    """One PNG per group and Stokes of the pbcor cutout; paths relative to html/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .. import casa_env

    out: dict[str, list[str]] = {}
    d = tree.html / "thumbs"
    d.mkdir(parents=True, exist_ok=True)
    ia = casa_env.tools().image()
    for r in results:
        if r.get("status") != "ok" or "image_pbcor_subim" not in r.get("images", {}):
            continue
        ia.open(str(tree.abs(r["images"]["image_pbcor_subim"])))
        a = ia.getchunk()
        ia.close()
        rms = r.get("qa", {}).get("VLASSRMS") or float(np.nanstd(a[:, :, 0, 0]))
        names = []
        for k, s in enumerate("IQUV"):
            fig, ax = plt.subplots(figsize=(2.2, 2.2))
            ax.imshow(a[:, :, k, 0].T, origin="lower", cmap="inferno", vmin=-5 * rms, vmax=20 * rms)
            ax.set_axis_off()
            ax.set_title(f"{r['target']['label']} {s}", fontsize=7)
            name = f"{r['target']['label']}_{s}.png"
            fig.savefig(d / name, dpi=70, bbox_inches="tight")
            plt.close(fig)
            names.append(f"thumbs/{name}")
        out[r["target"]["label"]] = names
    return out


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    tmp.replace(path)


def render(tree: RunTree, report: dict) -> Path:
    """Write html/index.html (overview) and html/stage<N>.html (one page per stage) from the run
    report (stages, targets, results, products, errors). Pages are written to a temporary name and
    renamed; index.html last, so a complete index means complete pages."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True)
    env.globals["qa_colour"] = _qa_colour
    tree.html.mkdir(parents=True, exist_ok=True)
    products = sorted(p.name for p in tree.products.glob("*")) if tree.products.exists() else []
    common = {"r": report, "products": products, "products_rel": os.path.relpath(tree.products, tree.html)}
    page = env.get_template("stage.html")
    for s in report["stages"]:
        _write(tree.html / f"stage{s['number']}.html", page.render(stage=s, **common))
    (tree.html / "report.json").write_text(json.dumps(report, indent=1, default=str))
    _write(tree.html / "index.html", env.get_template("index.html").render(stage=None, **common))
    return tree.html / "index.html"
