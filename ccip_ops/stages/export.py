"""hifv_exportvlassdata (stage 12, spec §9): FITS products, position correction, manifest.

For each plane (spw group): the IQUV pbcor cutout and its rms cutout are split into IQU and
V images (``imsubimage``), exported with ``exportfits`` to ``products/`` with the ``s7_0.``
prefix removed, position-corrected per FITS for the plane's frequency (§9.3; ``ZD``,
``TELMJD``, HISTORY; never applied twice), given the header fixes (DATE-OBS/DATE-END,
RADESYS ICRS, OBJECT) and the VLASS keywords; rejected planes are exported and marked
``VLASSRJ``. Then the common-beam/common-WCS ``.com`` pair of each plane (``combeam``; not in
the manifest). The parameter lists, ``casa_commands.log`` and ``pipeline_manifest.xml`` are
written too. Everything is staged in ``working/export_staging`` and moved into
``products/`` only when complete: a failed export leaves no half-written product, and a
re-run replaces the earlier files.
"""
from __future__ import annotations

import logging
import math
import re
import shutil
import xml.dom.minidom
import xml.etree.ElementTree as ET
from pathlib import Path

from .. import PIPELINE_VERSION, casa_env
from ..heuristics import poscorr
from ..model import ImagingResult
from ..runtree import RunTree, remove
from . import combeam
from ._casa import Casa

log = logging.getLogger("ccip")
STAGE_RE = re.compile(r"^s\d+_\d*\.")
RECIPE = "hifv_vlassCCIP"


def observation_times(vis: str) -> tuple[float, float]:
    """Start and end (MJD, UTC) of the whole observation."""
    ct = casa_env.tools()
    msmd = ct.msmetadata()
    msmd.open(vis)
    tr = msmd.timerangeforobs(0)
    msmd.close()
    return tr["begin"]["m0"]["value"], tr["end"]["m0"]["value"]


def _iso(mjd: float) -> str:
    from astropy.time import Time

    return Time(mjd, format="mjd", scale="utc").isot


def correct_position(fits_path: Path, mjd_mid: float) -> bool:
    """Apply the §9.3 correction to one FITS file; False if it was already applied."""
    from astropy.io import fits

    ct = casa_env.tools()
    obs = ct.measures().observatory("EVLA")
    pos = ct.measures().measure(obs, "WGS84")
    lon, lat = math.degrees(pos["m0"]["value"]), math.degrees(pos["m1"]["value"])
    with fits.open(fits_path, mode="update") as hdul:
        h = hdul[0].header
        if any("Position correction " in str(x) for x in h.get("HISTORY", [])):
            log.warning("%s: position correction already applied, not applied again", fits_path.name)
            return False
        ra, dec, freq = float(h["CRVAL1"]), float(h["CRVAL2"]), float(h["CRVAL3"])
        zd, chi = poscorr.calc_zd_pa(ra, dec, lon, lat, mjd_mid)
        ra2, dec2, x, y = poscorr.shift(ra, dec, freq, zd, chi)
        h["CRVAL1"], h["CRVAL2"] = ra2, dec2
        h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
        h["ZD"] = (math.degrees(zd), "Zenith distance at mid-observation [deg]")
        h["TELMJD"] = (mjd_mid, "MJD of mid-observation (position correction)")
        h.add_history(f"Uncorrected CRVAL1 = {ra:.12f} deg")
        h.add_history(f"Uncorrected CRVAL2 = {dec:.12f} deg")
        h.add_history(f"ZD = zenith distance at TELMJD, {math.degrees(zd):.6f} deg")
        h.add_history(f"TELMJD = mid-observation time {mjd_mid:.8f}")
        h.add_history(f"Position correction ({x:.3E}/cos(CRVAL2), {y:.3E}) arcsec applied")
    return True


def fix_header(fits_path: Path, t0: float, t1: float, keywords: dict) -> None:
    from astropy.io import fits

    with fits.open(fits_path, mode="update") as hdul:
        h = hdul[0].header
        h["DATE-OBS"] = (_iso(t0), "First scan started")
        h["DATE-END"] = (_iso(t1), "Last scan finished")
        if str(h.get("RADESYS", "")).strip() == "FK5":
            h["RADESYS"] = "ICRS"
        parts = fits_path.name.split(".")
        if len(parts) > 4:
            h["OBJECT"] = parts[4]
        for k, v in keywords.items():
            h[k] = v


def write_manifest(products: Path, fits_names: list[str], lists: list[str]) -> Path:
    ous = "unknown"
    root = ET.Element("piperesults", name=ous)
    o = ET.SubElement(root, "ous", name=ous)
    ET.SubElement(o, "casaversion", name=casa_env.versions().get("casatools", ""))
    ET.SubElement(o, "pipeline_version", name=f"ccip-{PIPELINE_VERSION}")
    ET.SubElement(o, "procedure_name", name=RECIPE)
    ET.SubElement(o, "casa_cmdlog", name="casa_commands.log", level="N/A", ous=ous, package="N/A",
                  datatype="casa_commands", format="log")
    for f in fits_names:
        ET.SubElement(o, "image", name=f, imtype="target", manualstring="N/A")
    for p in lists:
        ET.SubElement(o, "parameter_list", name=p)
    text = xml.dom.minidom.parseString(ET.tostring(root)).toprettyxml(indent="  ")
    out = products / "pipeline_manifest.xml"
    out.write_text(text)
    return out


