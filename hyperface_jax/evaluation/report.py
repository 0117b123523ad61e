"""Writes `workdir/report/`: loss and weight curves, CED, annotated crops, results.md.

Called once after the final evaluation (docs/design.md section 4, `report/`):

  write_report(workdir, results, ev.arrays(), crops, crop_labels, crop_outputs)
"""

from __future__ import annotations

import json
import logging
import os

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hyperface_jax import viz  # noqa: E402
from hyperface_jax.evaluation import metrics  # noqa: E402
from hyperface_jax.evaluation.evaluators import DEFAULT_YAW_BINS  # noqa: E402

TRUE_COLOUR, PRED_COLOUR = (0, 255, 0), (255, 0, 0)  # truth green, prediction red


def read_metrics(path) -> list[dict]:
  """Parses metrics.jsonl; a line that is not JSON (e.g. cut by a crash) is skipped."""
  rows = []
  if not os.path.exists(path):
    return rows
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          logging.warning("%s:%d is not JSON; skipped.", path, number)
  return rows


def _save(fig, path) -> str:
  """Saves atomically (temp name, then rename) so no half-written PNG is left."""
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def _series(rows, key):
  pts = [
    (r["step"], r[key])
    for r in rows
    if key in r and "step" in r and isinstance(r[key], (int, float)) and np.isfinite(r[key])
  ]
  return np.array(pts, np.float64).reshape(-1, 2)


def plot_curves(rows, prefixes, path, title, log_y) -> str | None:
  """One line per key starting with one of `prefixes`; None when there is none."""
  keys = sorted({k for r in rows for k in r if k.startswith(prefixes)})
  if not keys:
    return None
  fig, ax = plt.subplots(figsize=(8, 5))
  colours = {}
  for key in keys:
    xy = _series(rows, key)
    if log_y:
      xy = xy[xy[:, 1] > 0]  # log axis: non-positive values cannot be shown
    if len(xy) == 0:
      continue
    task = key.split("/", 1)[1]  # train/loss/x and val/loss/x share a colour
    colours.setdefault(task, f"C{len(colours) % 10}")
    style = "--" if key.startswith("val/") else "-"
    ax.plot(
      xy[:, 0],
      xy[:, 1],
      style,
      color=colours[task],
      label=key,
      lw=2.0 if task in ("loss", "weight") else 1.2,
    )
  if log_y:
    ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  return _save(fig, path)


