"""hifv_exportvlassdata (stage 12, spec §9): FITS products, position correction, manifest.

For each plane (spw group): the IQUV pbcor cutout and its rms cutout are split into IQU and
V images (``imsubimage``), exported with ``exportfits`` to ``products/`` with the ``s7_0.``
prefix removed, position-corrected per FITS for the plane's frequency and given the header
fixes and the VLASS keywords (:mod:`.exportfits`); rejected planes are exported and marked
``VLASSRJ``, every VLASS* keyword with NRAO's comment and the FITS CHECKSUM/DATASUM last. Then
the common-beam/common-WCS ``.com`` pair of each plane (:mod:`.combeam`; not in the manifest). The
parameter lists, ``casa_commands.log``, stage 11's ``stokes_analysis.ecsv`` (in the manifest as
``analysis_table``) and ``pipeline_manifest.xml`` are written too. Everything is staged in ``working/export_staging`` and moved into
``products/`` only when complete: a failed export leaves no half-written product, and a
re-run replaces the earlier files. Entry point: :func:`export_products`.
"""
from __future__ import annotations

import logging
import shutil
import xml.dom.minidom
import xml.etree.ElementTree as ET
from pathlib import Path

from .. import PIPELINE_VERSION, casa_env, casaimage, naming
from ..model import FanIn, ImagingResult
from ..runtree import RunTree, remove, write_json
from . import combeam
from ._casa import Casa
from ..heuristics.imaging import image_type
from .exportfits import add_checksums, correct_position, fix_header, observation_times

log = logging.getLogger("ccip")
RECIPE = "hifv_vlassCCIP"
PARAMETER_LISTS = ("SEIP_parameter.list", "CCIP_parameter.list")


def write_manifest(products: Path, fits_names: list[str], lists: list[str], tables: tuple[str, ...] = ()) -> Path:
    ous = "unknown"
    root = ET.Element("piperesults", name=ous)
    o = ET.SubElement(root, "ous", name=ous)
    ET.SubElement(o, "casaversion", name=casa_env.versions().get("casatools", ""))
    ET.SubElement(o, "pipeline_version", name=f"ccip-{PIPELINE_VERSION}")
    ET.SubElement(o, "procedure_name", name=RECIPE)
    ET.SubElement(o, "casa_cmdlog", name=naming.CASA_COMMANDS, level="N/A", ous=ous, package="N/A",
                  datatype="casa_commands", format="log")
    for f in fits_names:
        ET.SubElement(o, "image", name=f, imtype="target", manualstring="N/A")
    for p in lists:
        ET.SubElement(o, "parameter_list", name=p)
    for t in tables:  # not in NRAO's manifest: the Stokes analysis as a table (ECSV)
        ET.SubElement(o, "analysis_table", name=t, datatype="stokes_analysis", format="ecsv")
    text = xml.dom.minidom.parseString(ET.tostring(root)).toprettyxml(indent="  ")
    out = products / "pipeline_manifest.xml"
    out.write_text(text)
    return out


def _vlass_header(rj: bool, pol: str, fname: str) -> dict:
    """The keywords export sets on a FITS file (the others come from the image's miscinfo)."""
    return {"VLASSRJ": rj, "VLASSPL": pol, "VLASSITY": image_type(fname)}


