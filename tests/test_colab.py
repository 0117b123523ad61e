"""Executes colabs/model_surgery.ipynb top to bottom (nbclient + ipykernel), so it cannot rot.

The kernel inherits this process's environment (conftest.py: 8 fake CPU devices), so the
notebook's data-parallel steps run over 8 devices and its restore goes to one CPU.
"""

import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "colabs", "model_surgery.ipynb")


def _outputs_text(cell) -> str:
  parts = []
  for out in cell.get("outputs", []):
    if "text" in out:
      parts.append(out["text"])
    parts.extend(str(v) for k, v in out.get("data", {}).items() if k == "text/plain")
  return "".join(parts)


def test_model_surgery_notebook_runs_and_shows_the_surgery(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
    "commit the notebook without outputs"
  )
  client = NotebookClient(
    nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
  )
  try:
    client.execute(cwd=str(tmp_path))
  except CellExecutionError as e:  # the message holds the failing cell and traceback
    pytest.fail(f"colabs/model_surgery.ipynb failed:\n{e}")
  text = "\n".join(_outputs_text(c) for c in nb.cells if c.cell_type == "code")
  # Section 2: the overview's totals; section 3: the backbone came from the converted dir.
  assert "Total: " in text and "backbone/conv1/kernel | (11, 11, 3, 12)" in text
  assert "loaded 10 arrays" in text  # conv1..conv5 kernels and biases
  assert "'frozen': 10" in text
  assert "backbone arrays are bit-for-bit the same" in text
  assert "'landmarks': (4, 68, 2)" in text and "'visibility': (4, 68)" in text
  assert "outputs identical" in text