def plot_ced(arrays, path, yaw_bins=DEFAULT_YAW_BINS, limit=0.1) -> str | None:
  """CED of landmark NME, model (solid) vs mean-shape baseline (dashed), overall and by yaw."""
  errors = arrays.get("landmarks/errors")
  if errors is None or not np.isfinite(errors).any():
    return None
  base = arrays.get("landmarks/baseline_errors")
  finite = np.concatenate(
    [errors[np.isfinite(errors)]] + ([base[np.isfinite(base)]] if base is not None else [])
  )
  # Show at least [0, 2 * limit]; widen for an untrained model so curves are visible.
  x_max = max(2 * limit, float(np.quantile(finite, 0.95)))
  t = np.linspace(0.0, x_max, 200)
  yaw = arrays.get("landmarks/abs_yaw_deg", np.full(errors.shape, np.nan))
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
  axes[0].plot(t, metrics.ced_curve(errors, t), "C0-", label="model")
  if base is not None:
    axes[0].plot(t, metrics.ced_curve(base, t), "C0--", label="mean-shape baseline")
  axes[0].set_title(f"all regions (n={int(np.isfinite(errors).sum())})")
  edges = np.asarray(yaw_bins, np.float64)
  which = np.searchsorted(edges, yaw, side="right") - 1
  which = np.where(np.isfinite(yaw), np.minimum(which, len(edges) - 2), -1)
  for i in range(len(edges) - 1):
    sel = (which == i) & np.isfinite(errors)
    if not sel.any():
      continue
    name = f"|yaw| {edges[i]:g}-{edges[i + 1]:g} (n={int(sel.sum())})"
    axes[1].plot(t, metrics.ced_curve(errors[sel], t), f"C{i}-", label=name)
    if base is not None:
      axes[1].plot(t, metrics.ced_curve(base[sel], t), f"C{i}--", label=name + " baseline")
  axes[1].set_title("by |yaw| of the true pose (dashed: baseline)")
  for ax in axes:
    ax.axvline(limit, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("NME (fraction of face size sqrt(w*h))")
    ax.set_xlim(0, x_max)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
  axes[0].set_ylabel("fraction of faces")
  return _save(fig, path)


def plot_crops(crops, labels, outputs, path, num_crops=16) -> str | None:
  """Grid of crops: truth green, prediction red, predicted pose axes, gender text."""
  if crops is None or len(crops) == 0:
    return None
  crops = np.asarray(crops)
  if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[-1] != 3:
    raise ValueError(f"crops must be uint8 [N, S, S, 3]; got {crops.dtype} {crops.shape}.")
  n = min(len(crops), num_crops)
  cols = int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
  size = crops.shape[1]
  scale = max(1, 256 // size)  # upsample small crops so markers stay legible
  for i, ax in enumerate(axes.ravel()):
    ax.axis("off")
    if i >= n:
      continue
    image = np.repeat(np.repeat(crops[i], scale, 0), scale, 1)
    s = size * scale
    if labels.get("landmarks_mask", np.ones(n))[i] > 0.5:
      image = viz.draw_face(
        image,
        landmarks=viz.region_to_crop_pixels(labels["landmarks"][i], s),
        visibility=labels["visibility"][i],
        colour=TRUE_COLOUR,
      )
    image = viz.draw_face(
      image,
      landmarks=viz.region_to_crop_pixels(outputs["landmarks"][i], s),
      visibility=outputs["visibility"][i],
      pose=outputs["pose"][i],
      colour=PRED_COLOUR,
      axis_length=0.25 * s,
    )
    p_female = float(_prob1(outputs["gender"][i]))
    p_face = float(_prob1(outputs["detection"][i]))
    true_g = (
      "MF"[int(labels["gender"][i])] if labels.get("gender_mask", np.ones(n))[i] > 0.5 else "?"
    )
    ax.imshow(image)
    ax.set_title(
      f"face {int(labels['detection'][i])}/{p_face:.2f}  "
      f"g {true_g}/{'MF'[int(p_female > 0.5)]} {p_female:.2f}",
      fontsize=7,
    )
  fig.suptitle(
    "truth green, prediction red (hollow: invisible); axes x red y green z blue;"
    "\ntitle: true/predicted face and gender",
    fontsize=8,
  )
  fig.tight_layout()
  return _save(fig, path)


def _prob1(logits):
  logits = np.asarray(logits, np.float64)
  return 1.0 / (1.0 + np.exp(logits[0] - logits[1]))


def results_markdown(results: dict) -> str:
  """Markdown table metric | model | baseline, then counts and protocol notes."""
  lines = ["# Results", "", "| metric | model | baseline |", "|---|---|---|"]
  for key in sorted(results):
    value = results[key]
    if (
      key.startswith(("baseline/", "count/", "protocol/"))
      or key == "step"
      or isinstance(value, bool)
      or not isinstance(value, (int, float))
    ):
      continue
    base = results.get("baseline/" + key)
    lines.append(f"| {key} | {value:.4f} | {'' if base is None else f'{base:.4f}'} |")
  counts = sorted(k for k in results if k.startswith("count/"))
  if counts:
    lines += ["", "| count | n |", "|---|---|"]
    lines += [f"| {k[len('count/') :]} | {int(results[k])} |" for k in counts]
  # Protocol notes: a nested "protocol" dict or flat "protocol/<name>" strings.
  protocol = dict(results.get("protocol") or {})
  protocol.update(
    {k[len("protocol/") :]: v for k, v in results.items() if k.startswith("protocol/")}
  )
  if protocol:
    lines += ["", "## Protocol", ""] + [f"- **{k}**: {v}" for k, v in sorted(protocol.items())]
  return "\n".join(lines) + "\n"


def training_summary(rows) -> dict:
  """The last logged value of each `weight/<task>` and `stopped_step/<task>` (task-wise
  early stopping: the step whose update stopped the task, -1 while it trains) in
  metrics.jsonl rows; {} when there are none."""
  out = {}
  for r in rows:
    for k, v in r.items():
      if k.startswith(("weight/", "stopped_step/")) and isinstance(v, (int, float)):
        out[k] = v
  return out


def training_markdown(summary: dict) -> str:
  """A "Training" section of results.md: final task weights and early-stopping steps."""
  if not summary:
    return ""
  task_names = sorted({k.split("/", 1)[1] for k in summary})
  lines = ["", "## Training", "", "| task | final weight | stopped at step |", "|---|---|---|"]
  for t in task_names:
    w, s = summary.get(f"weight/{t}"), summary.get(f"stopped_step/{t}")
    w_s = "" if w is None else f"{w:.4g}"
    s_s = "" if s is None else ("not stopped" if s < 0 else str(int(s)))
    lines.append(f"| {t} | {w_s} | {s_s} |")
  return "\n".join(lines) + "\n"


def _examples(arrays):
  """(images, labels, outputs) kept by the evaluator, or None without images."""
  if "examples/image_uint8" not in arrays:
    return None
  labels = {
    k[len("examples/") :]: v
    for k, v in arrays.items()
    if k.startswith("examples/") and not k.startswith("examples/output/")
  }
  outputs = {
    k[len("examples/output/") :]: v for k, v in arrays.items() if k.startswith("examples/output/")
  }
  return labels.pop("image_uint8"), labels, outputs


def _crop_source(arrays, crops, labels, outputs):
  """Resolves the crops for crops.png (see `write_report`); None if there are none."""
  if crops is None:
    return _examples(arrays)
  if isinstance(crops, dict):
    if "image_uint8" not in crops:
      raise ValueError(
        "crops given as a region dict need an 'image_uint8' key "
        "(pipeline.eval_regions(..., return_uint8=True))."
      )
    labels = crops if labels is None else labels
    images = crops["image_uint8"]
    if outputs is None:
      kept = {
        k[len("examples/output/") :]: v
        for k, v in arrays.items()
        if k.startswith("examples/output/")
      }
      n = len(kept.get("landmarks", ()))
      if n == 0 or not np.allclose(arrays["examples/landmarks"], labels["landmarks"][:n]):
        raise ValueError(
          "crops dict rows do not match the evaluator's kept examples; pass crop_outputs for them."
        )
      images, labels, outputs = images[:n], {k: v[:n] for k, v in labels.items()}, kept
    return images, labels, outputs
  if labels is None or outputs is None:
    raise ValueError(
      "crops need crop_labels and crop_outputs (region batch labels and "
      "model outputs for the same rows)."
    )
  return crops, labels, outputs


def write_report(
  workdir,
  results: dict,
  evaluator_arrays: dict,
  crops=None,
  crop_labels=None,
  crop_outputs=None,
  num_crops: int = 16,
  yaw_bins=DEFAULT_YAW_BINS,
  auc_limit: float = 0.1,
) -> list[str]:
  """Writes the report files into `workdir/report/`.

  Args:
    workdir: the run directory (reads `metrics.jsonl` from it).
    results: flat results (results.json content; an optional "protocol" dict).
    evaluator_arrays: `HyperFaceRegionEvaluator.arrays()`.
    crops: what crops.png shows, one of
      * None: the evaluator's kept examples (`examples/*`, needs the eval
        batches to carry "image_uint8"); no crops.png without them;
      * a region dict with "image_uint8" (e.g. the test region set): its rows,
        with `crop_outputs`, or else the evaluator's kept outputs after checking
        that they are the dict's first rows;
      * uint8 RGB [N, S, S, 3] with `crop_labels` and `crop_outputs`.
    crop_labels: region-batch labels of the crops (landmarks, visibility, gender,
      detection, optional landmarks_mask / gender_mask), numpy.
    crop_outputs: model outputs for them (landmarks, visibility, pose, gender,
      detection logits), numpy.
    num_crops: at most this many crops in crops.png.
    yaw_bins, auc_limit: as the evaluator's.

  Returns:
    Paths written (plots without data, e.g. no weight/* keys, are skipped).
  """
  out_dir = os.path.join(workdir, "report")
  os.makedirs(out_dir, exist_ok=True)
  rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
  written = [
    plot_curves(
      rows,
      ("train/loss", "val/loss"),
      os.path.join(out_dir, "losses.png"),
      "losses (solid train, dashed val)",
      log_y=True,
    ),
    plot_curves(
      rows, ("weight/",), os.path.join(out_dir, "weights.png"), "task weights", log_y=False
    ),
    plot_ced(evaluator_arrays, os.path.join(out_dir, "ced.png"), yaw_bins, auc_limit),
  ]
  source = _crop_source(evaluator_arrays, crops, crop_labels, crop_outputs)
  if source is not None and num_crops > 0:
    written.append(plot_crops(*source, os.path.join(out_dir, "crops.png"), num_crops))
  md_path = os.path.join(out_dir, "results.md")
  with open(md_path + ".tmp", "w") as f:
    f.write(results_markdown(results) + training_markdown(training_summary(rows)))
  os.replace(md_path + ".tmp", md_path)
  written.append(md_path)
  return [p for p in written if p is not None]