def export_products(tree: RunTree, fan: FanIn, vis_rel: str) -> dict:
    casa = Casa(tree.working, "export")
    stage = tree.working / "export_staging"
    remove(stage)
    stage.mkdir()
    keep_of = fan.keep_of()
    t0, t1 = observation_times(str(tree.abs(vis_rel)))
    mid = 0.5 * (t0 + t1)
    fits_names, com_names, com_skipped = [], [], []
    ok = sorted((r for r in fan.results if r.status == "ok"), key=lambda r: r.target.reffreq_hz)
    kept_beams = [r.beam.to_json() for r in ok if keep_of.get(r.group, True) and r.beam]
    target = combeam.common_beam(kept_beams or [r.beam.to_json() for r in ok if r.beam])
    casa.tool("ia.commonbeam", nplanes=len(kept_beams), result=target)
    for r in ok:
        rj = not keep_of.get(r.group, True)
        pk, rms = r.qa.get("VLASSPK"), r.qa.get("VLASSRMS")
        for kind in ("image_pbcor_subim", "rms_subim"):
            src = tree.abs(r.images[kind])
            for pol in naming.STOKES_SPLIT:
                split = stage / naming.split_stokes(src.name, pol)
                casa("imsubimage", imagename=str(src), outfile=str(split), stokes=pol, dropdeg=False, overwrite=True)
                casaimage.update_miscinfo(split, VLASSPL=pol, VLASSPK=pk, VLASSRMS=rms, VLASSRJ=rj)
                fname = naming.exported(src.name, pol).format()
                casa("exportfits", imagename=str(split), fitsimage=str(stage / fname), overwrite=True,
                     stokeslast=True)
                remove(split)
                fix_header(stage / fname, t0, t1, _vlass_header(rj, pol, fname))
                correct_position(stage / fname, mid)
                add_checksums(stage / fname)
                fits_names.append(fname)
        try:
            com_names += _com_pair(tree, r, stage, target, t0, t1, pk, rms, rj, casa)
        except Exception as e:  # noqa: BLE001 - one plane's .com failing must not lose the others (§9.4)
            log.warning("spw group %s: no .com images: %s", r.group, e)
            com_skipped.append({"group": r.group, "error": str(e)})
    for p in PARAMETER_LISTS:
        shutil.copy2(tree.working / p, stage / p)
    shutil.copy2(tree.working / naming.CASA_COMMANDS, stage / naming.CASA_COMMANDS)
    tables = _analysis_tables(tree, stage)
    write_manifest(stage, fits_names, list(PARAMETER_LISTS), tables)
    products = tree.products
    products.mkdir(parents=True, exist_ok=True)
    for old in list(products.glob("*.fits")) + [products / "pipeline_manifest.xml", products / naming.ANALYSIS_TABLE]:
        remove(old)
    for f in stage.iterdir():
        dst = products / f.name
        remove(dst)
        shutil.move(str(f), str(dst))
    remove(stage)
    out = {"fits": fits_names, "com": com_names, "com_skipped": com_skipped, "common_beam": target,
           "manifest": "products/pipeline_manifest.xml", "mid_mjd": mid}
    write_json(tree.stage_data("export"), out)
    return out


def _analysis_tables(tree: RunTree, stage: Path) -> tuple[str, ...]:
    """Stage 11's ECSV table, delivered with the FITS (absent if the analysis did not run)."""
    src = tree.working / naming.ANALYSIS_TABLE
    if not src.exists():
        log.warning("%s is missing: no analysis table delivered", src.name)
        return ()
    shutil.copy2(src, stage / src.name)
    return (src.name,)


def _com_pair(tree: RunTree, r: ImagingResult, stage: Path, target: dict, t0: float, t1: float,
              pk, rms, rj: bool, casa: Casa) -> list[str]:
    """The plane's IQU and V ``.com`` FITS, from its IQUV CASA cutout and its corrected IQU FITS."""
    from astropy.io import fits

    src = tree.abs(r.images["image_pbcor_subim"])
    iqu_fits = stage / naming.exported(src.name, "IQU").format()
    with fits.open(iqu_fits) as h:
        crval = (float(h[0].header["CRVAL1"]), float(h[0].header["CRVAL2"]))
    names = {pol: naming.common_beam(naming.exported(src.name, pol).format()) for pol in naming.STOKES_SPLIT}
    images, history = combeam.make_com(src, crval, target, stage, names["IQU"] + ".im", names["V"] + ".im")
    casa.tool("ia.convolve2d/ia.regrid/ia.subimage", imagename=str(src), steps=history)
    out = []
    vlass = {k: v for k, v in casaimage.miscinfo(src).items() if k.startswith("VLASS")}  # all of makeimages'
    for pol, im in zip(naming.STOKES_SPLIT, images):
        casaimage.update_miscinfo(im, **{**vlass, "VLASSPL": pol, "VLASSPK": pk, "VLASSRMS": rms, "VLASSRJ": rj})
        with casaimage.opened(im) as ia:
            ia.tofits(str(stage / names[pol]), stokeslast=True, overwrite=True)
        casa.tool("ia.tofits", imagename=str(im), fitsimage=names[pol], stokeslast=True)
        remove(im)
        fix_header(stage / names[pol], t0, t1, _vlass_header(rj, pol, names[pol]))
        with fits.open(stage / names[pol], mode="update") as h:
            for line in history:
                h[0].header.add_history(line)
        add_checksums(stage / names[pol])
        out.append(names[pol])
    return out
