"""The Y x Z state: a size the machine cannot hold is a clear error, not a MemoryError."""

import numpy as np
import pytest

import leepfast


def test_state_larger_than_memory_is_a_clear_error():
    theta = np.full((2, 1000), 1e-3)
    with pytest.raises(ValueError, match=r"n_target=100000000 with n_source=1000 .* "
                       r"needs a Y x Z state of .* GB, more than this machine's"):
        leepfast.leep(theta, np.array([0, 99_999_999]))
