"""Issue 18 on the tiny field's serial run: headers archives key on (NRAO's VLASSITY, every VLASS*
keyword with its comment, valid FITS checksums on every product), the analysis as an ECSV product
in the manifest, every CASA call in casa_commands.log, the QA scores in stages.json, and each plot
on the page that references it. Headless-Chromium screenshots of the stage pages go to
tests/artifacts/ for people to look at (skipped without chromium)."""
import json
import re
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ccip_ops import naming
from ccip_ops.stages.exportfits import VLASS_COMMENTS

pytestmark = pytest.mark.casa
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def run(serial_run):
    out, tree = serial_run
    assert not out["errors"], out["errors"]
    return tree


def test_every_fits_product_verifies_with_checksums_and_nraos_vlass_keywords(run):
    from astropy.io import fits

    files = sorted(run.products.glob("*.fits"))
    assert len(files) >= 12
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a bad CHECKSUM/DATASUM is a warning in astropy: fail on it
            with fits.open(f, checksum=True) as h:
                h.verify("exception")
                for hdu in h:
                    assert "CHECKSUM" in hdu.header and "DATASUM" in hdu.header, f.name
                hd = h[0].header
        expect = "RMS_TT0" if ".rms." in f.name else "INTENSITY_PBCOR_TT0"
        assert hd["VLASSITY"] == expect, f.name
        for k in VLASS_COMMENTS:
            assert k in hd, (f.name, k)
            assert hd.comments[k], (f.name, k)
        assert hd.comments["VLASSITY"] == "VLASS image type"
        assert hd.comments["VLASSPK"].startswith("Peak flux density of INTENSITY_PBCOR_TT0")


def test_analysis_table_is_an_ecsv_product_in_the_manifest(run):
    from astropy.table import Table

    t = Table.read(run.products / naming.ANALYSIS_TABLE, format="ascii.ecsv")
    analysis = json.loads(run.stage_data("analyzestokes").read_text())
    n = len(analysis["planes"])
    assert len(t) == 2 * n and set(t["region"]) == {"peak_stokesi", "peak_linpolint"}
    assert str(t["I"].unit) == "Jy / beam" and str(t["freq_hz"].unit) == "Hz"
    i_rows = t[t["region"] == "peak_stokesi"]
    m = analysis["regions"]["peak_stokesi"]["measurements"]
    assert list(i_rows["I"]) == pytest.approx([x["I"] for x in m])
    assert t.meta["peak_stokesi"]["power_law"]["alpha"] == pytest.approx(
        analysis["regions"]["peak_stokesi"]["power_law"]["alpha"])
    man = ET.parse(run.products / "pipeline_manifest.xml").getroot()
    assert [e.get("name") for e in man.iter("analysis_table")] == [naming.ANALYSIS_TABLE]


def test_alpha_has_an_error_and_the_gates_are_recorded(run):
    a = json.loads(run.stage_data("analyzestokes").read_text())
    st = a["regions"]["peak_stokesi"]
    assert st["gate_alpha"]["passed"] and st["gate_alpha"]["snr"] > 20  # the bright source
    for key in ("power_law", "power_law_point_source"):
        pw = st[key]
        if pw["nplanes"] >= 3:
            assert 0 < pw["alpha_err"] < 0.5
    assert "box α (NRAO)" in json.loads(run.stages_json.read_text())["analyzestokes"]["notes"]


def test_direct_flagdata_calls_are_in_casa_commands_log(run):
    log = (run.products / naming.CASA_COMMANDS).read_text()
    assert re.search(r"flagdata\(.*mode='summary', fieldcnt=True\)", log)  # stage 6: per field flags
    assert re.search(r"flagdata\(.*mode='summary'.*spwchan=True\)", log)  # stage 7: VLASSBW
    assert re.search(r"flagdata\(.*mode='list'", log)  # stage 5


def test_qa_scores_are_recorded_and_the_noise_is_near_thermal(run):
    recs = json.loads(run.stages_json.read_text())
    for step in ("flagtargets", "editimlist_ccip", "image_spw_group", "pbcor", "cutouts"):
        assert recs[step]["qa_scores"], step
        vals = [s["score"] for s in recs[step]["qa_scores"] if s["score"] is not None]
        assert recs[step]["qa"] == pytest.approx(min(vals)), step
    msgs = [s["message"] for s in recs["image_spw_group"]["qa_scores"]]
    assert any(re.fullmatch(r"\d+ of \d+ imaged planes are rejected\.", m) for m in msgs)
    ratios = [float(re.search(r"is ([\d.]+) x", s["message"]).group(1)) for s in recs["cutouts"]["qa_scores"]
              if s["metric"] == "rms_vs_thermal" and s["score"] is not None]
    assert ratios
    for r in ratios:  # the simulator's noise is thermal: robust-1 imaging of it is within a few tens of %
        assert 0.7 < r < 2.0, ratios


PAGES = {6: ["stage6/vlass_flagsummary_field_spwgroup.png"], 7: ["stage7/beams_vlasscube.png"],
         10: ["stage10/image_MADrms_vs_freq.png", "stage10/rms_Median_vs_freq.png"],
         11: ["stage11/stokes_summary_flux_vs_freq_peak_stokesi.png",
              "stage11/stokes_summary_u_vs_q_peak_linpolint.png"]}


def test_each_plot_exists_and_is_referenced_from_its_page(run):
    for number, plots in PAGES.items():
        page = (run.html / naming.stage_page(number)).read_text()
        for p in plots:
            assert (run.html / p).stat().st_size > 5000, p
            assert f'src="{p}"' in page, (number, p)
    page10 = (run.html / naming.stage_page(10)).read_text()
    assert 'id="cutout-stats"' in page10 and 'thumbs/' in page10
    page11 = (run.html / naming.stage_page(11)).read_text()
    assert "box α (NRAO)" in page11 and "beam-fit α" in page11 and 'id="model-peak_stokesi"' in page11
    assert "{'" not in page11 and "[0." not in page11  # no raw dictionaries or lists
    assert 'id="qa-scores"' in (run.html / naming.stage_page(7)).read_text()
    assert 'id="com"' in (run.html / naming.stage_page(12)).read_text()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless chromium")
def test_screenshots_of_the_stage_pages(run):
    ARTIFACTS.mkdir(exist_ok=True)
    for number in (6, 7, 10, 11, 12):
        out = ARTIFACTS / f"weblog_stage{number}.png"
        out.unlink(missing_ok=True)
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={out}",
                        "--window-size=1400,2000", f"file://{run.html / naming.stage_page(number)}"],
                       capture_output=True, timeout=120)
        assert out.stat().st_size > 20000, out
