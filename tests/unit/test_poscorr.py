"""The NRAO unit-test reference values of calc_zd_pa (spec §9.3)."""
import pytest

from ccip_ops.heuristics import poscorr

VLA = dict(lon_deg=-107.6183, lat_deg=33.90049, mjd_utc=58089.82306510417)


@pytest.mark.parametrize("ra, dec, zd, chi", [
    (239.9617912649343, 33.49999737118265, 0.29819920860195787, 1.4473218710956612),
    (64.45982059345977, 24.49997953261358, 2.0880275133156623, -0.2674689095474299),
])
def test_reference_cases(ra, dec, zd, chi):
    z, c = poscorr.calc_zd_pa(ra, dec, **VLA)
    assert abs(z - zd) < 1e-9 and abs(c - chi) < 1e-9


def test_shift_amplitude_scales_with_frequency():
    import math

    zd, chi = 0.5, 0.3
    ra1, dec1, x1, y1 = poscorr.shift(12.5, -2.5, 3e9, zd, chi)
    ra2, dec2, x2, y2 = poscorr.shift(12.5, -2.5, 2e9, zd, chi)
    d1, d2 = math.hypot(x1, y1), math.hypot(x2, y2)
    assert d1 == pytest.approx(0.25 * math.tan(zd), rel=1e-12)
    assert d2 / d1 == pytest.approx((3 / 2) ** 2, rel=1e-12)
