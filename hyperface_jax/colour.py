"""Colour constants shared by the input pipeline and the models.

A dependency-free module, so that both `data/preprocess.py` (which must stay free of JAX
for the exported-model runtime) and `models/` (which must not import `data/`) read the
same numbers.
"""

# ITU-R BT.601 luma weights of R, G, B: Y = 0.299 R + 0.587 G + 0.114 B (TCDCN's grey
# input, docs/papers.md section 2.1).
BT601_LUMA = (0.299, 0.587, 0.114)
