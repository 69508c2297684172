"""The oracle map: the lesion disk of the record geometry, by the erfc formula."""

import numpy as np
from scipy import special

from ldct_tf.records import oracle


def test_oracle_map_is_the_lesion_disk():
    row, col, radius = 10.3, 7.8, 3.2
    got = oracle.oracle_map(20, 18, row, col, radius, 1).numpy()[..., 0]
    rr, cc = np.mgrid[:20, :18]
    r = np.hypot(rr - row, cc - col)
    expected = 0.5 * special.erfc((r - (radius + oracle.ORACLE_MARGIN_PX)) / (np.sqrt(2) * 0.5))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got[10, 8] > 0.99 and got[0, 0] < 1e-6
    np.testing.assert_array_equal(oracle.oracle_map(20, 18, row, col, radius, 0).numpy(), 0.0)
