"""Landmark scheme conversions and their flip permutations (data/schemes.py)."""

import numpy as np
import pytest

from hyperface_jax.data import schemes

SIZES = {"aflw21": 21, "aflw19": 19, "ibug68": 68, "five": 5}


def _swap_side(name):
  """Mirror name: every Left <-> Right (LeftBrowLeftCorner -> RightBrowRightCorner)."""
  return name.replace("Left", "\0").replace("Right", "Left").replace("\0", "Right")


@pytest.mark.parametrize("source, target", sorted(schemes.CONVERSIONS))
def test_conversion_commutes_with_flip(source, target):
  rng = np.random.default_rng(0)
  pts = rng.uniform(0, 100, size=(3, SIZES[source], 2))
  width = 101
  a = schemes.flip_landmarks(schemes.convert_landmarks(pts, source, target), width, target)
  b = schemes.convert_landmarks(schemes.flip_landmarks(pts, width, source), source, target)
  np.testing.assert_allclose(a, b)
  assert a.shape == (3, SIZES[target], 2)


@pytest.mark.parametrize("scheme", sorted(schemes.FLIP_PERMUTATIONS))
def test_flip_is_an_involution(scheme):
  perm = schemes.FLIP_PERMUTATIONS[scheme]
  np.testing.assert_array_equal(perm[perm], np.arange(SIZES[scheme]))


def test_aflw19_is_aflw21_without_ears_and_flips_by_name():
  assert len(schemes.AFLW19_NAMES) == 19
  assert "LeftEar" not in schemes.AFLW19_NAMES and "RightEar" not in schemes.AFLW19_NAMES
  names = schemes.AFLW19_NAMES
  for i, j in enumerate(schemes.AFLW19_FLIP):
    assert names[j] == _swap_side(names[i]), (names[i], names[j])
  pts = np.arange(42, dtype=float).reshape(21, 2)
  np.testing.assert_array_equal(schemes.aflw21_to_aflw19(pts)[12], pts[13])  # NoseLeft
  vis = np.arange(21.0)
  np.testing.assert_array_equal(schemes.aflw21_to_aflw19(vis)[11:13], [11, 13])


def test_68_visibility_rules():
  vis = np.ones(68)
  vis[37] = 0  # one left-eye contour point hidden -> LeftEyeCenter hidden
  v21 = schemes.ibug68_visibility_to_aflw21(vis)
  assert v21[7] == 0 and v21[6] == 1 and v21[10] == 1
  assert v21[12] == 0 and v21[16] == 0  # ears have no source
  np.testing.assert_array_equal(schemes.ibug68_visibility_to_five(vis), [0, 1, 1, 1, 1])


def test_unknown_conversion_is_named():
  with pytest.raises(ValueError, match="five -> ibug68"):
    schemes.convert_landmarks(np.zeros((5, 2)), "five", "ibug68")
