"""Accuracy through PyTorch and through the reference, compared image by image."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import reference
from .checkpoint import Checkpoint
from .data import Split
from .ir.pipeline import lower
from .progress import progress_bar


def compare_with_reference(ckpt: Checkpoint, split: Split, *, batch_size: int = 500,
                           show_progress: bool = True) -> dict[str, Any]:
    model = ckpt.model()
    graph = lower(ckpt)
    mw = graph.output.mw
    torch_pred, ref_pred, score_mismatch = [], [], 0
    with progress_bar(show_progress) as bar, torch.no_grad():
        task = bar.add_task("evaluate", total=len(split), info="")
        for start in range(0, len(split), batch_size):
            x = split.images[start:start + batch_size]
            xt = torch.from_numpy(x)
            logits = model(xt)
            dots = model.output_dots(xt).numpy()
            torch_pc = np.rint((dots + mw) / 2).astype(np.int64)
            ref = reference.run(graph, x)
            score_mismatch += int((torch_pc != ref.popcounts).any(axis=1).sum())
            torch_pred.append(logits.argmax(1).numpy())
            ref_pred.append(ref.predictions)
            bar.update(task, advance=len(x))
    tp, rp = np.concatenate(torch_pred), np.concatenate(ref_pred)
    return {
        "images": len(split),
        "torch_accuracy": float((tp == split.labels).mean()),
        "reference_accuracy": float((rp == split.labels).mean()),
        "prediction_mismatches": int((tp != rp).sum()),
        "score_mismatches": score_mismatch,
        "agree": bool((tp == rp).all() and score_mismatch == 0),
    }