def run(tree: RunTree, results: list[ImagingResult], planes: list[dict], vis_rel: str) -> dict:
    casa = Casa(tree.working, "export")
    ct = casa_env.tools()
    ia = ct.image()
    stage = tree.working / "export_staging"
    remove(stage)
    stage.mkdir()
    keep_of = {p["group"]: p["keep"] for p in planes}
    t0, t1 = observation_times(str(tree.abs(vis_rel)))
    mid = 0.5 * (t0 + t1)
    fits_names, com_names, com_skipped = [], [], []
    ok = sorted((r for r in results if r.status == "ok"), key=lambda r: r.target.reffreq_hz)
    kept_beams = [r.beam for r in ok if keep_of.get(r.target.group, True) and r.beam]
    target = combeam.common_beam(kept_beams or [r.beam for r in ok if r.beam])
    for r in ok:
        rj = not keep_of.get(r.target.group, True)
        pk, rms = r.qa.get("VLASSPK"), r.qa.get("VLASSRMS")
        for kind in ("image_pbcor_subim", "rms_subim"):
            src = str(tree.abs(r.images[kind]))
            for pol in ("IQU", "V"):
                name = Path(src).name.replace(".IQUV.", f".{pol}.")
                split = stage / name
                casa("imsubimage", imagename=src, outfile=str(split), stokes=pol, dropdeg=False, overwrite=True)
                ia.open(str(split))
                mi = ia.miscinfo()
                mi.update({"VLASSPL": pol, "VLASSPK": pk, "VLASSRMS": rms, "VLASSRJ": rj})
                ia.setmiscinfo(mi)
                ia.close()
                fname = STAGE_RE.sub("", name) + ".fits"
                casa("exportfits", imagename=str(split), fitsimage=str(stage / fname), overwrite=True,
                     stokeslast=True)
                remove(split)
                fix_header(stage / fname, t0, t1, {"VLASSRJ": (rj, "Rejected plane relevant for VLASS CC processing"),
                                                   "VLASSPL": (pol, "VLASS Stokes/polarization parameter")})
                correct_position(stage / fname, mid)
                fits_names.append(fname)
        try:
            com_names += _com_pair(tree, r, stage, target, t0, t1, pk, rms, rj)
        except Exception as e:  # noqa: BLE001 - one plane's .com failing must not lose the others (§9.4)
            log.warning("spw group %s: no .com images: %s", r.target.group, e)
            com_skipped.append({"group": r.target.group, "error": str(e)})
    lists = ["SEIP_parameter.list", "CCIP_parameter.list"]
    for p in lists:
        shutil.copy2(tree.working / p, stage / p)
    shutil.copy2(tree.working / "casa_commands.log", stage / "casa_commands.log")
    write_manifest(stage, fits_names, lists)
    products = tree.products
    products.mkdir(parents=True, exist_ok=True)
    for old in list(products.glob("*.fits")) + [products / "pipeline_manifest.xml"]:
        remove(old)
    for f in stage.iterdir():
        dst = products / f.name
        remove(dst)
        shutil.move(str(f), str(dst))
    remove(stage)
    return {"fits": fits_names, "com": com_names, "com_skipped": com_skipped, "common_beam": target,
            "manifest": "products/pipeline_manifest.xml", "mid_mjd": mid}


def _com_pair(tree: RunTree, r: ImagingResult, stage: Path, target: dict, t0: float, t1: float,
              pk, rms, rj: bool) -> list[str]:
    """The plane's IQU and V ``.com`` FITS, from its IQUV CASA cutout and its corrected IQU FITS."""
    from astropy.io import fits

    src = tree.abs(r.images["image_pbcor_subim"])
    iqu_fits = stage / (STAGE_RE.sub("", src.name.replace(".IQUV.", ".IQU.")) + ".fits")
    with fits.open(iqu_fits) as h:
        crval = (float(h[0].header["CRVAL1"]), float(h[0].header["CRVAL2"]))
    names = {pol: iqu_fits.name.replace(".IQU.iter", f".{pol}.iter").replace(".fits", ".com.fits")
             for pol in ("IQU", "V")}
    images, history = combeam.make_com(src, crval, target, stage, names["IQU"] + ".im", names["V"] + ".im")
    ia = casa_env.tools().image()
    out = []
    for pol, im in zip(("IQU", "V"), images):
        ia.open(str(im))
        mi = ia.miscinfo()
        mi.update({"VLASSPL": pol, "VLASSPK": pk, "VLASSRMS": rms, "VLASSRJ": rj})
        ia.setmiscinfo(mi)
        ia.tofits(str(stage / names[pol]), stokeslast=True, overwrite=True)
        ia.close()
        remove(im)
        fix_header(stage / names[pol], t0, t1, {"VLASSRJ": (rj, "Rejected plane relevant for VLASS CC processing"),
                                                "VLASSPL": (pol, "VLASS Stokes/polarization parameter")})
        with fits.open(stage / names[pol], mode="update") as h:
            for line in history:
                h[0].header.add_history(line)
        out.append(names[pol])
    return out
