"""Tries of one spw group kept apart (ccip_ops.tries, makeimages.image_group, fanin.collect), with
CASA replaced by a fake tclean that writes the product folders: an earlier try that still runs when
a retry starts neither overwrites the retry's images nor gets its result trusted."""
from __future__ import annotations

import pytest

from ccip_ops import fanin, tries
from ccip_ops.model import ImagingResult, ImagingTarget
from ccip_ops.runtree import RunTree, write_json
from ccip_ops.stages import makeimages

KINDS = ("image", "residual", "psf", "pb", "model", "sumwt", "weight")


def _target(label="spw2_3", group="2,3"):
    return ImagingTarget(group=group, spws=(2, 3), label=label, imagename=f"s7_0.IMG.{label}", reffreq_hz=3e9,
                         reffreq="3.0GHz", imsize=(64, 64), cell="5arcsec", phasecenter="J2000 0h0m0s 0d0m0s",
                         field_ids=(0,), vis="working/x.ms", masks=("pb",), flagpct=0.0)


class FakeCasa:
    """tclean writes every product of its imagename, marked with the try that wrote it; ``hook`` runs
    before the call (to start another try in the middle of this one)."""

    hook = None

    def __init__(self, w, label):
        self.calls = []

    def __call__(self, task, imagename=None, **kw):
        self.calls.append(task)
        if FakeCasa.hook:
            h, FakeCasa.hook = FakeCasa.hook, None
            h()
        if task != "tclean":  # e.g. the thermal-noise estimate's flagdata summary: no images
            return None
        for k in KINDS:
            d = f"{imagename}.{k}.tt0"
            __import__("os").makedirs(d, exist_ok=True)
            open(f"{d}/who", "w").write(FakeCasa.who)
        __import__("os").makedirs(f"{imagename}.mask", exist_ok=True)

    def records(self):
        return []


@pytest.fixture
def fake_casa(monkeypatch):
    monkeypatch.setattr(makeimages, "Casa", FakeCasa)
    monkeypatch.setattr(makeimages, "ensure_beams", lambda w, root: 0)
    monkeypatch.setattr(makeimages, "actual_bandwidth", lambda casa, vis, spws: 1.0)
    monkeypatch.setattr(makeimages.H, "tclean_args", lambda t, vis, imagename, n, mask: {"imagename": imagename})
    monkeypatch.setattr(makeimages.H, "vlass_keywords", lambda t, bw: {"VLASSBW": bw, "VLASSBWN": 1})
    monkeypatch.setattr(makeimages.casaimage, "update_miscinfo", lambda p, **kw: None)
    monkeypatch.setattr(makeimages.casaimage, "beam", lambda p: None)
    FakeCasa.hook = None


def _run(tree, t, n):
    FakeCasa.who = f"try{n}"
    return makeimages.image_group(tree, t, try_number=n)


def test_a_zombie_try_cannot_overwrite_the_retry(tmp_path, fake_casa):
    tree = RunTree(tmp_path / "run").make()
    t = _target()
    out = {}

    def retry_starts():  # try 1 is thought dead; try 2 runs to the end while try 1 still works
        out["r2"] = _run(tree, t, 2)
        FakeCasa.who = "try1"

    FakeCasa.hook = retry_starts
    with pytest.raises(tries.SupersededTryError, match="superseded by try 2"):
        _run(tree, t, 1)
    img = tree.working / t.names.name("image", 1)
    assert (img / "who").read_text() == "try2"
    assert not (tree.working / "tries" / t.label).exists()  # both tries' folders gone
    assert not tree.failure_json(t.label).exists()  # the zombie left the live try's record alone
    fan = fanin.collect(tree, [t], [out["r2"]])
    assert [r.label for r in fan.results] == [t.label] and fan.results[0].qa["try"]["number"] == 2


def test_a_superseded_try_stops_at_its_next_iteration_step(tmp_path, fake_casa):
    """A zombie that resumes mid-sequence (a thawed worker) runs no further tclean once a later try owns
    the group: at VLASS size that is hours of CASA not spent, and nothing of it written."""
    tree = RunTree(tmp_path / "run").make()
    t = ImagingTarget.from_json({**_target().to_json(), "masks": ["pb", "pb", "pb"]})
    casas = []
    real_init = FakeCasa.__init__

    def init(self, w, label):
        real_init(self, w, label)
        casas.append(self)

    FakeCasa.__init__ = init
    try:
        FakeCasa.hook = lambda: tries.claim(tree, t.label, 2)  # during try 1's iter0 a retry takes over
        with pytest.raises(tries.SupersededTryError, match="superseded by try 2"):
            _run(tree, t, 1)
    finally:
        FakeCasa.__init__ = real_init
    assert casas[0].calls == ["tclean"]  # iter0 only: none of iter1..iter3 ran
    assert not (tree.working / "tries" / t.label / "try1").exists()
    assert not list(tree.working.glob(t.names.imagename + ".*"))


def test_a_result_of_an_earlier_try_is_not_trusted(tmp_path, fake_casa):
    tree = RunTree(tmp_path / "run").make()
    t = _target()
    r1 = _run(tree, t, 1)
    tries.claim(tree, t.label, 2)  # a retry has started (cleared by an operator, or re-delivered)
    fan_err = None
    with pytest.raises(Exception) as e:
        fanin.collect(tree, [t], [r1])
    fan_err = str(e.value)
    assert "not from the latest try 2" in fan_err
    ok, failed = fanin.imaging_outcomes(tree, [t])
    assert not ok and "from try 1" in failed[0].error


def test_a_try_writes_only_in_its_own_folder_until_it_promotes(tmp_path, fake_casa):
    tree = RunTree(tmp_path / "run").make()
    t = _target()
    seen = {}

    def look():
        seen["working"] = sorted(p.name for p in tree.working.glob(t.imagename + ".*"))
        seen["scratch"] = tries.scratch(tree, t.label, 1).is_dir()

    FakeCasa.hook = look
    r = _run(tree, t, 1)
    assert seen == {"working": [], "scratch": True}
    assert all((tree.root / p).exists() for p in r.images.values())
    assert tries.token_of(r.to_json()) == tries.owner(tree, t.label)["token"]


def test_results_from_before_tries_were_recorded_are_taken(tmp_path):
    tree = RunTree(tmp_path / "run").make()
    t = _target()
    write_json(tree.result_json(t.label), ImagingResult(target=t, status="ok").to_json())
    ok, failed = fanin.imaging_outcomes(tree, [t])
    assert list(ok) == [t.label] and not failed
